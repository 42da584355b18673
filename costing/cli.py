"""``tollgate cost ...``: cost reports from the ledger, for finance.

Mounted into the main CLI with ``app.add_typer(cost_app, name="cost")``.

Which ledger: ``--ledger FILE`` or ``--ledger-url URL``; else the ``TOLLGATE_LEDGER_URL`` /
``TOLLGATE_LEDGER_PATH`` variables when set; else the ledger of the last local run: the newest
``var/<run>/ledger.sqlite`` (or ``var/ledger.sqlite``). The path used is always printed.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Annotated, Literal

import typer

from costing.ledger import LedgerError, SqlLedger, as_utc, open_ledger, sqlite_url
from costing.money import decimal_text
from costing.price_book import PriceBookError, load_price_book
from costing.reconciliation.summary import ResourceSummary, TieOut, resource_summary, tie_out
from costing.report import GROUP_KEYS, ReportFormat, build_report, check_group_keys
from costing.settings import get_costing_settings

cost_app = typer.Typer(help="What requests cost: reports from the cost ledger.", no_args_is_help=True)

LEDGER_FILE = "ledger.sqlite"
_RELATIVE = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@cost_app.callback()
def _cost() -> None:
    """What requests cost: reports from the cost ledger."""


_BY_HELP = f"Group by these keys; repeat the option or give a comma list. Keys: {', '.join(GROUP_KEYS)}."
_SINCE_HELP = "First moment included: ISO 8601 date or datetime (UTC unless an offset is given), or relative: 30m, 12h, 7d, 2w."
_UNTIL_HELP = "First moment excluded: ISO 8601 date or datetime (UTC unless an offset is given)."
_MONTH_HELP = "One calendar month (UTC), e.g. 2026-11: the same as --since 2026-11-01 --until 2026-12-01."
_LEDGER_HELP = "SQLite ledger file. Default: TOLLGATE_LEDGER_URL/PATH if set, else the newest var/<run>/ledger.sqlite."
_LEDGER_URL_HELP = "Ledger URL (sqlite:///PATH or postgresql://...)."
_CHART_HELP = "Also draw a stacked bar of cost per feature over time into this PNG file."
_COLUMNS_HELP = "Table columns to show (comma list), or 'all'. Default: the main ones that fit the terminal."

Ledger = Annotated[Path | None, typer.Option("--ledger", help=_LEDGER_HELP)]
LedgerUrl = Annotated[str | None, typer.Option("--ledger-url", help=_LEDGER_URL_HELP)]
Since = Annotated[str | None, typer.Option(help=_SINCE_HELP)]
Until = Annotated[str | None, typer.Option(help=_UNTIL_HELP)]
Month = Annotated[str | None, typer.Option("--month", help=_MONTH_HELP)]


@cost_app.command("report")
def report(
    by: Annotated[list[str] | None, typer.Option("--by", help=_BY_HELP)] = None,
    since: Since = None,
    until: Until = None,
    month: Month = None,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="Output format (parquet needs --output).")] = "table",
    ledger: Ledger = None,
    ledger_url: LedgerUrl = None,
    output: Annotated[Path | None, typer.Option("--output", help="Write the report to this file, not stdout.")] = None,
    chart: Annotated[Path | None, typer.Option("--chart", help=_CHART_HELP)] = None,
    columns: Annotated[str | None, typer.Option("--columns", help=_COLUMNS_HELP)] = None,
) -> None:
    """Sum the cost ledger by the given keys over [since, until), with a totals row: direct,
    overhead, idle, storage, operations and fully-loaded cost, cache savings, outcomes."""
    try:
        keys = check_group_keys(_split_keys(by or []))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--by") from None
    start, end = _time_range(since, until, month)
    if fmt == "parquet" and output is None:
        raise typer.BadParameter("parquet is binary: give --output FILE.parquet", param_hint="--format")
    shown = [c.strip() for c in columns.split(",") if c.strip()] if columns else None

    with _open(ledger, ledger_url) as opened:
        rows = build_report(opened, keys, since=start, until=end, currency=_currency())
        summary = resource_summary(opened, since=start, until=end)
        tied = tie_out(opened, since=start, until=end)
        unbooked = opened.unbooked()
        if chart is not None:
            from costing.chart import write_cost_chart  # matplotlib only when a chart is asked for

            write_cost_chart(opened, chart, start, end)

    if not any(not row.is_total for row in rows) and keys:
        typer.echo("No cost records in the requested range.", err=True)
    from costing.report_render import render  # rich and pyarrow only here, never in `tollgate serve`

    try:
        content = render(rows, fmt, columns=shown)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--columns") from None
    notes = [tie_out_line(item) for item in tied] + metered_share_lines(summary)
    if unbooked[0]:
        notes.append(f"{unbooked[0]} requests ({decimal_text(unbooked[1])} direct) not booked into a window yet")
    if output is None:
        typer.echo(content, nl=False)
        for note in notes:
            typer.echo(note, err=fmt != "table")
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            output.write_bytes(content)
        else:
            output.write_text(content, encoding="utf-8")
        typer.echo(f"Wrote {len(rows)} report rows to {output}", err=True)
        for note in notes:
            typer.echo(note, err=True)
    if chart is not None:
        typer.echo(f"Wrote the cost chart to {chart}", err=True)


@cost_app.command("reconciliation")
def reconciliation(
    since: Since = None, until: Until = None, month: Month = None, ledger: Ledger = None, ledger_url: LedgerUrl = None
) -> None:
    """Per resource, the origin charges of the booked windows (capacity = direct + overhead +
    idle), what per-request metering explained, and the tie-out: Σ allocated = Σ origin."""
    start, end = _time_range(since, until, month)
    with _open(ledger, ledger_url) as opened:
        summary = resource_summary(opened, since=start, until=end)
        tied = tie_out(opened, since=start, until=end)
    if not summary:
        typer.echo("No booked windows in the requested range.", err=True)
    for item in summary:
        typer.echo(describe(item))
    for item in tied:
        typer.echo(tie_out_line(item))


@cost_app.command("export")
def export(
    output: Annotated[Path, typer.Option("--output", help="File to write: .csv or .parquet.")],
    fmt: Annotated[Literal["focus"], typer.Option("--format", help="Export format.")] = "focus",
    since: Since = None,
    until: Until = None,
    month: Month = None,
    ledger: Ledger = None,
    ledger_url: LedgerUrl = None,
) -> None:
    """Export the booked windows as a FOCUS 1.2 dataset: origin-charge rows and their
    allocated-charge rows (split cost allocation), CSV or Parquet by the file's extension."""
    from costing.focus import export_focus, render_focus_csv, render_focus_parquet

    start, end = _time_range(since, until, month)
    with _open(ledger, ledger_url) as opened:
        rows = export_focus(opened, start, end)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".parquet":
        output.write_bytes(render_focus_parquet(rows))
    elif output.suffix == ".csv":
        output.write_text(render_focus_csv(rows), encoding="utf-8")
    else:
        raise typer.BadParameter("the output must end in .csv or .parquet", param_hint="--output")
    origin = sum(row["x_RowType"] == "origin" for row in rows)
    typer.echo(f"Wrote {origin} origin and {len(rows) - origin} allocated {fmt.upper()} rows to {output}", err=True)


