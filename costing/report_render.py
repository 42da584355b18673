"""Report rows as a table for people, or CSV, JSON and Parquet for machines.

CSV, JSON and Parquet always carry every column (a value that does not apply is empty/null),
so that consumers see one stable schema; money is exact: decimal text in CSV and JSON (never
a float, never scientific notation), decimal(38, 12) in Parquet.

The table for people shows money in one unit chosen for the report (USD, or micro-USD when
every amount is tiny), with sensible precision and never in scientific notation; by default it
shows the columns finance reads first and drops the rest until it fits the terminal
(``columns`` asks for others, "all" for every one).

Group values (tenant, feature, ...) are data, never markup or formulas: the table renders them as
plain text with control characters made visible, and CSV cells that a spreadsheet would run as a
formula (starting with = + - @, tab or carriage return) get a leading apostrophe (OWASP).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Sequence
from decimal import Decimal

from rich.console import Console
from rich.table import Table
from rich.text import Text

from costing.report import FORMATS, METRIC_COLUMNS, MONEY_COLUMNS, ReportFormat, ReportRow

TEXT_COLUMNS = frozenset({"currency", "cost_basis"})
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
INTEGER_COLUMNS = frozenset({"requests", "cache_hits", "errors", "response_bytes", "clicks", "conversions"})
# What the table shows by default, most important first; columns at the end go first when the
# terminal is too narrow.
DEFAULT_TABLE_COLUMNS: tuple[str, ...] = (
    "requests",
    "fully_loaded",
    "direct",
    "overhead",
    "idle",
    "storage",
    "operations",
    "fully_loaded_per_1k_requests",
    "clicks",
    "revenue",
    "cost_per_1k_requests",
    "conversions_per_1k_requests",
    "revenue_per_1k_requests",
    "errors",
    "cache_hits",
    "avoided",
    "return_on_cost",
)
OUTCOME_COLUMNS = frozenset({
    "clicks", "conversions", "revenue", "conversions_per_1k_requests", "revenue_per_1k_requests",
    "cost_per_conversion", "return_on_cost",
})
MICRO = Decimal(1_000_000)


def render(
    rows: Sequence[ReportRow], fmt: ReportFormat, *, columns: Sequence[str] | None = None, width: int | None = None
) -> str | bytes:
    """Text ending in a newline for table, CSV and JSON; the bytes of a Parquet file for parquet.
    ``columns`` and ``width`` shape the table only."""
    if fmt == "table":
        return render_table(rows, columns=columns, width=width)
    if fmt == "csv":
        return render_csv(rows)
    if fmt == "json":
        return json.dumps([{k: _json_value(v) for k, v in row.as_dict().items()} for row in rows], indent=2) + "\n"
    if fmt == "parquet":
        return render_parquet(rows)
    raise ValueError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")


def columns(rows: Sequence[ReportRow]) -> list[str]:
    group_keys = list(rows[0].group) if rows else []
    return ["row_type", *group_keys, *METRIC_COLUMNS]


def render_csv(rows: Sequence[ReportRow]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns(rows), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({column: _csv_value(value) for column, value in row.as_dict().items()})
    return out.getvalue()


def render_parquet(rows: Sequence[ReportRow]) -> bytes:
    """One Parquet file; column types are fixed (not inferred), so an all-null column keeps its type."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = columns(rows)
    group_keys = names[1 : len(names) - len(METRIC_COLUMNS)]
    dicts = [row.as_dict() for row in rows]
    schema = pa.schema([pa.field(name, _arrow_type(name, group_keys, dicts)) for name in names])
    table = pa.Table.from_pylist(dicts, schema=schema)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _arrow_type(name: str, group_keys: Sequence[str], dicts: Sequence[dict[str, object]]):  # noqa: ANN202
    import pyarrow as pa

    if name == "row_type" or name in TEXT_COLUMNS:
        return pa.string()
    if name in group_keys:
        values = [item[name] for item in dicts if item[name] is not None]
        return pa.bool_() if values and all(isinstance(value, bool) for value in values) else pa.string()
    if name in INTEGER_COLUMNS:
        return pa.int64()
    return pa.decimal128(38, 12)


def _json_value(value: object) -> object:
    if isinstance(value, Decimal):
        return _plain(value)
    return value


def _csv_value(value: object) -> object:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return _plain(value)
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_PREFIXES) else value
    return "" if value is None else value


