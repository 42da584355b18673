"""``--chart FILE.png``: a stacked bar of cost per feature per day.

Drawn with matplotlib's Agg canvas directly (no pyplot, no display, no global figure state).
Bars are fully-loaded cost where windows were reconciled, direct cost otherwise; the axis
label says which.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from costing.report import ReportRow

FIGURE_SIZE_IN = (10.0, 5.5)
DPI = 120


def write_cost_chart(rows: Sequence[ReportRow], path: Path) -> Path:
    """Draw ``rows`` (a report grouped by day and feature) as one bar per day, stacked by
    feature, into the PNG ``path``. Raises ValueError when the rows are not grouped that way
    or mix currencies."""
    groups = [row for row in rows if not row.is_total]
    if groups and not {"day", "feature"} <= set(groups[0].group):
        raise ValueError("the chart needs a report grouped by day and feature")
    currencies = {row.currency for row in groups}
    if len(currencies) > 1:
        raise ValueError(f"cannot stack several currencies in one chart: {', '.join(sorted(currencies))}")
    fully_loaded = bool(groups) and all(row.fully_loaded is not None for row in groups)
    cost: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in groups:
        amount = row.fully_loaded if fully_loaded else row.direct
        cost[str(row.group["feature"])][str(row.group["day"])] += amount or 0.0
    days = sorted({str(row.group["day"]) for row in groups})

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGURE_SIZE_IN, dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    bottom = [0.0] * len(days)
    positions = list(range(len(days)))  # days as labels of plain positions, not parsed as dates
    for feature in sorted(cost):
        heights = [cost[feature].get(day, 0.0) for day in days]
        axes.bar(positions, heights, bottom=bottom, label=feature)
        bottom = [base + height for base, height in zip(bottom, heights)]
    axes.set_xticks(positions, days)
    currency = next(iter(currencies), "USD")
    kind = "fully-loaded" if fully_loaded else "direct"
    axes.set_title(f"Cost per feature per day ({kind})")
    axes.set_ylabel(f"{kind} cost ({currency})")
    axes.set_xlabel("day (UTC)")
    if cost:
        axes.legend(title="feature", fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes.tick_params(axis="x", labelrotation=45)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
