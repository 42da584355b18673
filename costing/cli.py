"""``tollgate cost ...``: cost reports from the ledger, for finance.

Mounted into the main CLI with ``app.add_typer(cost_app, name="cost")``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from costing.ledger import LedgerError, SqlLedger, as_utc, open_ledger, sqlite_url
from costing.reconciliation.summary import PoolReconciliation, reconciliation_summary
from costing.report import GROUP_KEYS, ReportFormat, build_report, check_group_keys
from costing.settings import get_costing_settings

cost_app = typer.Typer(help="What requests cost: reports from the cost ledger.", no_args_is_help=True)

CHART_KEYS = ("day", "feature")


@cost_app.callback()
def _cost() -> None:
    """What requests cost: reports from the cost ledger."""


_BY_HELP = f"Group by these keys; repeat the option or give a comma list. Keys: {', '.join(GROUP_KEYS)}."
_SINCE_HELP = "First moment included: ISO 8601 date or datetime (UTC unless an offset is given)."
_UNTIL_HELP = "First moment excluded: ISO 8601 date or datetime (UTC unless an offset is given)."
_LEDGER_HELP = "SQLite ledger file. Default: the ledger_url / ledger_path settings."
_LEDGER_URL_HELP = "Ledger URL (sqlite:///PATH or postgresql://...). Default: the ledger_url setting."
_CHART_HELP = "Also draw a stacked bar of cost per feature per day into this PNG file."

Ledger = Annotated[Path | None, typer.Option("--ledger", help=_LEDGER_HELP)]
LedgerUrl = Annotated[str | None, typer.Option("--ledger-url", help=_LEDGER_URL_HELP)]
Since = Annotated[str | None, typer.Option(help=_SINCE_HELP)]
Until = Annotated[str | None, typer.Option(help=_UNTIL_HELP)]


@cost_app.command("report")
def report(
    by: Annotated[list[str] | None, typer.Option("--by", help=_BY_HELP)] = None,
    since: Since = None,
    until: Until = None,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="Output format (parquet needs --output).")] = "table",
    ledger: Ledger = None,
    ledger_url: LedgerUrl = None,
    output: Annotated[Path | None, typer.Option("--output", help="Write the report to this file, not stdout.")] = None,
    chart: Annotated[Path | None, typer.Option("--chart", help=_CHART_HELP)] = None,
) -> None:
    """Sum the cost ledger by the given keys over [since, until), with a totals row: direct,
    overhead, idle, storage, operations and fully-loaded cost, cache savings, outcomes."""
    try:
        keys = check_group_keys(_split_keys(by or []))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--by") from None
    start, end = _time_range(since, until)
    if fmt == "parquet" and output is None:
        raise typer.BadParameter("parquet is binary: give --output FILE.parquet", param_hint="--format")

    with _open(ledger, ledger_url) as opened:
        rows = build_report(opened, keys, since=start, until=end)
        chart_rows = build_report(opened, CHART_KEYS, since=start, until=end) if chart is not None else []
        pools = reconciliation_summary(opened, since=start, until=end)

    if not rows:
        typer.echo("No cost records in the requested range.", err=True)
    from costing.report_render import render  # rich and pyarrow only here, never in `tollgate serve`

    content = render(rows, fmt)
    notes = [_describe(pool) for pool in pools]
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
        from costing.chart import write_cost_chart  # matplotlib only when a chart is asked for

        write_cost_chart(chart_rows, chart)
        typer.echo(f"Wrote the cost chart to {chart}", err=True)


@cost_app.command("reconciliation")
def reconciliation(
    since: Since = None, until: Until = None, ledger: Ledger = None, ledger_url: LedgerUrl = None
) -> None:
    """Per pool, the reconciled windows: provisioned = direct + overhead + idle, and the
    measured difference between the compute requests attributed and Triton's statistics."""
    start, end = _time_range(since, until)
    with _open(ledger, ledger_url) as opened:
        pools = reconciliation_summary(opened, since=start, until=end)
    if not pools:
        typer.echo("No reconciled windows in the requested range.", err=True)
    for pool in pools:
        typer.echo(_describe(pool))


def _describe(pool: PoolReconciliation) -> str:
    name = pool.pool or "(shared: storage + operations)"
    text = (
        f"Reconciliation {name}: {pool.windows} windows, capacity {pool.capacity:.6g} {pool.currency} = "
        f"direct {pool.direct:.6g} + overhead {pool.overhead:.6g} + idle {pool.idle:.6g}"
    )
    if pool.storage or pool.operations:
        text += f" + storage {pool.storage:.6g} + operations {pool.operations:.6g}"
    if pool.capacity > pool.provisioned:
        text += f" (provisioned {pool.provisioned:.6g}; used beyond it {pool.capacity - pool.provisioned:.6g})"
    text += "; identity exact" if pool.identity_exact else "; IDENTITY BROKEN"
    if pool.attributed_vs_triton_difference is not None:
        text += (
            f"; attributed compute {pool.attributed_compute_seconds:.6g} s vs Triton compute_infer "
            f"{pool.triton_infer_seconds:.6g} s: {100 * pool.attributed_vs_triton_difference:+.1f} %"
        )
    elif pool.pool:
        text += "; no Triton statistics"
    return text


def _open(ledger: Path | None, ledger_url: str | None) -> SqlLedger:
    if ledger is not None and ledger_url is not None:
        raise typer.BadParameter("give --ledger or --ledger-url, not both", param_hint="--ledger")
    settings = get_costing_settings()
    if ledger is not None:
        url = sqlite_url(ledger)
    else:
        url = ledger_url or settings.effective_ledger_url()
    try:
        return open_ledger(url, create=False, schema=settings.ledger_schema)
    except LedgerError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(1) from None


def _time_range(since: str | None, until: str | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    start = _parse_moment(since, "--since")
    end = _parse_moment(until, "--until")
    if start is not None and end is not None and as_utc(start) >= as_utc(end):
        raise typer.BadParameter(f"--since {since} is not before --until {until}", param_hint="--since")
    return start, end


def _split_keys(values: list[str]) -> list[str]:
    """``["feature,tenant", "day"]`` -> ``["feature", "tenant", "day"]``."""
    return [key.strip() for value in values for key in value.split(",") if key.strip()]


def _parse_moment(value: str | None, option: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 date or datetime (e.g. 2026-11-01 or 2026-11-01T12:00:00Z)",
            param_hint=option,
        ) from None
