"""``tollgate cost ...``: cost reports from the ledger, for finance.

Mounted into the main CLI with ``app.add_typer(cost_app, name="cost")``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from costing.ledger import LedgerError, SqliteLedger, as_utc
from costing.report import GROUP_KEYS, ReportFormat, build_report, check_group_keys, render
from gateway.settings import get_settings

cost_app = typer.Typer(help="What requests cost: reports from the cost ledger.", no_args_is_help=True)


@cost_app.callback()
def _cost() -> None:
    """What requests cost: reports from the cost ledger."""


_BY_HELP = f"Group by these keys; repeat the option or give a comma list. Keys: {', '.join(GROUP_KEYS)}."
_SINCE_HELP = "First moment included: ISO 8601 date or datetime (UTC unless an offset is given)."
_UNTIL_HELP = "First moment excluded: ISO 8601 date or datetime (UTC unless an offset is given)."
_LEDGER_HELP = "Ledger file. Default: the ledger_path setting (TOLLGATE_LEDGER_PATH)."


@cost_app.command("report")
def report(
    by: Annotated[list[str] | None, typer.Option("--by", help=_BY_HELP)] = None,
    since: Annotated[str | None, typer.Option(help=_SINCE_HELP)] = None,
    until: Annotated[str | None, typer.Option(help=_UNTIL_HELP)] = None,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="Output format.")] = "table",
    ledger: Annotated[Path | None, typer.Option("--ledger", help=_LEDGER_HELP)] = None,
    output: Annotated[Path | None, typer.Option("--output", help="Write the report to this file, not stdout.")] = None,
) -> None:
    """Sum the cost ledger by the given keys over [since, until), with a totals row."""
    keys = _split_keys(by or [])
    try:
        keys = check_group_keys(keys)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--by") from None
    start = _parse_moment(since, "--since")
    end = _parse_moment(until, "--until")
    if start is not None and end is not None and as_utc(start) >= as_utc(end):
        raise typer.BadParameter(f"--since {since} is not before --until {until}", param_hint="--since")

    ledger_path = ledger if ledger is not None else get_settings().ledger_path
    try:
        with SqliteLedger(ledger_path, create=False) as opened:
            rows = build_report(opened, keys, since=start, until=end)
    except LedgerError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(1) from None

    if not rows:
        typer.echo("No cost records in the requested range.", err=True)
    text = render(rows, fmt)
    if output is None:
        typer.echo(text, nl=False)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    typer.echo(f"Wrote {len(rows)} report rows to {output}", err=True)


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
