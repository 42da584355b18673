"""Pure statistics of the benchmark: latency percentiles, median and spread of repetitions, paired ratios.

Every figure the suite reports is the median over repetitions, with the smallest and largest
value beside it. Comparisons (A vs B) are *paired*: repetition i of A ran next to repetition i
of B, so the ratio (or difference) is taken per pair and then summarised, which cancels most
of the drift of a shared, noisy machine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

LATENCY_PERCENTILES = (50, 90, 99)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100, linear interpolation, as numpy); NaN for no values."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    if len(values) == 0:
        return math.nan
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float]:
    """n, p50, p90, p99, mean and max of one run's latencies, in ms."""
    summary: dict[str, float] = {"n": len(latencies_ms)}
    for q in LATENCY_PERCENTILES:
        summary[f"p{q}_ms"] = _round(percentile(latencies_ms, q))
    summary["mean_ms"] = _round(float(np.mean(latencies_ms))) if len(latencies_ms) else math.nan
    summary["max_ms"] = _round(float(np.max(latencies_ms))) if len(latencies_ms) else math.nan
    return summary


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median of repetitions with min, max and the relative spread (max - min) / |median|."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return {"median": math.nan, "min": math.nan, "max": math.nan, "n": 0, "rel_spread": math.nan}
    median = float(np.median(finite))
    low, high = min(finite), max(finite)
    rel = (high - low) / abs(median) if median else math.inf if high != low else 0.0
    return {
        "median": _round(median),
        "min": _round(low),
        "max": _round(high),
        "n": len(finite),
        "rel_spread": _round(rel),
    }


def paired_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """a_i / b_i for each repetition pair (NaN where b_i is 0)."""
    _same_length(numerators, denominators)
    return [a / b if b else math.nan for a, b in zip(numerators, denominators, strict=True)]


def paired_differences(values: Sequence[float], baselines: Sequence[float]) -> list[float]:
    """a_i - b_i for each repetition pair."""
    _same_length(values, baselines)
    return [a - b for a, b in zip(values, baselines, strict=True)]


def _same_length(a: Sequence[float], b: Sequence[float]) -> None:
    if len(a) != len(b):
        raise ValueError(f"paired figures need as many repetitions on both sides, got {len(a)} and {len(b)}")


def _round(value: float, digits: int = 4) -> float:
    """Rounded to ``digits`` significant decimals for the report (keeps NaN and inf)."""
    if not math.isfinite(value) or value == 0:
        return value
    magnitude = math.floor(math.log10(abs(value)))
    return round(value, max(0, digits - 1 - magnitude))
