"""``make demo``: start the real stack, send realistic Recommend and Search traffic, report
results and costs.

Writes ``demo-report.json`` at the repository root and stops everything it started.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from pathlib import Path

import typer
from rich.console import Console

from costing.ledger import SqliteLedger
from costing.report import build_report as build_cost_report
from costing.report import render
from deploy.local.demo_client import drive
from deploy.local.demo_report import build_report, print_report
from deploy.local.stack import local_stack
from deploy.local.traffic import plan_calls, plan_searches
from gateway.settings import REPO_ROOT, get_settings
from pipeline.build import model_paths
from pipeline.config import PipelineSettings
from pipeline.data import load_clean_data
from pipeline.search.artifacts import SearchPaths
from pipeline.search.config import SearchPipelineSettings

log = logging.getLogger("tollgate.demo")
app = typer.Typer(add_completion=False)
REPORT_WIDTH = 180


@app.command()
def main(
    requests: int = typer.Option(600, min=1, help="Recommend calls to send."),
    searches: int = typer.Option(400, min=0, help="Search calls to send (mixed in with the Recommend calls)."),
    concurrency: int = typer.Option(8, min=1, help="Calls in flight at once."),
    deadline_s: float = typer.Option(2.0, min=0.01, help="Deadline of each call."),
    seed: int = typer.Option(7, help="Seed of the traffic plan."),
    report_path: Path = typer.Option(REPO_ROOT / "demo-report.json", help="Where the JSON summary goes."),
) -> None:
    """Run the demo end to end and write its report."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    # Wide enough for the cost tables when the output is a log file or CI, not a terminal.
    console = Console(width=None if Console().is_terminal else REPORT_WIDTH)
    data = load_clean_data(settings.data_dir / PipelineSettings().dataset_file)
    calls = plan_calls(data.interactions, requests, seed) + plan_searches(data.interactions, data.titles, searches, seed)
    random.Random(seed).shuffle(calls)
    with local_stack(settings, "demo", fresh_ledger=True) as stack:
        console.print(
            f"[bold]Sending {requests} Recommend and {searches} Search calls to {stack.gateway_address} "
            f"(concurrency {concurrency})"
        )
        started = time.perf_counter()
        outcomes = asyncio.run(drive(stack.gateway_address, calls, concurrency, deadline_s))
        duration_s = time.perf_counter() - started
    # The stack is stopped here: the gateway has drained and flushed its ledger and spans.
    eval_figures = json.loads(model_paths().eval_file.read_text())
    report = build_report(
        outcomes,
        duration_s=duration_s,
        concurrency=concurrency,
        ledger_path=stack.ledger_path,
        trace_file=stack.trace_file,
        eval_figures=eval_figures,
        search_eval_figures=json.loads(
            SearchPaths.in_repository(settings.model_repository, SearchPipelineSettings()).eval_file.read_text()
        ),
    )
    print_report(report, console)
    console.print(f"[bold]What finance pulls:[/bold] tollgate cost report --by rpc,feature --ledger {stack.ledger_path}")
    console.print(render(build_cost_report(SqliteLedger(stack.ledger_path), ["rpc", "feature"], None, None), "table"))
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {report_path}")
    if report["errors"]:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
