"""Runtime state of the pools: endpoints with their models' readiness, passive health and load."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import tritonclient.grpc as triton_grpc
import tritonclient.grpc.aio as triton_aio

from gateway.outlier_detection import OutlierDetector
from gateway.routing_policy import PoolView
from gateway.triton_infer import InferStub
from gateway.triton_model import NO_COALESCING, ModelState, RowsPolicy, TritonModel

# Weight of the newest observation in the pools' moving averages of latency and compute.
EWMA_WEIGHT = 0.2


class Endpoint:
    """One Triton server of a pool."""

    def __init__(
        self,
        url: str,
        pool: str,
        device: str,
        model_names: list[str],
        outlier: OutlierDetector,
        max_reconnect_backoff_s: float = 1.0,
        rows_policy: RowsPolicy = NO_COALESCING,
    ) -> None:
        self.url = url
        self.pool_name = pool
        channel_args = _channel_args(max_reconnect_backoff_s)
        self.client = triton_aio.InferenceServerClient(url=url, channel_args=channel_args)
        self.stub = InferStub(url, channel_args)
        self.models = {
            name: TritonModel(self.client, self.stub, url, name, pool, device, rows_policy) for name in model_names
        }
        self.outlier = outlier
        self.in_flight = 0

    def can_serve(self, model: str, version: str | None = None) -> bool:
        """``version``: a specific loaded version (None: the serving one)."""
        triton_model = self.models[model]
        state = triton_model.state if version is None else triton_model.version_state(version)
        return state.ready and not self.outlier.is_ejected()

    def why_not(self, model: str, version: str | None = None) -> str:
        if self.outlier.is_ejected():
            return f"{self.url} ejected for {self.outlier.ejected_for_s:.1f}s after repeated failures"
        triton_model = self.models[model]
        return (triton_model.state if version is None else triton_model.version_state(version)).reason

    async def check_readiness(self, timeout_s: float) -> list[ModelState]:
        return list(await asyncio.gather(*(model.check_readiness(timeout_s) for model in self.models.values())))

    async def close(self) -> None:
        await self.client.close()
        await self.stub.close()


@dataclass
class Pool:
    name: str
    device: str
    location: str
    usd_per_hour: float
    rank: int
    max_in_flight: int
    endpoints: list[Endpoint]
    # How long an observed latency counts: a pool judged slow gets no calls to prove it is
    # fast again, so once its last observation is this old its latency is unknown again and
    # the policy tries it.
    latency_memory_s: float = 5.0
    in_flight: int = 0
    latency_ms: float | None = None
    latency_observed_s: float = 0.0  # time.monotonic() of the last observation
    compute_ns: dict[str, float] = field(default_factory=dict)

    def pick(self, model: str, tried: set[Endpoint], version: str | None = None) -> Endpoint | None:
        """The least loaded endpoint that can serve ``model`` (``version``: a specific one) and
        was not tried for this call."""
        if len(self.endpoints) == 1:
            endpoint = self.endpoints[0]
            return endpoint if endpoint not in tried and endpoint.can_serve(model, version) else None
        candidates = [e for e in self.endpoints if e not in tried and e.can_serve(model, version)]
        return min(candidates, key=lambda e: e.in_flight, default=None)

    def view(self, model: str, tried: set[Endpoint], version: str | None = None) -> PoolView:
        return PoolView(
            name=self.name,
            device=self.device,
            location=self.location,
            usd_per_hour=self.usd_per_hour,
            rank=self.rank,
            healthy=self.pick(model, tried, version) is not None,
            in_flight=self.in_flight,
            max_in_flight=self.max_in_flight,
            latency_ms=self.recent_latency_ms(),
            compute_ns=self.compute_ns.get(model),
        )

    def observe_latency(self, latency_ms: float) -> None:
        self.latency_ms = _ewma(self.recent_latency_ms(), latency_ms)
        self.latency_observed_s = time.monotonic()

    def recent_latency_ms(self) -> float | None:
        """The moving average of recent latency; None when there was no call for latency_memory_s."""
        if time.monotonic() - self.latency_observed_s > self.latency_memory_s:
            return None
        return self.latency_ms

    def observe_compute(self, model: str, compute_ns: int) -> None:
        self.compute_ns[model] = _ewma(self.compute_ns.get(model), float(compute_ns))

    def describe(self, model: str, version: str | None = None) -> str:
        """Why the pool cannot take ``model`` right now, for error messages."""
        if any(e.can_serve(model, version) for e in self.endpoints):
            return f"pool {self.name} is full ({self.in_flight}/{self.max_in_flight} in flight)"
        return f"pool {self.name}: " + "; ".join(e.why_not(model, version) for e in self.endpoints)


def _channel_args(max_reconnect_backoff_s: float) -> list[tuple[str, int]]:
    """tritonclient's own channel options, plus a short reconnect backoff so that an endpoint
    that comes back is reachable within a readiness poll or two, not after gRPC's 120 s."""
    backoff_ms = int(max_reconnect_backoff_s * 1000)
    return [
        ("grpc.max_send_message_length", triton_grpc.MAX_GRPC_MESSAGE_SIZE),
        ("grpc.max_receive_message_length", triton_grpc.MAX_GRPC_MESSAGE_SIZE),
        ("grpc.initial_reconnect_backoff_ms", min(backoff_ms, 1000)),
        ("grpc.min_reconnect_backoff_ms", min(backoff_ms, 1000)),
        ("grpc.max_reconnect_backoff_ms", backoff_ms),
    ]


def _ewma(previous: float | None, value: float) -> float:
    return value if previous is None else (1 - EWMA_WEIGHT) * previous + EWMA_WEIGHT * value