def _plain(value: Decimal) -> str:
    """Exact decimal text, never scientific: Decimal('1E-12') -> '0.000000000001'."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".") or "0"
    return text


# --- the table for people ---------------------------------------------------------------------


def money_unit(rows: Sequence[ReportRow], shown: Sequence[str] = MONEY_COLUMNS) -> tuple[str, Decimal, int]:
    """(label, scale, decimal places) of the table's money, chosen so that the smallest non-zero
    amount shown keeps two significant digits: USD with cents when every amount is a dollar or
    more, USD to the micro-dollar down to 1e-4, else micro-USD (µUSD) with 3 decimals."""
    amounts = [
        abs(value)
        for row in rows
        for column in shown
        if column in MONEY_COLUMNS and isinstance(value := getattr(row, column), Decimal) and value
    ]
    smallest = min(amounts, default=Decimal(1))
    currency = rows[0].currency if rows else "USD"
    if smallest >= 1:
        return currency, Decimal(1), 2
    if smallest >= Decimal("0.0001"):
        return currency, Decimal(1), 6
    return f"µ{currency}", MICRO, 3


def render_table(rows: Sequence[ReportRow], *, columns: Sequence[str] | None = None, width: int | None = None) -> str:
    """The report for a terminal of ``width`` columns (default: this terminal's). ``columns``:
    the metric columns to show, or ["all"]; by default the important ones that fit."""
    group_keys = list(rows[0].group) if rows else []
    has_outcomes = any(row.clicks or row.conversions or row.revenue_pico for row in rows)
    explicit = columns is not None
    if columns is None:  # outcomes: clicks and revenue always; the ratios once there are outcomes
        wanted = [c for c in DEFAULT_TABLE_COLUMNS if has_outcomes or c not in OUTCOME_COLUMNS - {"clicks", "revenue"}]
    elif list(columns) == ["all"]:
        wanted = [c for c in METRIC_COLUMNS if c != "currency"]
    else:
        unknown = [c for c in columns if c not in METRIC_COLUMNS]
        if unknown:
            raise ValueError(f"unknown column {', '.join(unknown)}; columns: {', '.join(METRIC_COLUMNS)}")
        wanted = list(columns)
    shown = [c for c in wanted if explicit or any(getattr(row, c) is not None for row in rows)]
    unit, scale, places = money_unit(rows, shown)
    width = width or shutil.get_terminal_size((160, 24)).columns
    hidden: list[str] = []
    while True:
        text = _draw(rows, group_keys, shown, unit, scale, places, hidden)
        if explicit or len(shown) <= 2 or max(len(line) for line in text.splitlines()) <= width:
            return text
        hidden.insert(0, shown.pop())


def _draw(
    rows: Sequence[ReportRow],
    group_keys: Sequence[str],
    shown: Sequence[str],
    unit: str,
    scale: Decimal,
    places: int,
    hidden: Sequence[str],
) -> str:
    title = f"Tollgate cost report (money in {unit})"
    if any(row.clicks or row.conversions or row.revenue_pico for row in rows):
        bases = sorted({row.cost_basis.replace("_", "-") for row in rows})
        title += f"; cost per conversion and return on cost on {' and '.join(bases)} cost"
    table = Table(title=title, title_justify="left")
    for key in group_keys or [""]:  # an ungrouped report still needs a column for "TOTAL"
        table.add_column(key)
    for column in shown:
        table.add_column(column, justify="left" if column in TEXT_COLUMNS else "right")
    for index, row in enumerate(rows):
        if row.is_total and (index == 0 or not rows[index - 1].is_total):
            table.add_section()
        if row.is_total:
            labels = ["TOTAL"] + [""] * (max(len(group_keys), 1) - 1)
        else:
            labels = [Text(_printable(_table_value(row.group[key], "", scale, places))) for key in group_keys]
        metrics = [_table_value(getattr(row, column), column, scale, places) for column in shown]
        table.add_row(*labels, *metrics, style="bold" if row.is_total else None)
    console = Console(file=io.StringIO(), width=1000, color_system=None, force_terminal=False)
    console.print(table)
    if hidden:
        console.print(f"(not shown for width: {', '.join(hidden)}; --columns NAME,... or --columns all)")
    text = console.file.getvalue()  # type: ignore[attr-defined]
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def _printable(text: str) -> str:
    """Control characters (terminal escapes, newlines) shown as escapes, never sent to the terminal."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def _table_value(value: object, column: str, scale: Decimal, places: int) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, Decimal):
        if column in MONEY_COLUMNS:
            return f"{value * scale:,.{places}f}"
        if column == "compute_seconds":
            return f"{value:,.3f}"
        return f"{value:,.4f}"
    return "" if value is None else str(value)
