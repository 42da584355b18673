"""The Triton side of Recommend: readiness of the pool and one inference call under a deadline.

The model contract (inputs USER_ID, K, EXCLUDE_ITEM_IDS; outputs ITEM_IDS, ITEM_TITLES,
SCORES, COMPUTE_NS, PERSONALIZED) is the one exported by ``pipeline`` into ``model_repo/``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import numpy as np
import tritonclient.grpc.aio as triton_aio
from tritonclient.utils import InferenceServerException

from gateway.errors import BackendFailed, BackendUnavailable, DeadlineExceeded
from gateway.validation import RecommendQuery

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RankedItem:
    item_id: str
    title: str
    score: float


@dataclass(frozen=True)
class ModelAnswer:
    """What the model returned for one request, with the compute it measured for it."""

    items: tuple[RankedItem, ...]
    personalized: bool
    compute_ns: int
    model_version: str


@dataclass(frozen=True)
class PoolState:
    """Last readiness check of the pool; ``reason`` says what is missing when not ready."""

    ready: bool
    reason: str
    model_version: str = ""
    build_id: str = ""


class TritonRecommender:
    """Calls the recommender model on one Triton endpoint and tracks whether it is ready."""

    def __init__(self, url: str, model_name: str, pool_name: str, device: str) -> None:
        self.url = url
        self.model_name = model_name
        self.pool_name = pool_name
        self.device = device
        self._client = triton_aio.InferenceServerClient(url=url)
        self.state = PoolState(ready=False, reason=f"Triton at {url} has not been checked yet")

    async def check_readiness(self, timeout_s: float) -> PoolState:
        """Asks Triton whether the server and the model are ready; reads version and build id."""
        try:
            if not await self._client.is_server_ready(client_timeout=timeout_s):
                state = PoolState(False, f"Triton server at {self.url} (pool {self.pool_name}) is not ready")
            elif not await self._client.is_model_ready(self.model_name, client_timeout=timeout_s):
                state = PoolState(False, f"model {self.model_name!r} is not ready on Triton at {self.url}")
            else:
                state = await self._ready_state(timeout_s)
        except InferenceServerException as exc:
            state = PoolState(False, f"Triton at {self.url} (pool {self.pool_name}) is unreachable: {exc.message()}")
        if not state.ready:
            # Keep the last known model identity: cached answers of that build stay servable.
            state = PoolState(False, state.reason, self.state.model_version, self.state.build_id)
        if state.ready != self.state.ready:
            log.log(logging.INFO if state.ready else logging.WARNING, "pool %s: %s", self.pool_name, state.reason)
        self.state = state
        return state

    async def _ready_state(self, timeout_s: float) -> PoolState:
        metadata = await self._client.get_model_metadata(self.model_name, as_json=True, client_timeout=timeout_s)
        config = await self._client.get_model_config(self.model_name, as_json=True, client_timeout=timeout_s)
        versions = metadata.get("versions") or [""]
        build_id = config["config"].get("parameters", {}).get("build_id", {}).get("string_value", "")
        return PoolState(
            True, f"model {self.model_name!r} ready on {self.url}", model_version=max(versions), build_id=build_id
        )

    async def recommend(self, query: RecommendQuery, timeout_s: float) -> ModelAnswer:
        """One inference; Triton's failures become UNAVAILABLE or DEADLINE_EXCEEDED errors."""
        if not self.state.ready:
            raise BackendUnavailable(f"recommendations unavailable: {self.state.reason}")
        if timeout_s <= 0:
            raise DeadlineExceeded("the deadline expired before the model could be called")
        inputs = _build_inputs(query)
        try:
            result = await self._client.infer(
                self.model_name, inputs, model_version=self.state.model_version, client_timeout=timeout_s
            )
        except InferenceServerException as exc:
            raise _translate(exc, self) from None
        except asyncio.TimeoutError:
            raise DeadlineExceeded(f"model {self.model_name!r} did not answer within {timeout_s:.3f}s") from None
        return _parse_answer(result, self.state.model_version)

    async def close(self) -> None:
        await self._client.close()


def _build_inputs(query: RecommendQuery) -> list[triton_aio.InferInput]:
    user = triton_aio.InferInput("USER_ID", [1, 1], "BYTES")
    user.set_data_from_numpy(np.array([[query.user_id.encode()]], dtype=np.object_))
    k = triton_aio.InferInput("K", [1, 1], "INT32")
    k.set_data_from_numpy(np.array([[query.k]], dtype=np.int32))
    inputs = [user, k]
    if query.exclude_item_ids:
        excluded = np.array([[item.encode() for item in query.exclude_item_ids]], dtype=np.object_)
        exclude = triton_aio.InferInput("EXCLUDE_ITEM_IDS", list(excluded.shape), "BYTES")
        exclude.set_data_from_numpy(excluded)
        inputs.append(exclude)
    return inputs


def _parse_answer(result: triton_aio.InferResult, model_version: str) -> ModelAnswer:
    ids = result.as_numpy("ITEM_IDS")[0]
    titles = result.as_numpy("ITEM_TITLES")[0]
    scores = result.as_numpy("SCORES")[0]
    items = tuple(
        RankedItem(item_id=i.decode(), title=t.decode(), score=float(s)) for i, t, s in zip(ids, titles, scores)
    )
    return ModelAnswer(
        items=items,
        personalized=bool(result.as_numpy("PERSONALIZED")[0][0]),
        compute_ns=int(result.as_numpy("COMPUTE_NS")[0][0]),
        model_version=result.get_response().model_version or model_version,
    )


def _translate(exc: InferenceServerException, backend: TritonRecommender) -> Exception:
    status = exc.status() or ""
    if "DEADLINE_EXCEEDED" in status:
        return DeadlineExceeded(f"model {backend.model_name!r} did not answer before the deadline")
    if "UNAVAILABLE" in status or "CANCELLED" in status:
        return BackendUnavailable(
            f"Triton at {backend.url} (pool {backend.pool_name}) is unavailable: {exc.message()}"
        )
    return BackendFailed(f"model {backend.model_name!r} on {backend.url} failed the call ({status}): {exc.message()}")
