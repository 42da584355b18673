"""Routes each model call to a pool: policy, bounded in-flight, retries and passive health.

A call goes to the pool the policy prefers among those that are healthy and below their
in-flight limit. If that endpoint is unreachable or not ready (a safe failure: the call did
not run, and inference has no side effects), the call is retried on the next choice, within
the caller's deadline and the retry budget. Each Triton call is also bounded by the gateway's
own ``call_timeout_s``: an endpoint that does not answer within it has failed (and the call is
retried elsewhere if the caller's deadline allows), while a call cut by the *caller's* deadline,
or cancelled by the caller, says nothing about the endpoint and never counts towards ejecting
it. Ejections never take out more than ``max_ejection_percent`` of the endpoints (at least one
may go, never the last). When no pool is healthy the call fails UNAVAILABLE, naming what is
down; when every healthy pool is full it is shed with RESOURCE_EXHAUSTED instead of queueing
without bound.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import tritonclient.grpc.aio as triton_aio

from gateway.errors import BackendFailed, BackendUnavailable, DeadlineExceeded, PoolsSaturated
from gateway.pool import Endpoint, Pool
from gateway.retry_budget import RetryBudget
from gateway.routing_policy import PolicyName, Reason, choose, gpu_first_key
from gateway.settlement import note_attempt
from gateway.triton_infer import InferOutputs, Tensor
from gateway.triton_model import ModelState

# gRPC metadata sent with a model call.
Metadata = tuple[tuple[str, str], ...] | None

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Placement:
    """Where a call ran and why there."""

    pool: str
    device: str
    location: str
    reason: Reason
    attempts: int
    endpoint: str = ""  # host:port of the Triton that answered


class Router:
    def __init__(
        self,
        pools: list[Pool],
        policy: PolicyName,
        latency_objective_ms: float,
        retry_budget: RetryBudget,
        max_attempts: int,
        *,
        call_timeout_s: float = math.inf,
        max_ejection_percent: float = 10.0,
        on_ejection: Callable[[Endpoint], None] | None = None,
    ) -> None:
        self.pools = pools
        self._policy = policy
        self._objective_ms = latency_objective_ms
        self._budget = retry_budget
        self._max_attempts = max_attempts
        self._call_timeout_s = call_timeout_s
        self._max_ejection_percent = max_ejection_percent
        self._on_ejection = on_ejection
        self._by_name = {pool.name: pool for pool in pools}
        self._endpoints = [endpoint for pool in pools for endpoint in pool.endpoints]
        # gpu_first orders pools by what never changes: walk that order without building views.
        self._static_order = sorted(pools, key=gpu_first_key) if policy == "gpu_first" else None
        self._models: dict[str, RoutedModel] = {}

    def model(self, name: str) -> RoutedModel:
        """The one RoutedModel of ``name`` (the routes and the rollout share it)."""
        routed = self._models.get(name)
        if routed is None:
            routed = self._models[name] = RoutedModel(name, self)
        return routed

    def endpoints(self) -> list[Endpoint]:
        return list(self._endpoints)

    def busy_share(self) -> float:
        """Calls in flight over the pools' concurrency limits, all pools together (0 to 1)."""
        return sum(pool.in_flight for pool in self.pools) / sum(pool.max_in_flight for pool in self.pools)

    def version_state(self, model: str, version: str) -> ModelState:
        """Ready when some endpoint can serve that version of the model."""
        for endpoint in self._endpoints:
            if endpoint.can_serve(model, version):
                return endpoint.models[model].version_state(version)
        reasons = "; ".join(pool.describe(model, version) for pool in self.pools)
        return ModelState(False, f"no pool can serve version {version} of {model!r}: {reasons}", version)

    def pin_serving(self, model: str, version: str | None) -> None:
        """Every endpoint serves ``version`` of ``model`` from now on (None: the config's)."""
        for endpoint in self._endpoints:
            endpoint.models[model].pin_serving(version)

    def pool(self, name: str) -> Pool:
        return self._by_name[name]

    def stats_clients(self) -> dict[str, list[triton_aio.InferenceServerClient]]:
        """Pool name -> the Triton client of each of its endpoints (for reading their statistics)."""
        return {pool.name: [endpoint.client for endpoint in pool.endpoints] for pool in self.pools}

    def state(self, model: str) -> ModelState:
        """Ready when some pool can serve the model; version and build of the preferred one that can."""
        for pool in self.pools:
            for endpoint in pool.endpoints:
                if endpoint.can_serve(model):
                    return endpoint.models[model].state
        states = [(e.models[model].state, e) for pool in self.pools for e in pool.endpoints]
        known = next((state for state, _ in states if state.build_id), ModelState(False, ""))
        reason = f"no pool can serve {model!r}: " + "; ".join(pool.describe(model) for pool in self.pools)
        return ModelState(False, reason, known.version, known.build_id)

    async def check_readiness(self, timeout_s: float) -> None:
        await asyncio.gather(*(e.check_readiness(timeout_s) for pool in self.pools for e in pool.endpoints))

    async def infer(
        self, model: str, tensors: Sequence[Tensor], timeout_s: float, metadata: Metadata = None,
        version: str | None = None,
    ) -> tuple[InferOutputs, Placement]:
        """``metadata`` goes with every attempt (the W3C ``traceparent`` of the caller's span);
        ``version``: the model version to call (None: the serving one)."""
        deadline = time.monotonic() + timeout_s
        self._budget.record_request()
        tried: set[Endpoint] = set()
        failure: BackendUnavailable | None = None
        for attempt in range(1, self._max_attempts + 1):
            decision = self._decide(model, tried, version)
            if decision is None:
                raise failure or self._nothing_to_call(model, version)
            if failure is not None and not self._budget.try_acquire():
                raise failure
            pool, endpoint, chosen_reason = decision
            tried.add(endpoint)
            note_attempt(pool.name)  # a call that fails from here on still records its pool
            remaining_s = deadline - time.monotonic()
            limit_s = min(remaining_s, self._call_timeout_s)
            try:
                result = await self._call(pool, endpoint, model, tensors, limit_s, metadata, version)
            except BackendUnavailable as error:
                self._record_failure(endpoint)
                failure = error
                continue
            except DeadlineExceeded:
                if limit_s >= remaining_s:
                    raise  # the caller's deadline: not the endpoint's fault
                self._record_failure(endpoint)
                failure = BackendUnavailable(
                    f"{endpoint.url} ({pool.name}) did not answer within the gateway's call limit of {limit_s:.3f}s"
                )
                continue
            except BackendFailed:
                self._record_failure(endpoint)
                raise
            endpoint.outlier.record_success()
            reason: Reason = chosen_reason if attempt == 1 else "retry"
            return result, Placement(pool.name, pool.device, pool.location, reason, attempt, endpoint.url)
        assert failure is not None
        raise failure

    def _decide(self, model: str, tried: set[Endpoint], version: str | None) -> tuple[Pool, Endpoint, Reason] | None:
        """The policy's pool and its endpoint for this attempt, and why (routing_policy.choose)."""
        if self._static_order is not None:
            return _first_servable(self._static_order, model, tried, version)
        decision = choose(self._policy, [p.view(model, tried, version) for p in self.pools], self._objective_ms)
        if decision is None:
            return None
        pool = self._by_name[decision.pool]
        endpoint = pool.pick(model, tried, version)
        assert endpoint is not None  # choose() only returns pools with a servable endpoint
        return pool, endpoint, decision.reason

    def _record_failure(self, endpoint: Endpoint) -> None:
        if endpoint.outlier.record_failure(may_eject=self._may_eject()):
            log.warning(
                "ejected Triton endpoint %s of pool %s for %.1fs after %s",
                endpoint.url, endpoint.pool_name, endpoint.outlier.ejected_for_s, "repeated failures",
            )
            if self._on_ejection is not None:
                self._on_ejection(endpoint)

    def _may_eject(self) -> bool:
        """Envoy's max ejection percent: at least one endpoint may be ejected, never the last."""
        ejected = sum(endpoint.outlier.is_ejected() for endpoint in self._endpoints)
        allowed = max(1, math.floor(len(self._endpoints) * self._max_ejection_percent / 100))
        return ejected < min(allowed, len(self._endpoints) - 1)

    def record_compute(self, pool: str, model: str, compute_ns: int) -> None:
        """The model-measured compute of a call, for policies that weigh cost per call."""
        self._by_name[pool].observe_compute(model, compute_ns)

    async def _call(
        self,
        pool: Pool,
        endpoint: Endpoint,
        model: str,
        tensors: Sequence[Tensor],
        timeout_s: float,
        metadata: Metadata,
        version: str | None,
    ) -> InferOutputs:
        pool.in_flight += 1
        endpoint.in_flight += 1
        started = time.perf_counter()
        try:
            result = await endpoint.models[model].infer(tensors, timeout_s, metadata, version)
        finally:
            pool.in_flight -= 1
            endpoint.in_flight -= 1
        pool.observe_latency((time.perf_counter() - started) * 1000)
        return result

    def _nothing_to_call(self, model: str, version: str | None) -> Exception:
        reasons = "; ".join(pool.describe(model, version) for pool in self.pools)
        if any(e.can_serve(model, version) for pool in self.pools for e in pool.endpoints):
            return PoolsSaturated(f"every pool serving {model!r} is at its concurrency limit: {reasons}")
        return BackendUnavailable(f"no pool can serve {model!r}: {reasons}")

    async def close(self) -> None:
        await asyncio.gather(*(e.close() for pool in self.pools for e in pool.endpoints))