def tie_out_line(item: TieOut) -> str:
    """``Tie-out: fully loaded = origin charges = $X (difference 0)``, or the difference."""
    amount = ("$" if item.currency == "USD" else "") + decimal_text(item.origin_pico)
    amount += "" if item.currency == "USD" else f" {item.currency}"
    if item.difference_pico == 0:
        return f"Tie-out: fully loaded = origin charges = {amount} (difference 0)"
    return (
        f"Tie-out: fully loaded {decimal_text(item.allocated_pico)} != origin charges {amount} "
        f"(DIFFERENCE {decimal_text(item.difference_pico)})"
    )


def metered_share_lines(summary: list[ResourceSummary]) -> list[str]:
    """Per kind of resource, the share of what it used that per-request metering explained."""
    lines = []
    for kind in ("compute", "gateway", "cache"):
        items = [item for item in summary if item.kind == kind]
        direct = sum(item.direct_pico for item in items)
        origin = sum(item.capacity_pico for item in items)
        used = direct + sum(item.overhead_pico for item in items)
        if origin:
            text = f"Metered {kind}: direct {decimal_text(direct)} = {100 * direct / origin:.1f} % of its origin charges"
            if used and kind != "cache":
                text += f" ({100 * direct / used:.1f} % of what it used, the rest overhead)"
            lines.append(text)
    return lines


