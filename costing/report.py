"""What finance pulls: the ledger summed by the keys they ask for, as a table, CSV or JSON.

Each report ends with a totals row per currency (``row_type`` "total"), so that a CSV or JSON
consumer can tell it from the group rows and never counts it twice.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from rich.console import Console
from rich.table import Table

from costing.ledger import GROUP_KEYS as _LEDGER_GROUP_KEYS
from costing.ledger import GroupSums, SqliteLedger

GROUP_KEYS: tuple[str, ...] = tuple(_LEDGER_GROUP_KEYS)

ReportFormat = Literal["table", "csv", "json"]
FORMATS: tuple[str, ...] = get_args(ReportFormat)

NS_PER_SECOND = 1_000_000_000

# Metric columns, in report order, after the group columns.
METRIC_COLUMNS: tuple[str, ...] = (
    "requests",
    "cache_hits",
    "errors",
    "compute_seconds",
    "cost",
    "compute",
    "gateway",
    "cache",
    "avoided",
    "cost_per_1k_requests",
    "currency",
)


@dataclass(frozen=True)
class ReportRow:
    """One group of the report, or (``is_total``) the sum of all groups in one currency."""

    group: Mapping[str, str | bool | None]  # group key -> value; None on a totals row
    requests: int
    cache_hits: int
    errors: int  # requests whose status is not OK
    compute_seconds: float
    cost: float  # total: compute + gateway + cache
    compute: float
    gateway: float
    cache: float
    avoided: float  # compute that cache hits saved; not part of cost
    currency: str
    is_total: bool = False

    @property
    def cost_per_1k_requests(self) -> float:
        return self.cost / self.requests * 1000 if self.requests else 0.0

    def as_dict(self) -> dict[str, object]:
        """Flat columns in report order: row_type, the group keys, then METRIC_COLUMNS."""
        return {
            "row_type": "total" if self.is_total else "group",
            **self.group,
            **{column: getattr(self, column) for column in METRIC_COLUMNS},
        }


def check_group_keys(by: Sequence[str]) -> list[str]:
    """``by`` without repeats; raises ValueError naming the allowed keys for an unknown one."""
    unknown = [key for key in by if key not in GROUP_KEYS]
    if unknown:
        raise ValueError(f"unknown group key {', '.join(map(repr, unknown))}; allowed: {', '.join(GROUP_KEYS)}")
    return list(dict.fromkeys(by))


def build_report(
    ledger: SqliteLedger,
    by: Sequence[str],
    since: dt.datetime | dt.date | None = None,
    until: dt.datetime | dt.date | None = None,
) -> list[ReportRow]:
    """Group rows ordered by group, then one totals row per currency.

    ``since`` is inclusive and ``until`` exclusive; a date means its UTC midnight and a naive
    datetime is read as UTC. An empty ``by`` gives the totals rows only.
    """
    keys = check_group_keys(by)
    groups = [_group_row(sums) for sums in ledger.summarize(keys, since=since, until=until)]
    if not keys:  # one group per currency: the totals rows say it all
        return totals(groups, keys)
    return groups + totals(groups, keys)


def totals(rows: Sequence[ReportRow], keys: Sequence[str]) -> list[ReportRow]:
    """One totals row per currency over the group ``rows`` (currencies are never added up)."""
    currencies = sorted({row.currency for row in rows if not row.is_total})
    result = []
    for currency in currencies:
        members = [row for row in rows if row.currency == currency and not row.is_total]
        result.append(
            ReportRow(
                group={key: None for key in keys},
                requests=sum(row.requests for row in members),
                cache_hits=sum(row.cache_hits for row in members),
                errors=sum(row.errors for row in members),
                compute_seconds=math.fsum(row.compute_seconds for row in members),
                cost=math.fsum(row.cost for row in members),
                compute=math.fsum(row.compute for row in members),
                gateway=math.fsum(row.gateway for row in members),
                cache=math.fsum(row.cache for row in members),
                avoided=math.fsum(row.avoided for row in members),
                currency=currency,
                is_total=True,
            )
        )
    return result


def _group_row(sums: GroupSums) -> ReportRow:
    return ReportRow(
        group=dict(sums.group),
        requests=sums.requests,
        cache_hits=sums.cache_hits,
        errors=sums.errors,
        compute_seconds=sums.compute_ns / NS_PER_SECOND,
        cost=sums.cost_total,
        compute=sums.cost_compute,
        gateway=sums.cost_gateway,
        cache=sums.cost_cache,
        avoided=sums.cost_avoided,
        currency=sums.currency,
    )


def render(rows: Sequence[ReportRow], fmt: ReportFormat) -> str:
    """The report as text ending in a newline: a table for people, CSV or JSON for machines
    (full float precision, booleans as true/false)."""
    if fmt == "table":
        return _render_table(rows)
    if fmt == "csv":
        return _render_csv(rows)
    if fmt == "json":
        return json.dumps([row.as_dict() for row in rows], indent=2) + "\n"
    raise ValueError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _columns(rows: Sequence[ReportRow]) -> list[str]:
    group_keys = list(rows[0].group) if rows else []
    return ["row_type", *group_keys, *METRIC_COLUMNS]


def _render_csv(rows: Sequence[ReportRow]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=_columns(rows), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({column: _csv_value(value) for column, value in row.as_dict().items()})
    return out.getvalue()


def _csv_value(value: object) -> object:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back as the same float
    return "" if value is None else value


def _render_table(rows: Sequence[ReportRow]) -> str:
    group_keys = list(rows[0].group) if rows else []
    table = Table(title="Tollgate cost report", title_justify="left")
    for key in group_keys or [""]:  # an ungrouped report still needs a column for "TOTAL"
        table.add_column(key)
    for column in METRIC_COLUMNS:
        table.add_column(column, justify="left" if column == "currency" else "right")
    for index, row in enumerate(rows):
        if row.is_total and (index == 0 or not rows[index - 1].is_total):
            table.add_section()
        if row.is_total:
            labels = ["TOTAL"] + [""] * (max(len(group_keys), 1) - 1)
        else:
            labels = [_table_value(row.group[key]) for key in group_keys]
        metrics = [_table_value(getattr(row, column)) for column in METRIC_COLUMNS]
        table.add_row(*labels, *metrics, style="bold" if row.is_total else None)
    # Wide enough that rich never wraps or squeezes columns; the table takes its natural width.
    console = Console(file=io.StringIO(), width=1000, color_system=None, force_terminal=False)
    console.print(table)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def _table_value(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.6g}"  # costs per request are around 1e-8 USD: fixed decimals would hide them
    return "" if value is None else str(value)
