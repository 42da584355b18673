"""Sections, rows and their rendering: a terminal table (rich) and the Markdown of README's Performance section.

A row compares a *baseline* with a *candidate* measured side by side; each side and the
comparison (ratio or difference, per repetition pair) is a ``stats.spread`` dict, printed as
``median (min–max)``. A row may have only a candidate (a single figure).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from benchmarks.goals import MET, NOT_MET, GoalResult
from benchmarks.stats import paired_differences, paired_ratios, spread

RATIO = "ratio"
DIFF = "diff"


@dataclass
class Section:
    key: str
    title: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)  # named figures the goals read
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def add_row(
        self,
        metric: str,
        unit: str,
        candidate: tuple[str, Sequence[float]],
        baseline: tuple[str, Sequence[float]] | None = None,
        comparison: str | None = None,
        figure: str | None = None,
    ) -> dict[str, Any]:
        """Adds a row; ``comparison`` (RATIO: candidate / baseline, DIFF: candidate - baseline) is
        computed per repetition pair. ``figure`` also records the comparison (or the candidate,
        for a single figure) under that name for the goals."""
        row: dict[str, Any] = {
            "metric": metric,
            "unit": unit,
            "candidate": side(*candidate),
            "baseline": side(*baseline) if baseline else None,
            "comparison": None,
        }
        if comparison is not None:
            if baseline is None:
                raise ValueError("a comparison needs a baseline")
            pairs = paired_ratios if comparison == RATIO else paired_differences
            values = pairs(list(candidate[1]), list(baseline[1]))
            row["comparison"] = {"kind": comparison, **spread(values), "values": values}
        if figure:
            self.figures[figure] = row["comparison"] or row["candidate"]
        self.rows.append(row)
        return row


def side(label: str, values: Sequence[float]) -> dict[str, Any]:
    values = [float(v) for v in values]
    return {"label": label, **spread(values), "values": values}


# --- formatting -------------------------------------------------------------------------------


def number(value: float) -> str:
    """3 significant digits, thousands separated; NaN as a dash."""
    if value is None or not math.isfinite(value):
        return "–"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    if magnitude >= 0.01:
        return f"{value:.3f}"
    return f"{value:.3g}"


def with_range(figure: dict[str, Any] | None) -> str:
    if not figure:
        return ""
    text = number(figure["median"])
    if figure.get("n", 0) > 1 and figure["min"] != figure["max"]:
        text += f" ({number(figure['min'])}–{number(figure['max'])})"
    return text


def _cell(figure: dict[str, Any] | None, unit: str) -> str:
    if not figure:
        return ""
    suffix = "" if unit in ("", "x") else f" {unit}"
    return f"{figure['label']}: {with_range(figure)}{suffix}"


def _comparison_cell(row: dict[str, Any]) -> str:
    comparison = row["comparison"]
    if not comparison:
        return ""
    if comparison["kind"] == RATIO:
        return f"{with_range(comparison)} ×"
    sign = "+" if comparison["median"] >= 0 else ""
    unit = "" if row["unit"] in ("", "x") else f" {row['unit']}"
    return f"Δ {sign}{with_range(comparison)}{unit}"


def _goal_value(result: GoalResult) -> str:
    if not math.isfinite(result.median):
        return "–"
    figure = {"median": result.median, "min": result.low, "max": result.high, "n": 2}
    unit = "×" if result.unit == "x" else result.unit
    return f"{with_range(figure)} {unit}"


def _goal_status(result: GoalResult) -> str:
    if result.status == MET:
        return "met" if result.every_repetition else "met (median; not every repetition)"
    return result.status


# --- terminal ---------------------------------------------------------------------------------


def print_report(report: dict[str, Any], console: Console) -> None:
    machine = report["machine"]
    console.print(
        f"[bold]Tollgate benchmark[/bold] {report['profile']} profile, {machine['measured_at_utc']}, "
        f"{machine['cpus']} CPUs ({machine['cpu_model']}), load {machine['load_1m']}/{machine['load_5m']}/"
        f"{machine['load_15m']} at start, git {machine['git']['commit']}{'+dirty' if machine['git']['dirty'] else ''}; "
        f"{report['seconds']:.0f} s"
    )
    for section in report["sections"]:
        table = Table(title=f"{section['title']} ({section['seconds']:.0f} s)", title_justify="left", show_lines=False)
        for column in ("metric", "baseline", "candidate", "candidate vs baseline"):
            table.add_column(column, overflow="fold")
        for row in section["rows"]:
            metric = row["metric"] + (f" [{row['unit']}]" if row["unit"] not in ("", "x") else "")
            cells = (metric, _cell(row["baseline"], ""), _cell(row["candidate"], ""), _comparison_cell(row))
            table.add_row(*(escape(cell) for cell in cells))
        console.print(table)
        for note in section["notes"]:
            console.print(f"  note: {escape(note)}")
    goals = Table(title="Goals (median over repetitions, range in brackets)", title_justify="left")
    for column in ("goal", "measured", "target", "status"):
        goals.add_column(column, overflow="fold")
    for result in report["goals"]:
        goal = GoalResult(**result)
        colour = {MET: "green", NOT_MET: "red"}.get(goal.status, "yellow")
        goals.add_row(escape(goal.text), _goal_value(goal), goal.target, f"[{colour}]{_goal_status(goal)}[/{colour}]")
    console.print(goals)


# --- Markdown (README) ---------------------------------------------------------------------------


def _dirty(machine: dict[str, Any]) -> str:
    return " (uncommitted changes)" if machine["git"]["dirty"] else ""


def goals_markdown(report: dict[str, Any]) -> list[str]:
    """The goals as a markdown table, one line each (RESULTS.md and README.md's Performance)."""
    lines = ["| goal | measured | target | status |", "|---|---|---|---|"]
    for result in report["goals"]:
        goal = GoalResult(**result)
        lines.append(f"| {goal.text} | {_goal_value(goal)} | {goal.target} | {_goal_status(goal)} |")
    return lines


def markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = [
        f"Measured {machine['measured_at_utc']} ({report['profile']} profile, {report['seconds']:.0f} s) on "
        f"{machine['cpus']} vCPUs ({machine['cpu_model']}), {machine['memory_gib']['total']} GiB, "
        f"load average {machine['load_1m']} / {machine['load_5m']} / {machine['load_15m']} at the start, "
        f"Python {machine['python']}, git {machine['git']['commit']}{_dirty(machine)}. "
        "Figures are medians over repetitions with (min–max); ratios and differences are taken per "
        "side-by-side repetition pair.",
        "",
        *goals_markdown(report),
    ]
    for section in report["sections"]:
        load = section["details"].get("machine_load_after", {}).get("load_1m")
        lines += [
            "",
            f"**{section['title']}** ({section['seconds']:.0f} s; load average {load} after it)",
            "",
            "| metric | baseline | candidate | candidate vs baseline |",
            "|---|---|---|---|",
        ]
        for row in section["rows"]:
            unit = f" [{row['unit']}]" if row["unit"] not in ("", "x") else ""
            lines.append(
                f"| {row['metric']}{unit} | {_cell(row['baseline'], '')} | {_cell(row['candidate'], '')} | "
                f"{_comparison_cell(row)} |"
            )
        if section["notes"]:
            lines.append("")
            lines += [f"- {note}" for note in section["notes"]]
    return "\n".join(lines) + "\n"
