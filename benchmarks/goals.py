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

Comparison = Literal[">=", "<=", "info"]
_COMPARE = {">=": operator.ge, "<=": operator.le}

MET = "met"
NOT_MET = "not met"
NOT_MEASURED = "not measured"
INFORMATION = "information"


@dataclass(frozen=True)
class Goal:
    id: str
    figure: str  # key into the run's figures
    text: str  # what the goal says, for the table
    op: Comparison  # "info": reported beside a measured bound, never met or failed
    threshold: float
    unit: str = "x"
    bound_figure: str | None = None  # "info" goals: the figure holding the bound shown as target


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


# The goals, in the order. Figures are produced by the sections of benchmarks.suite.
GOALS = (
    Goal(
        "overhead_miss",
        "gateway_over_floor_cpu_miss",
        "gateway CPU per cache miss / floor proxy CPU per request (C=32, /proc, all threads)",
        "<=",
        1.3,
    ),
    Goal(
        "overhead_hit",
        "gateway_over_floor_cpu_hit",
        "gateway CPU per cache hit / floor proxy CPU per request (C=32, /proc, all threads)",
        "<=",
        1.3,
    ),
    Goal(
        "dedicated_throughput",
        "dedicated_gateway_over_direct_throughput",
        "dedicated cores: gateway throughput / direct Triton (C=32, cache off)",
        ">=",
        0.9,
    ),
    Goal(
        "dedicated_p50_added",
        "dedicated_gateway_minus_direct_p50_ms",
        "dedicated cores: gateway p50 - direct p50, open loop at ½ the gateway's capacity",
        "<=",
        1.0,
        "ms",
    ),
    Goal(
        "dedicated_p99_added",
        "dedicated_gateway_minus_direct_p99_ms",
        "dedicated cores: gateway p99 - direct p99, open loop at ½ the gateway's capacity",
        "<=",
        2.0,
        "ms",
    ),
    Goal(
        "dedicated_hit_p99",
        "dedicated_cache_hit_p99_ms",
        "dedicated cores: cache hit p99 end to end, open loop at the same rate",
        "<=",
        2.0,
        "ms",
    ),
    Goal(
        "tracing_default",
        "default_tracing_over_untraced_throughput_c32",
        "throughput, default tracing (head-sampled, OTLP) / tracing off, C=32",
        ">=",
        0.97,
    ),
    Goal(
        "tracing_all",
        "all_traced_over_untraced_throughput_c32",
        "throughput, every request traced and exported over OTLP / tracing off, C=32",
        ">=",
        0.85,
    ),
    Goal(
        "cache_hit_throughput",
        "cache_hit_over_miss_throughput_c32",
        "cache hit throughput / miss throughput at concurrency 32",
        ">=",
        5.0,
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
    Goal(
        "shared_box",
        "gateway_over_direct_throughput_c32",
        "information: shared cores (gateway, Triton and load on the same 2 vCPUs), gateway / direct throughput "
        "at C=32, against its bound (T + L) / (T + L + floor CPU)",
        "info",
        math.nan,
        bound_figure="shared_box_bound",
    ),
)


def evaluate(goal: Goal, figure: Mapping[str, Any] | None, bound: Mapping[str, Any] | None = None) -> GoalResult:
    """``figure``: a ``stats.spread`` dict, optionally with ``values`` (the repetitions);
    ``bound``: the bound figure of an "info" goal."""
    if goal.op == "info":
        bound_median = float(bound["median"]) if bound else math.nan
        target = f"bound {bound_median:.2f}" if math.isfinite(bound_median) else "bound not measured"
    else:
        target = f"{goal.op} {goal.threshold:g}{'' if goal.unit == 'x' else ' '}{goal.unit}"
    median = float(figure["median"]) if figure else math.nan
    if not math.isfinite(median):
        return GoalResult(goal.id, goal.text, target, NOT_MEASURED, math.nan, math.nan, math.nan, False, goal.unit)
    if goal.op == "info":
        low, high = float(figure.get("min", median)), float(figure.get("max", median))
        return GoalResult(goal.id, goal.text, target, INFORMATION, median, low, high, False, goal.unit)
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
    return [
        evaluate(goal, figures.get(goal.figure), figures.get(goal.bound_figure) if goal.bound_figure else None)
        for goal in goals
    ]
