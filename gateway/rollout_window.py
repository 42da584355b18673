"""A candidate's recent calls over a sliding time window, judged against its SLOs.

The gateway rolls a candidate back by itself when, over the last ``window_s`` seconds and with
at least ``min_calls`` calls, its error rate is above ``max_error_rate`` or its p99 latency is
above ``max_p99_ms`` (nearest-rank percentile, as most SLO tools compute it).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

Breach = Literal["error_rate", "p99"]
P99 = 0.99


@dataclass(frozen=True)
class Slo:
    window_s: float
    min_calls: int
    max_error_rate: float
    max_p99_ms: float


@dataclass(frozen=True)
class Verdict:
    """A broken SLO: which, and the figures that broke it."""

    breach: Breach
    calls: int
    error_rate: float
    p99_ms: float

    def describe(self, slo: Slo) -> str:
        return (
            f"{self.calls} calls in {slo.window_s:g}s: error rate {self.error_rate:.1%} (SLO {slo.max_error_rate:.1%}), "
            f"p99 {self.p99_ms:.1f} ms (SLO {slo.max_p99_ms:g} ms)"
        )


def nearest_rank(sorted_values: list[float], quantile: float) -> float:
    """The nearest-rank percentile: the smallest value with at least ``quantile`` of values at or below it."""
    return sorted_values[max(math.ceil(quantile * len(sorted_values)) - 1, 0)]


class OutcomeWindow:
    """Outcomes (time, ok, latency) of the last ``slo.window_s`` seconds of one candidate."""

    def __init__(self, slo: Slo) -> None:
        self.slo = slo
        self._calls: deque[tuple[float, bool, float]] = deque()
        self._errors = 0

    def record(self, now_s: float, ok: bool, latency_ms: float) -> None:
        self._calls.append((now_s, ok, latency_ms))
        self._errors += not ok
        self._evict(now_s)

    def _evict(self, now_s: float) -> None:
        horizon = now_s - self.slo.window_s
        calls = self._calls
        while calls and calls[0][0] < horizon:
            _, ok, _ = calls.popleft()
            self._errors -= not ok

    def summary(self, now_s: float) -> tuple[int, int, float]:
        """(calls, errors, p99 ms) over the window as of ``now_s``; p99 0 without calls."""
        self._evict(now_s)
        latencies = sorted(latency for _, _, latency in self._calls)
        return len(latencies), self._errors, nearest_rank(latencies, P99) if latencies else 0.0

    def verdict(self, now_s: float) -> Verdict | None:
        """The SLO the window breaks now (error rate first), or None (also with too few calls)."""
        self._evict(now_s)
        calls = len(self._calls)
        if calls < self.slo.min_calls or calls == 0:
            return None
        error_rate = self._errors / calls
        p99_ms = nearest_rank(sorted(latency for _, _, latency in self._calls), P99)
        if error_rate > self.slo.max_error_rate:
            return Verdict("error_rate", calls, error_rate, p99_ms)
        if p99_ms > self.slo.max_p99_ms:
            return Verdict("p99", calls, error_rate, p99_ms)
        return None
