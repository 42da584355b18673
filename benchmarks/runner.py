"""How long and how often things are measured (profiles), and the side-by-side runner the sections share."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from benchmarks.load_spec import LoadSpec
from benchmarks.loadgen import run_load
from benchmarks.machine import load_now
from benchmarks.proc import cpu_seconds

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Profile:
    name: str
    repetitions: int  # of every side-by-side comparison
    run_seconds: float  # measured phase of one closed-loop run
    latency_seconds: float  # measured phase of one open-loop (fixed offered load) run
    warmup_seconds: float  # untimed, before each run
    warmup_requests: int
    concurrencies: tuple[int, ...]
    mix_requests: int  # calls of one Zipf-mix cache run
    scaling_sizes: tuple[int, ...]  # catalogue sizes of the scaling section
    scaling_repeats: int  # timed calls per kernel and batch size in the scaling section
    max_requests: int = 100_000  # count bound of every run (time is the binding bound here)
    goal_repetitions: int = 3  # of the comparisons the gateway's goals read (more: a noisy shared box)


FULL = Profile(
    name="full",
    repetitions=3,
    run_seconds=3.0,
    latency_seconds=4.0,
    warmup_seconds=0.6,
    warmup_requests=300,
    concurrencies=(1, 8, 32),
    mix_requests=1500,
    scaling_sizes=(3659, 40_000, 400_000),
    scaling_repeats=40,
    goal_repetitions=5,
)
QUICK = Profile(
    name="quick",
    repetitions=2,
    run_seconds=1.2,
    latency_seconds=1.5,
    warmup_seconds=0.3,
    warmup_requests=100,
    concurrencies=(1, 8, 32),
    mix_requests=500,
    scaling_sizes=(3659, 40_000),
    scaling_repeats=12,
    goal_repetitions=2,
)
PROFILES = {profile.name: profile for profile in (FULL, QUICK)}


class Runner:
    """Runs load-generator specs, alone or interleaved side by side, and keeps every raw result."""

    def __init__(self, profile: Profile, api_keys: Mapping[str, str] | None = None) -> None:
        """``api_keys``: tenant -> token, sent by the gateway targets (the bench stack's keys)."""
        self.api_keys = dict(api_keys or {})
        self.profile = profile
        self.runs: list[dict[str, Any]] = []

    def run(self, watch: Mapping[str, list[int]] | None = None, **fields: Any) -> dict[str, Any]:
        """One load-generator run of ``LoadSpec(**fields)`` (profile defaults filled in). ``watch``:
        processes whose CPU seconds over the whole run (warm-up included) go into
        ``result["process_cpu_s"]``, with ``result["requests_incl_warmup"]`` to divide them by."""
        fields.setdefault("api_keys", self.api_keys)
        fields.setdefault("max_requests", self.profile.max_requests)
        fields.setdefault("max_seconds", self.profile.run_seconds)
        fields.setdefault("warmup_seconds", self.profile.warmup_seconds)
        fields.setdefault("warmup_requests", self.profile.warmup_requests)
        spec = LoadSpec(**fields)
        before = load_now()
        cpu_before = {name: cpu_seconds(pids) for name, pids in (watch or {}).items()}
        result = run_load(spec)
        result["machine_load_before"] = before
        if watch:
            result["process_cpu_s"] = {
                name: round(cpu_seconds(pids) - cpu_before[name], 3) for name, pids in watch.items()
            }
            result["requests_incl_warmup"] = result["sent"] + (result["warmup"] or {}).get("sent", 0)
        self.runs.append({k: v for k, v in result.items() if k != "outcomes"})
        log.info(
            "%-28s %-6s C=%-3d %8.1f rps  p50 %6.2f ms  p99 %6.2f ms  errors %d",
            spec.label or spec.target,
            result["mode"],
            spec.concurrency,
            result["throughput_rps"],
            result["latency"]["p50_ms"],
            result["latency"]["p99_ms"],
            result["errors"],
        )
        return result

    def side_by_side(
        self,
        variants: Mapping[str, Mapping[str, Any]],
        repetitions: int | None = None,
        watch: Mapping[str, list[int]] | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        """Repetition r runs every variant once, in alternating order (ABAB.., then BABA..), so
        that drift and neighbours' noise hit all variants alike; returns the results by variant."""
        names = list(variants)
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for repetition in range(repetitions or self.profile.repetitions):
            for name in names if repetition % 2 == 0 else reversed(names):
                results[name].append(self.run(watch=watch, label=name, **variants[name]))
        return results


def values(results: list[dict[str, Any]], *path: str) -> list[float]:
    """One figure out of each repetition's result, e.g. ``values(runs, "latency", "p99_ms")``."""
    out = []
    for result in results:
        value: Any = result
        for key in path:
            value = value[key]
        out.append(float(value))
    return out


def cpu_us_per_request(results: list[dict[str, Any]], process: str) -> list[float]:
    """CPU microseconds ``process`` spent per request sent, for each watched run."""
    return [r["process_cpu_s"][process] / max(1, r["requests_incl_warmup"]) * 1e6 for r in results]


def errors_of(results: Mapping[str, list[dict[str, Any]]]) -> dict[str, int]:
    return {name: sum(r["errors"] + r.get("overflow", 0) for r in runs) for name, runs in results.items()}
