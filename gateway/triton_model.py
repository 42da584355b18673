"""One model on one Triton endpoint: its readiness, identity (version, build) and inference.

Readiness and identity go through tritonclient; inference through the raw stub of
gateway/triton_infer.py (the hot path).

Triton's failures are translated here, once, into the gateway's domain errors: unreachable or
not ready -> UNAVAILABLE, out of time -> DEADLINE_EXCEEDED, anything else -> INTERNAL.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from collections.abc import Sequence

import grpc
import tritonclient.grpc.aio as triton_aio
from tritonclient.utils import InferenceServerException

from gateway.errors import BackendFailed, BackendUnavailable, DeadlineExceeded, RequestError
from gateway.triton_infer import InferOutputs, InferStub, Tensor, infer_request

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
        self,
        client: triton_aio.InferenceServerClient,
        stub: InferStub,
        url: str,
        name: str,
        pool_name: str,
        device: str,
    ) -> None:
        """``client``: tritonclient, for readiness and identity; ``stub``: the inference calls."""
        self.client = client
        self.stub = stub
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

    async def infer(
        self, tensors: Sequence[Tensor], timeout_s: float, metadata: tuple[tuple[str, str], ...] | None = None
    ) -> InferOutputs:
        """One inference under ``timeout_s``; on expiry the gRPC call to Triton is cancelled.
        ``metadata``: sent with the call (the W3C ``traceparent``)."""
        state = self.state
        if not state.ready:
            raise BackendUnavailable(f"{self.name} unavailable: {state.reason}")
        if timeout_s <= 0:
            raise DeadlineExceeded("the deadline expired before the model could be called")
        try:
            return await self.stub.infer(infer_request(self.name, state.version, tensors), timeout_s, metadata)
        except grpc.aio.AioRpcError as exc:
            raise self._translate(exc.code(), exc.details() or "") from None
        except asyncio.TimeoutError:
            raise DeadlineExceeded(f"model {self.name!r} did not answer within {timeout_s:.3f}s") from None

    def _translate(self, code: grpc.StatusCode, message: str) -> RequestError:
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            return DeadlineExceeded(f"model {self.name!r} did not answer before the deadline")
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
            return BackendUnavailable(f"Triton at {self.url} (pool {self.pool_name}) is unavailable: {message}")
        return BackendFailed(f"model {self.name!r} on {self.url} failed the call (StatusCode.{code.name}): {message}")
