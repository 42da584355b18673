"""Admission control at the front door: bounded concurrency per gateway and a token bucket per
tenant. Over either limit a call is refused at once with RESOURCE_EXHAUSTED (and recorded, like
every request), never queued for seconds.

The buckets live in each gateway process: with N replicas behind a round-robin balancer a
tenant gets N times its per-replica rate (set the rate per replica accordingly).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.errors import RequestError


class Overloaded(RequestError):
    """The gateway is at its concurrency limit, or the tenant over its rate."""

    status = "RESOURCE_EXHAUSTED"


@dataclass(frozen=True)
class TenantRate:
    """Sustained calls per second and the burst a tenant may make above it."""

    per_second: float
    burst: float


class TokenBucket:
    def __init__(self, rate: TenantRate, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._clock = clock
        self._tokens = rate.burst
        self._at = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._rate.burst, self._tokens + (now - self._at) * self._rate.per_second)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class Admission:
    """``enter(tenant)`` admits a call or raises Overloaded; ``leave()`` when the call is settled."""

    def __init__(
        self,
        max_in_flight: int | None,
        rates: dict[str, TenantRate],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``rates``: per registered tenant; a tenant without one is not rate-limited."""
        self._max_in_flight = max_in_flight if max_in_flight is not None else math.inf
        self._buckets = {tenant: TokenBucket(rate, clock) for tenant, rate in rates.items()}
        self.in_flight = 0

    def enter(self, tenant: str) -> None:
        if self.in_flight >= self._max_in_flight:
            raise Overloaded(f"the gateway is at its limit of {self._max_in_flight} concurrent calls; retry with backoff")
        bucket = self._buckets.get(tenant)
        if bucket is not None and not bucket.take():
            raise Overloaded(f"tenant {tenant} is over its rate limit; retry with backoff")
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1
