"""Report rows as a table for people, or CSV, JSON and Parquet for machines.

CSV, JSON and Parquet always carry every column (a value that does not apply is empty/null),
so that consumers see one stable schema; the table leaves out columns empty in every row.

Group values (tenant, feature, ...) are data, never markup or formulas: the table renders them as
plain text with control characters made visible, and CSV cells that a spreadsheet would run as a
formula (starting with = + - @, tab or carriage return) get a leading apostrophe (OWASP).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from costing.report import FORMATS, METRIC_COLUMNS, ReportFormat, ReportRow

TEXT_COLUMNS = frozenset({"currency", "cost_basis"})
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# The table for people leaves out the breakdown of direct cost and the raw counts that the
# machine formats carry; the cost basis of the outcome columns goes into the title.
TABLE_HIDDEN = frozenset({"response_bytes", "compute", "gateway", "cache", "egress", "clicks", "cost_basis"})
OUTCOME_COLUMNS = frozenset({"conversions", "revenue", "cost_per_conversion", "return_on_cost"})


def render(rows: Sequence[ReportRow], fmt: ReportFormat) -> str | bytes:
    """Text ending in a newline for table, CSV and JSON (full float precision, booleans as
    true/false); the bytes of a Parquet file for parquet."""
    if fmt == "table":
        return render_table(rows)
    if fmt == "csv":
        return render_csv(rows)
    if fmt == "json":
        return json.dumps([row.as_dict() for row in rows], indent=2) + "\n"
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
    if name in ("requests", "cache_hits", "errors", "response_bytes", "clicks", "conversions"):
        return pa.int64()
    return pa.float64()


def _csv_value(value: object) -> object:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back as the same float
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_PREFIXES) else value
    return "" if value is None else value


def render_table(rows: Sequence[ReportRow]) -> str:
    group_keys = list(rows[0].group) if rows else []
    shown = [
        column
        for column in METRIC_COLUMNS
        if column not in TABLE_HIDDEN and any(getattr(row, column) is not None for row in rows)
    ]
    title = "Tollgate cost report"
    if any(row.clicks or row.conversions or row.revenue for row in rows):
        bases = sorted({row.cost_basis.replace("_", "-") for row in rows})
        title += f" (cost per conversion and return on cost on {' and '.join(bases)} cost)"
    else:  # no outcomes reported: no columns of zeros
        shown = [column for column in shown if column not in OUTCOME_COLUMNS]
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
            labels = [Text(_printable(_table_value(row.group[key]))) for key in group_keys]
        metrics = [_table_value(getattr(row, column)) for column in shown]
        table.add_row(*labels, *metrics, style="bold" if row.is_total else None)
    # Wide enough that rich never wraps or squeezes columns; the table takes its natural width.
    console = Console(file=io.StringIO(), width=1000, color_system=None, force_terminal=False)
    console.print(table)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def _printable(text: str) -> str:
    """Control characters (terminal escapes, newlines) shown as escapes, never sent to the terminal."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def _table_value(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.6g}"  # costs per request are around 1e-8 USD: fixed decimals would hide them
    return "" if value is None else str(value)
