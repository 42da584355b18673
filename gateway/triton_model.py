"""One model on one Triton endpoint: its readiness, identity (version, build) and inference.

A model may have several versions loaded (the serving one and a rollout's candidate): each is
checked for readiness on its own and called by number. The *serving* version is, in order, the
one the rollout state pins (``serving_override``), the config's ``serving_version`` parameter,
or the highest loaded version; a version's build id is its config parameter ``build_id.<N>``,
else ``build_id``.

Readiness and identity go through tritonclient; inference through the raw stub of
gateway/triton_infer.py (the hot path). A model whose config declares ``padded_rows`` has its
concurrent calls coalesced into requests of several rows (gateway/row_coalescing.py), up to its
``max_batch_size`` and the gateway's own limit.

Triton's failures are translated here, once, into the gateway's domain errors: unreachable or
not ready -> UNAVAILABLE, out of time -> DEADLINE_EXCEEDED, anything else -> INTERNAL.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace

from collections.abc import Sequence

import grpc
import tritonclient.grpc.aio as triton_aio
from tritonclient.utils import InferenceServerException

from gateway.errors import BackendFailed, BackendUnavailable, DeadlineExceeded, RequestError
from gateway.row_coalescing import RowCoalescer
from gateway.triton_infer import InferOutputs, InferStub, Tensor, infer_request

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RowsPolicy:
    """How calls share Triton requests (gateway/row_coalescing.py): at most ``max_rows`` rows per
    request; while ``busy_requests`` requests are in flight, a new call waits up to
    ``max_wait_s`` to join the next one."""

    max_rows: int
    busy_requests: int
    max_wait_s: float


NO_COALESCING = RowsPolicy(max_rows=1, busy_requests=1, max_wait_s=0.0)


@dataclass(frozen=True)
class ModelState:
    """Last readiness check; ``reason`` says what is missing when not ready. Version and build
    stay at their last known values while not ready, so cached answers stay servable."""

    ready: bool
    reason: str
    version: str = ""
    build_id: str = ""


# Config parameters of a versioned model (model_repo/recommender/config.pbtxt).
SERVING_VERSION_PARAMETER = "serving_version"
BUILD_ID_PARAMETER = "build_id"
PADDED_ROWS_PARAMETER = "padded_rows"


def version_build_id(parameters: dict, version: str) -> str:
    """A version's build id from the config's parameters: ``build_id.<N>``, else ``build_id``."""
    own = parameters.get(f"{BUILD_ID_PARAMETER}.{version}", {}).get("string_value", "")
    return own or parameters.get(BUILD_ID_PARAMETER, {}).get("string_value", "")


def serving_version(versions: list[str], parameters: dict, override: str | None) -> str:
    """The serving version: the rollout's, else the config's ``serving_version``, else the highest
    loaded one (by number: "10" is above "9")."""
    if override:
        return override
    configured = parameters.get(SERVING_VERSION_PARAMETER, {}).get("string_value", "")
    if configured:
        return configured
    return max(versions, key=_version_order, default="")


def rows_per_request(config: dict, limit: int) -> int:
    """How many rows one request may carry: 1 unless the config declares ``padded_rows``, then
    its ``max_batch_size``, at most ``limit``."""
    declared = config.get("parameters", {}).get(PADDED_ROWS_PARAMETER, {}).get("string_value", "")
    if declared != "true":
        return 1
    return max(1, min(int(config.get("max_batch_size", 0)), limit))


def _version_order(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (-1, version)


class TritonModel:
    def __init__(
        self,
        client: triton_aio.InferenceServerClient,
        stub: InferStub,
        url: str,
        name: str,
        pool_name: str,
        device: str,
        rows_policy: RowsPolicy = NO_COALESCING,
    ) -> None:
        """``client``: tritonclient, for readiness and identity; ``stub``: the inference calls;
        ``rows_policy``: how calls share requests of several rows."""
        self.client = client
        self.stub = stub
        self.url = url
        self.name = name
        self.pool_name = pool_name
        self.device = device
        self.state = ModelState(ready=False, reason=f"Triton at {url} has not been checked yet")
        # Every loaded version (ready or not) by number; ``state`` is the serving one's.
        self.versions: dict[str, ModelState] = {}
        self.serving_override: str | None = None
        self._rows_policy = rows_policy
        self.rows_per_request = 1  # what the model's config allows, read with its readiness
        self._coalescers: dict[str, RowCoalescer] = {}

    def pin_serving(self, version: str | None) -> None:
        """The serving version the rollout state names (None: the config's); applied at once
        when that version is known to be ready, else at the next readiness check."""
        self.serving_override = version
        state = self.versions.get(version or "")
        if state is not None and state.ready:
            self.state = state

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
            self.versions = {version: replace(known, ready=False) for version, known in self.versions.items()}
        if state.ready != self.state.ready:
            log.log(logging.INFO if state.ready else logging.WARNING, "pool %s: %s", self.pool_name, state.reason)
        self.state = state
        return state

    async def _ready_state(self, timeout_s: float) -> ModelState:
        """The serving version's state; fills ``versions`` with each loaded version's readiness."""
        metadata = await self.client.get_model_metadata(self.name, as_json=True, client_timeout=timeout_s)
        config = await self.client.get_model_config(self.name, as_json=True, client_timeout=timeout_s)
        parameters = config["config"].get("parameters", {})
        rows = rows_per_request(config["config"], self._rows_policy.max_rows)
        if rows != self.rows_per_request:
            self.rows_per_request, self._coalescers = rows, {}
        loaded = list(metadata.get("versions") or [])
        ready = await asyncio.gather(
            *(self.client.is_model_ready(self.name, version, client_timeout=timeout_s) for version in loaded)
        )
        self.versions = {
            version: ModelState(
                is_ready,
                f"version {version} of {self.name!r} is {'ready' if is_ready else 'not ready'} on {self.url}",
                version,
                version_build_id(parameters, version),
            )
            for version, is_ready in zip(loaded, ready)
        }
        serving = serving_version(loaded, parameters, self.serving_override)
        state = self.versions.get(serving)
        if state is None:
            return ModelState(False, f"serving version {serving or '?'} of {self.name!r} is not loaded on {self.url}")
        return ModelState(state.ready, f"model {self.name!r} version {serving} on {self.url}", serving, state.build_id)

    def version_state(self, version: str) -> ModelState:
        """The readiness of one loaded version (not ready when it is not loaded here)."""
        state = self.versions.get(version)
        if state is None:
            return ModelState(False, f"version {version} of {self.name!r} is not loaded on {self.url}")
        return state

    async def infer(
        self,
        tensors: Sequence[Tensor],
        timeout_s: float,
        metadata: tuple[tuple[str, str], ...] | None = None,
        version: str | None = None,
    ) -> InferOutputs:
        """One inference under ``timeout_s``; on expiry the gRPC call to Triton is cancelled.
        ``metadata``: sent with the call (the W3C ``traceparent``); ``version``: the version to
        call (None: the serving one)."""
        state = self.state if version is None else self.version_state(version)
        if not state.ready:
            raise BackendUnavailable(f"{self.name} unavailable: {state.reason}")
        if timeout_s <= 0:
            raise DeadlineExceeded("the deadline expired before the model could be called")
        try:
            if self.rows_per_request > 1:
                return await self._coalescer(state.version).infer(tensors, timeout_s, metadata)
            return await self.stub.infer(infer_request(self.name, state.version, tensors), timeout_s, metadata)
        except grpc.aio.AioRpcError as exc:
            raise self._translate(exc.code(), exc.details() or "") from None
        except asyncio.TimeoutError:
            raise DeadlineExceeded(f"model {self.name!r} did not answer within {timeout_s:.3f}s") from None

    def _coalescer(self, version: str) -> RowCoalescer:
        coalescer = self._coalescers.get(version)
        if coalescer is None:
            policy = self._rows_policy
            coalescer = self._coalescers[version] = RowCoalescer(
                self.stub, self.name, version, self.rows_per_request, policy.max_wait_s, policy.busy_requests
            )
        return coalescer

    def _translate(self, code: grpc.StatusCode, message: str) -> RequestError:
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            return DeadlineExceeded(f"model {self.name!r} did not answer before the deadline")
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
            return BackendUnavailable(f"Triton at {self.url} (pool {self.pool_name}) is unavailable: {message}")
        return BackendFailed(f"model {self.name!r} on {self.url} failed the call (StatusCode.{code.name}): {message}")