def _first_servable(
    ordered: list[Pool], model: str, tried: set[Endpoint], version: str | None = None
) -> tuple[Pool, Endpoint, Reason] | None:
    """routing_policy.choose over pools already in the policy's order."""
    for position, pool in enumerate(ordered):
        if pool.in_flight >= pool.max_in_flight:
            continue
        endpoint = pool.pick(model, tried, version)
        if endpoint is None:
            continue
        if position == 0:
            return pool, endpoint, "primary"
        preferred = ordered[:position]
        saturated_only = all(
            p.in_flight >= p.max_in_flight and p.pick(model, tried, version) is not None for p in preferred
        )
        return pool, endpoint, "overflow" if saturated_only else "fallback"
    return None


class RoutedModel:
    """A model as the routes see it: one name, served by whichever pool the router picks."""

    def __init__(self, name: str, router: Router) -> None:
        self.name = name
        self._router = router
        # The model's rollout while one is active (shadow or canary), else None: the one check
        # a call makes when no rollout runs (gateway/rollout.py sets it).
        self.rollout: Any = None

    @property
    def state(self) -> ModelState:
        return self._router.state(self.name)

    def version_state(self, version: str) -> ModelState:
        return self._router.version_state(self.name, version)

    def busy_share(self) -> float:
        return self._router.busy_share()

    async def infer(
        self, tensors: Sequence[Tensor], timeout_s: float, metadata: Metadata = None, version: str | None = None
    ) -> tuple[InferOutputs, Placement]:
        return await self._router.infer(self.name, tensors, timeout_s, metadata, version)

    def record_compute(self, placement: Placement, compute_ns: int) -> None:
        self._router.record_compute(placement.pool, self.name, compute_ns)