def describe(item: ResourceSummary) -> str:
    text = (
        f"{item.resource}: {item.windows} windows, {item.requests} requests, capacity {decimal_text(item.capacity_pico)} "
        f"{item.currency} = direct {decimal_text(item.direct_pico)} + overhead {decimal_text(item.overhead_pico)} "
        f"+ idle {decimal_text(item.idle_pico)}"
    )
    if item.capacity_pico > item.provisioned_pico and item.provisioned_pico:
        text += f" (provisioned {decimal_text(item.provisioned_pico)})"
    share = item.metered_share
    if share is not None and item.kind in ("compute", "gateway"):
        text += f"; metered {100 * float(share):.1f} % of what it used"
    if item.carry_pico:
        text += f"; carried {decimal_text(item.carry_pico)}"
    if item.late_direct_pico:
        text += f"; late records {decimal_text(item.late_direct_pico)}"
    text += "; identity exact" if item.identity_exact else "; IDENTITY BROKEN"
    return text


def default_ledger_path(root: Path | None = None) -> Path | None:
    """The newest ``var/<run>/ledger.sqlite`` (or ``var/ledger.sqlite``) under ``root``."""
    var = (root or get_costing_settings().ledger_path.parent.parent) / "var"
    candidates = [*var.glob(f"*/{LEDGER_FILE}"), var / LEDGER_FILE]
    existing = [path for path in candidates if path.is_file()]
    return max(existing, key=lambda path: path.stat().st_mtime) if existing else None


def _open(ledger: Path | None, ledger_url: str | None) -> SqlLedger:
    if ledger is not None and ledger_url is not None:
        raise typer.BadParameter("give --ledger or --ledger-url, not both", param_hint="--ledger")
    settings = get_costing_settings()
    if ledger is not None:
        url = sqlite_url(ledger)
    elif ledger_url is not None:
        url = ledger_url
    elif os.environ.get("TOLLGATE_LEDGER_URL") or os.environ.get("TOLLGATE_LEDGER_PATH"):
        url = settings.effective_ledger_url()
    else:
        found = default_ledger_path(settings.ledger_path.parent.parent)
        if found is None:
            typer.echo(
                f"Error: no ledger found under {settings.ledger_path.parent}/<run>/{LEDGER_FILE}; give --ledger FILE",
                err=True,
            )
            raise typer.Exit(1)
        url = sqlite_url(found)
    try:
        opened = open_ledger(url, create=False, schema=settings.ledger_schema)
    except LedgerError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"ledger: {opened.description}", err=True)
    return opened


def _currency() -> str | None:
    try:
        return load_price_book(get_costing_settings().price_book_path).currency
    except PriceBookError:
        return None


def _time_range(
    since: str | None, until: str | None, month: str | None = None, now: dt.datetime | None = None
) -> tuple[dt.datetime | None, dt.datetime | None]:
    if month is not None:
        if since is not None or until is not None:
            raise typer.BadParameter("give --month or --since/--until, not both", param_hint="--month")
        try:
            first = dt.datetime.strptime(month, "%Y-%m").replace(tzinfo=dt.UTC)
        except ValueError:
            raise typer.BadParameter(f"{month!r} is not a month like 2026-11", param_hint="--month") from None
        following = (first + dt.timedelta(days=32)).replace(day=1)
        return first, following
    start = _parse_moment(since, "--since", now)
    end = _parse_moment(until, "--until", now)
    if start is not None and end is not None and as_utc(start) >= as_utc(end):
        raise typer.BadParameter(f"--since {since} is not before --until {until}", param_hint="--since")
    return start, end


def _split_keys(values: list[str]) -> list[str]:
    """``["feature,tenant", "day"]`` -> ``["feature", "tenant", "day"]``."""
    return [key.strip() for value in values for key in value.split(",") if key.strip()]


def _parse_moment(value: str | None, option: str, now: dt.datetime | None = None) -> dt.datetime | None:
    if value is None:
        return None
    relative = _RELATIVE.match(value.strip())
    if relative:
        amount, unit = int(relative.group(1)), _UNITS[relative.group(2)]
        return (now or dt.datetime.now(dt.UTC)) - dt.timedelta(**{unit: amount})
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 date or datetime (e.g. 2026-11-01 or 2026-11-01T12:00:00Z) "
            "nor a relative time (30m, 12h, 7d, 2w)",
            param_hint=option,
        ) from None
