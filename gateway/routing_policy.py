"""Which pool serves a call: pure functions over a snapshot of the pools.

Policies order the pools by preference; :func:`choose` walks that order and picks the first
pool that is healthy and has headroom, saying why:

- ``primary``: the policy's first choice served it;
- ``fallback``: a preferred pool was unhealthy (down, not ready or ejected);
- ``overflow``: every preferred pool was healthy but at its concurrency limit.

The router adds ``retry`` when a call moves to another pool after a failure.

``gpu_first`` (the default): GPU pools before CPU pools, private before public, then the order
of the configuration. ``cheapest_within_slo``: pools whose observed latency meets the
objective come first; among them private capacity (already paid for) before public, then the
lowest expected cost per request (price per device-hour × the pool's observed compute per
request; a pool not measured yet is assumed to compute the mean of the measured ones, so it is
ranked by its price, neither free nor barred); public pools thus take traffic only when private
ones are full or too slow. A pool with no recent latency counts as meeting the objective, so
that it gets calls to be measured.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

PolicyName = Literal["gpu_first", "cheapest_within_slo"]
Reason = Literal["primary", "fallback", "overflow", "retry"]


@dataclass(frozen=True)
class PoolView:
    """What routing knows of a pool at one instant."""

    name: str
    device: str  # "gpu" | "cpu"
    location: str  # "private" | "public"
    usd_per_hour: float
    rank: int  # position in the configuration
    healthy: bool
    in_flight: int
    max_in_flight: int
    latency_ms: float | None = None  # recent latency of calls there; None when unknown
    compute_ns: float | None = None  # recent model compute per call; None when unknown

    @property
    def has_headroom(self) -> bool:
        return self.in_flight < self.max_in_flight

    def expected_cost(self, unknown_compute_ns: float) -> float:
        """Relative cost of one call here: price × compute per call, ``unknown_compute_ns`` when
        this pool has no measurement yet."""
        return self.usd_per_hour * (self.compute_ns if self.compute_ns is not None else unknown_compute_ns)


@dataclass(frozen=True)
class RouteDecision:
    pool: str
    reason: Reason


class _Ranked(Protocol):
    device: str
    location: str
    rank: int


def gpu_first_key(pool: _Ranked) -> tuple[bool, bool, int]:
    """GPU before CPU, private before public, then configuration order."""
    return (pool.device != "gpu", pool.location != "private", pool.rank)


def gpu_first(pools: Sequence[PoolView], latency_objective_ms: float) -> list[PoolView]:
    return sorted(pools, key=gpu_first_key)


def cheapest_within_slo(pools: Sequence[PoolView], latency_objective_ms: float) -> list[PoolView]:
    def meets_objective(pool: PoolView) -> bool:
        return pool.latency_ms is None or pool.latency_ms <= latency_objective_ms

    unknown_compute_ns = typical_compute_ns(pools)
    return sorted(
        pools,
        key=lambda p: (not meets_objective(p), p.location != "private", p.expected_cost(unknown_compute_ns), p.rank),
    )


def typical_compute_ns(pools: Sequence[PoolView]) -> float:
    """What a pool with no measurement is assumed to compute per call: the mean of the measured
    pools, so that it is ranked by its price against them rather than as if it computed nothing
    (any constant would be arbitrary next to measurements in nanoseconds). With no measurement
    anywhere, 1.0 everywhere: pools are ranked by price alone."""
    known = [p.compute_ns for p in pools if p.compute_ns is not None]
    return sum(known) / len(known) if known else 1.0


POLICIES: dict[str, Callable[[Sequence[PoolView], float], list[PoolView]]] = {
    "gpu_first": gpu_first,
    "cheapest_within_slo": cheapest_within_slo,
}


def choose(policy: PolicyName, pools: Sequence[PoolView], latency_objective_ms: float) -> RouteDecision | None:
    """The pool to call, or None when no pool is both healthy and below its limit."""
    ordered = POLICIES[policy](pools, latency_objective_ms)
    for position, pool in enumerate(ordered):
        if pool.healthy and pool.has_headroom:
            if position == 0:
                return RouteDecision(pool.name, "primary")
            preferred = ordered[:position]
            saturated_only = all(p.healthy and not p.has_headroom for p in preferred)
            return RouteDecision(pool.name, "overflow" if saturated_only else "fallback")
    return None
