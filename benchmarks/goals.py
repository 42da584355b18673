"""Tollgate's performance goals and their evaluation against measured figures (pure).

A goal names one *figure*: a ratio or difference measured side by side in one run and
summarised over repetitions (``stats.spread``: median, min, max). A goal is met when the
median meets the threshold; ``every_repetition`` says whether each single repetition did too,
which tells a solid pass from a pass within the noise.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

Comparison = Literal[">=", "<="]
_COMPARE = {">=": operator.ge, "<=": operator.le}

MET = "met"
NOT_MET = "not met"
NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Goal:
    id: str
    figure: str  # key into the run's figures
    text: str  # what the goal says, for the table
    op: Comparison
    threshold: float
    unit: str = "x"


@dataclass(frozen=True)
class GoalResult:
    id: str
    text: str
    target: str
    status: str  # MET, NOT_MET or NOT_MEASURED
    median: float
    low: float
    high: float
    every_repetition: bool
    unit: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# The goals, in its order. Figures are produced by the sections of benchmarks.suite.
GOALS = (
    Goal(
        "gateway_throughput",
        "gateway_over_direct_throughput_c32",
        "gateway throughput / direct Triton at concurrency 32 (cache off)",
        ">=",
        0.85,
    ),
    Goal(
        "gateway_p99_overhead",
        "gateway_minus_direct_p99_ms_half_load",
        "gateway p99 - direct Triton p99 at half the saturation rate",
        "<=",
        2.0,
        "ms",
    ),
    Goal("cache_hit_p99", "cache_hit_p99_ms", "cache hit p99 latency (one request in flight)", "<=", 2.0, "ms"),
    Goal(
        "cache_hit_throughput",
        "cache_hit_over_miss_throughput_c32",
        "cache hit throughput / miss throughput at concurrency 32",
        ">=",
        5.0,
    ),
    Goal(
        "tracing_throughput",
        "traced_over_untraced_throughput_c32",
        "throughput with cost tagging + tracing (spans exported) / tracing off",
        ">=",
        0.97,
    ),
    Goal(
        "int8_speedup",
        "encoder_int8_over_fp32_throughput",
        "query encoder int8 / fp32 serving throughput on CPU (through Triton)",
        ">=",
        2.0,
    ),
    Goal(
        "int8_recall_loss",
        "encoder_int8_recall_at_10_relative_loss_pct",
        "query encoder int8 recall@10 loss relative to fp32",
        "<=",
        1.0,
        "%",
    ),
)


def evaluate(goal: Goal, figure: Mapping[str, Any] | None) -> GoalResult:
    """``figure``: a ``stats.spread`` dict, optionally with ``values`` (the repetitions)."""
    target = f"{goal.op} {goal.threshold:g}{'' if goal.unit == 'x' else ' '}{goal.unit}"
    median = float(figure["median"]) if figure else math.nan
    if not math.isfinite(median):
        return GoalResult(goal.id, goal.text, target, NOT_MEASURED, math.nan, math.nan, math.nan, False, goal.unit)
    compare = _COMPARE[goal.op]
    values = [float(v) for v in figure.get("values", [median]) if v is not None and math.isfinite(float(v))]
    return GoalResult(
        id=goal.id,
        text=goal.text,
        target=target,
        status=MET if compare(median, goal.threshold) else NOT_MET,
        median=median,
        low=float(figure.get("min", median)),
        high=float(figure.get("max", median)),
        every_repetition=bool(values) and all(compare(v, goal.threshold) for v in values),
        unit=goal.unit,
    )


def evaluate_all(figures: Mapping[str, Mapping[str, Any]], goals: tuple[Goal, ...] = GOALS) -> list[GoalResult]:
    return [evaluate(goal, figures.get(goal.figure)) for goal in goals]
