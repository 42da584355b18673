"""One model on one Triton endpoint: its readiness, identity (version, build) and inference.

Triton's failures are translated here, once, into the gateway's domain errors: unreachable or
not ready -> UNAVAILABLE, out of time -> DEADLINE_EXCEEDED, anything else -> INTERNAL.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import numpy as np
import tritonclient.grpc.aio as triton_aio
from tritonclient.utils import InferenceServerException

from gateway.answers import RankedItem
from gateway.errors import BackendFailed, BackendUnavailable, DeadlineExceeded, RequestError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelState:
    """Last readiness check; ``reason`` says what is missing when not ready. Version and build
    stay at their last known values while not ready, so cached answers stay servable."""

    ready: bool
    reason: str
    version: str = ""
    build_id: str = ""


class TritonModel:
    def __init__(
        self, client: triton_aio.InferenceServerClient, url: str, name: str, pool_name: str, device: str
    ) -> None:
        self.client = client
        self.url = url
        self.name = name
        self.pool_name = pool_name
        self.device = device
        self.state = ModelState(ready=False, reason=f"Triton at {url} has not been checked yet")

    async def check_readiness(self, timeout_s: float) -> ModelState:
        """Asks Triton whether the server and this model are ready; reads version and build id."""
        try:
            if not await self.client.is_server_ready(client_timeout=timeout_s):
                state = ModelState(False, f"Triton server at {self.url} (pool {self.pool_name}) is not ready")
            elif not await self.client.is_model_ready(self.name, client_timeout=timeout_s):
                state = ModelState(False, f"model {self.name!r} is not ready on Triton at {self.url}")
            else:
                state = await self._ready_state(timeout_s)
        except InferenceServerException as exc:
            state = ModelState(False, f"Triton at {self.url} (pool {self.pool_name}) is unreachable: {exc.message()}")
        if not state.ready:
            state = ModelState(False, state.reason, self.state.version, self.state.build_id)
        if state.ready != self.state.ready:
            log.log(logging.INFO if state.ready else logging.WARNING, "pool %s: %s", self.pool_name, state.reason)
        self.state = state
        return state

    async def _ready_state(self, timeout_s: float) -> ModelState:
        metadata = await self.client.get_model_metadata(self.name, as_json=True, client_timeout=timeout_s)
        config = await self.client.get_model_config(self.name, as_json=True, client_timeout=timeout_s)
        versions = metadata.get("versions") or [""]
        build_id = config["config"].get("parameters", {}).get("build_id", {}).get("string_value", "")
        return ModelState(True, f"model {self.name!r} ready on {self.url}", version=max(versions), build_id=build_id)

    async def infer(self, inputs: list[triton_aio.InferInput], timeout_s: float) -> triton_aio.InferResult:
        """One inference under ``timeout_s``; on expiry the gRPC call to Triton is cancelled."""
        if not self.state.ready:
            raise BackendUnavailable(f"{self.name} unavailable: {self.state.reason}")
        if timeout_s <= 0:
            raise DeadlineExceeded("the deadline expired before the model could be called")
        try:
            return await self.client.infer(self.name, inputs, model_version=self.state.version, client_timeout=timeout_s)
        except InferenceServerException as exc:
            raise self._translate(exc) from None
        except asyncio.TimeoutError:
            raise DeadlineExceeded(f"model {self.name!r} did not answer within {timeout_s:.3f}s") from None

    def _translate(self, exc: InferenceServerException) -> RequestError:
        status = exc.status() or ""
        if "DEADLINE_EXCEEDED" in status:
            return DeadlineExceeded(f"model {self.name!r} did not answer before the deadline")
        if "UNAVAILABLE" in status or "CANCELLED" in status:
            return BackendUnavailable(f"Triton at {self.url} (pool {self.pool_name}) is unavailable: {exc.message()}")
        return BackendFailed(f"model {self.name!r} on {self.url} failed the call ({status}): {exc.message()}")


def bytes_input(name: str, values: list[str]) -> triton_aio.InferInput:
    """A [1, n] BYTES input (batch of one request)."""
    array = np.array([[value.encode() for value in values]], dtype=np.object_)
    tensor = triton_aio.InferInput(name, list(array.shape), "BYTES")
    tensor.set_data_from_numpy(array)
    return tensor


def int32_input(name: str, value: int) -> triton_aio.InferInput:
    tensor = triton_aio.InferInput(name, [1, 1], "INT32")
    tensor.set_data_from_numpy(np.array([[value]], dtype=np.int32))
    return tensor


def ranked_items(result: triton_aio.InferResult) -> tuple[RankedItem, ...]:
    """ITEM_IDS, ITEM_TITLES and SCORES of a one-request result, best first."""
    ids = result.as_numpy("ITEM_IDS")[0]
    titles = result.as_numpy("ITEM_TITLES")[0]
    scores = result.as_numpy("SCORES")[0]
    return tuple(RankedItem(i.decode(), t.decode(), float(s)) for i, t, s in zip(ids, titles, scores))


def first_int64(result: triton_aio.InferResult, name: str) -> int:
    return int(result.as_numpy(name)[0][0])
