"""``make demo``: start the real stack, send realistic Recommend and Search traffic, report
results and costs.

Writes ``demo-report.json`` at the repository root and stops everything it started.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
import uuid
from pathlib import Path

import typer
from rich.console import Console

from costing.chart import write_cost_chart
from costing.cli import metered_share_lines, tie_out_line
from costing.ledger import SqliteLedger
from costing.reconciliation.summary import resource_summary, tie_out
from costing.report import build_report as build_cost_report
from costing.report_render import render
from deploy.local.demo_client import drive
from deploy.local.demo_rollout import demo_repository, print_rollout, rollout_report, shadow_step, version_costs, version_quality
from deploy.local.demo_report import build_report, print_report
from deploy.local.redis import delete_prefixed
from deploy.local.settings import REPO_ROOT, get_local_settings
from deploy.local.stack import local_stack
from deploy.local.traffic import plan_calls, plan_searches
from gateway.settings import get_settings
from pipeline.data import load_clean_data
from pipeline.recommender.build import model_paths
from pipeline.recommender.config import RecommenderPipelineSettings as PipelineSettings
from pipeline.search.config import SearchPipelineSettings
from pipeline.search.layout import SearchPaths

log = logging.getLogger("tollgate.demo")
app = typer.Typer(add_completion=False)
REPORT_WIDTH = 180
# Short reconciliation windows, so that a demo of a minute reconciles several of them (the
# default is a minute); the grace stays above two ledger flush intervals.
DEMO_WINDOW_S = 10.0
DEMO_GRACE_S = 2.5


@app.command()
def main(
    requests: int = typer.Option(600, min=1, help="Recommend calls to send."),
    searches: int = typer.Option(400, min=0, help="Search calls to send (mixed in with the Recommend calls)."),
    concurrency: int = typer.Option(8, min=1, help="Calls in flight at once."),
    deadline_s: float = typer.Option(2.0, min=0.01, help="Deadline of each call."),
    seed: int = typer.Option(7, help="Seed of the traffic plan."),
    report_path: Path = typer.Option(REPO_ROOT / "demo-report.json", help="Where the JSON summary goes."),
    shadow_requests: int = typer.Option(200, min=0, help="Recommend calls of the rollout step (a candidate in shadow)."),
    shadow_share: float = typer.Option(1.0, min=0.0, max=1.0, help="Share of the rollout step's calls mirrored to the candidate."),
    shadow_concurrency: int = typer.Option(
        2, min=1, help="Calls in flight in the rollout step: shadow calls are made only while the pools are less than "
        "half busy (TOLLGATE_ROLLOUT_SHADOW_MAX_BUSY_SHARE), and the demo's pools are small.",
    ),
) -> None:
    """Run the demo end to end and write its report."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings, local_settings = get_settings(), get_local_settings()
    # Wide enough for the cost tables when the output is a log file or CI, not a terminal.
    console = Console(width=None if Console().is_terminal else REPORT_WIDTH)
    data = load_clean_data(local_settings.data_dir / PipelineSettings().dataset_file)
    calls = plan_calls(data.interactions, requests, seed) + plan_searches(data.interactions, data.titles, searches, seed)
    random.Random(seed).shuffle(calls)
    # A cache of this run's own: the Zipf traffic shows its hit rate, not the last run's entries.
    cache_prefix = f"tollgate-demo:{uuid.uuid4().hex[:8]}:"
    gateway_settings = {
        "reconciliation_window_s": DEMO_WINDOW_S,
        "reconciliation_grace_s": DEMO_GRACE_S,
        "routing_policy": "cheapest_within_slo",
        "cache_prefix": cache_prefix,
    }
    repository = demo_repository(local_settings.model_repository, local_settings.run_dir / "demo")
    with local_stack(
        settings, "demo", fresh_ledger=True, gateway_settings=gateway_settings, model_repository=repository
    ) as stack:
        stack.on_stop(delete_prefixed, settings.redis_url, cache_prefix)  # while Redis is still up
        console.print(
            f"[bold]Sending {requests} Recommend and {searches} Search calls to {stack.gateway_address} "
            f"(concurrency {concurrency})"
        )
        _sleep_until(_next_window_start() + 0.1)  # the gateway reconciles whole windows only
        started = time.perf_counter()
        outcomes = asyncio.run(drive(stack.gateway_address, calls, concurrency, deadline_s, stack.access))
        duration_s = time.perf_counter() - started
        recommend_calls = [call for call in calls if call.rpc == "Recommend"][:shadow_requests]
        console.print(f"[bold]Rollout step:[/bold] a candidate recommender in shadow for {len(recommend_calls)} calls")
        step = asyncio.run(
            shadow_step(stack.gateway_address, stack.access, recommend_calls, shadow_concurrency, deadline_s, shadow_share)
        )
        console.print(f"waiting for the reconciliation of the last {DEMO_WINDOW_S:.0f}-second window")
        _sleep_until(_next_window_start() + DEMO_GRACE_S + 1.0)
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
            SearchPaths.in_repository(local_settings.model_repository, SearchPipelineSettings()).eval_file.read_text()
        ),
    )
    print_report(report, console)
    ledger = SqliteLedger(stack.ledger_path)
    costs = version_costs(ledger)
    quality = version_quality(local_settings.model_repository, demo_copy=repository != local_settings.model_repository)
    print_rollout(step, costs, quality, console)
    report["rollout"] = rollout_report(step, costs, quality)
    console.print(
        f"[bold]What finance pulls:[/bold] tollgate cost report --by feature --ledger {stack.ledger_path}\n"
        "every resource (Triton pool x model, gateway replica, cache node, egress path, storage, operations) "
        "has an origin charge per window = direct (metered per request) + overhead (measured beyond it) + "
        "idle; each is allocated once to (feature, tenant, model); fully_loaded = their sum; "
        "__unallocated__ = what nobody used"
    )
    console.print(render(build_cost_report(ledger, ["feature"], None, None), "table", width=REPORT_WIDTH), end="")
    for line in [tie_out_line(item) for item in tie_out(ledger)] + metered_share_lines(resource_summary(ledger)):
        console.print(line, markup=False, highlight=False)
    report["tie_out"] = [
        {"currency": t.currency, "origin_pico": t.origin_pico, "fully_loaded_pico": t.allocated_pico}
        for t in tie_out(ledger)
    ]
    chart_path = write_cost_chart(ledger, stack.log_dir.parent / "cost-by-feature.png")
    report["cost_chart"] = str(chart_path)
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {report_path} and the chart {chart_path}")
    if report["errors"] or step.errors:
        raise typer.Exit(1)


def _next_window_start() -> float:
    """Epoch seconds of the next reconciliation window boundary (windows align to the clock)."""
    return math.ceil(time.time() / DEMO_WINDOW_S) * DEMO_WINDOW_S


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


if __name__ == "__main__":
    app()
