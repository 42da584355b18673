"""``--chart FILE.png``: a stacked bar of cost per feature over time.

Drawn with matplotlib's Agg canvas directly (no pyplot, no display, no global figure state).
Bars are fully-loaded cost (the allocated charges of the booked windows) where windows were
booked, direct cost of the records otherwise; the axis label says which. The time grain suits
the range: one bar per booked window for a short run (a demo), per hour for a few days, per
day beyond. Every band is labelled, ``__unallocated__`` included (matplotlib hides legend labels
that start with an underscore, so such names are shown without it).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from costing.ledger import LedgerBackend
from costing.money import from_pico
from costing.records import UNALLOCATED_FEATURE

FIGURE_SIZE_IN = (10.0, 5.5)
DPI = 120
MAX_WINDOW_BARS = 60
MAX_HOURLY_SPAN = dt.timedelta(days=3)


def band_label(feature: str) -> str:
    """A legend label matplotlib will show (it drops labels starting with "_")."""
    if feature == UNALLOCATED_FEATURE:
        return "unallocated (capacity nobody used)"
    return feature.lstrip("_") + " (" + feature + ")" if feature.startswith("_") else feature or "(no feature)"


def write_cost_chart(
    ledger: LedgerBackend,
    path: Path,
    since: dt.datetime | dt.date | None = None,
    until: dt.datetime | dt.date | None = None,
) -> Path:
    """Draw the cost per feature of [since, until) into the PNG ``path``."""
    allocated = ledger.allocated(since, until)
    if allocated:
        kind = "fully-loaded"
        points = [(a.window_start, a.feature, a.total_pico, a.currency) for a in allocated]
    else:
        kind = "direct"
        points = [(r.timestamp, r.feature, r.cost_total_pico, r.currency) for r in ledger.records(since, until)]
    currencies = {currency for *_, currency in points}
    if len(currencies) > 1:
        raise ValueError(f"cannot stack several currencies in one chart: {', '.join(sorted(currencies))}")
    name, grain, label_of = _grain([moment for moment, *_ in points], windowed=bool(allocated))
    cost: dict[str, dict[dt.datetime, int]] = defaultdict(lambda: defaultdict(int))
    for moment, feature, pico, _ in points:
        cost[feature][grain(moment)] += pico
    bins = sorted({grain(moment) for moment, *_ in points})

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGURE_SIZE_IN, dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    bottom = [0.0] * len(bins)
    positions = list(range(len(bins)))  # bins as labels of plain positions, not parsed as dates
    for feature in sorted(cost):
        heights = [from_pico(cost[feature].get(moment, 0)) for moment in bins]
        axes.bar(positions, heights, bottom=bottom, label=band_label(feature))
        bottom = [base + height for base, height in zip(bottom, heights)]
    step = max(1, len(bins) // 20)
    axes.set_xticks(positions[::step], [label_of(moment) for moment in bins][::step])
    currency = next(iter(currencies), "USD")
    unit = {"window": "booked window", "hour": "hour", "day": "day"}[name]
    axes.set_title(f"Cost per feature per {unit} ({kind})")
    axes.set_ylabel(f"{kind} cost ({currency})")
    axes.set_xlabel(f"{unit} start (UTC)")
    if cost:
        axes.legend(title="feature", fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes.tick_params(axis="x", labelrotation=45)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def _grain(moments: Sequence[dt.datetime], *, windowed: bool):  # noqa: ANN202
    """(grain name, moment -> bin start, bin start -> label) for the span of ``moments``."""
    starts = sorted(set(moments))
    span = starts[-1] - starts[0] if starts else dt.timedelta(0)
    if windowed and len(starts) <= MAX_WINDOW_BARS:
        fmt = "%H:%M:%S" if span < dt.timedelta(days=1) else "%m-%d %H:%M"
        return "window", (lambda m: m), (lambda m: m.strftime(fmt))
    if span <= MAX_HOURLY_SPAN:
        return "hour", (lambda m: m.replace(minute=0, second=0, microsecond=0)), (lambda m: m.strftime("%m-%d %H:00"))
    return "day", (lambda m: m.replace(hour=0, minute=0, second=0, microsecond=0)), (lambda m: m.strftime("%Y-%m-%d"))
