"""Turns the demo's call outcomes, ledger and spans into ``demo-report.json`` and readable tables."""

from __future__ import annotations

import json
import os
import platform
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from costing.ledger import SqliteLedger
from deploy.local.demo_client import CallOutcome
from gateway import telemetry_attributes as attr

SAMPLE_COUNT = 3
SAMPLE_ITEMS = 5


def _latency(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p99": 0.0, "mean": 0.0}
    array = np.asarray(values)
    return {
        "p50": round(float(np.percentile(array, 50)), 3),
        "p99": round(float(np.percentile(array, 99)), 3),
        "mean": round(float(array.mean()), 3),
    }


def _feature_summary(outcomes: list[CallOutcome]) -> dict[str, Any]:
    ok = [o for o in outcomes if o.status == "OK"]
    hits = sum(o.cache_hit for o in ok)
    cost = sum(o.cost for o in outcomes)
    return {
        "requests": len(outcomes),
        "errors": len(outcomes) - len(ok),
        "cache_hits": hits,
        "cache_hit_rate": round(hits / len(ok), 4) if ok else 0.0,
        "latency_ms": _latency([o.latency_ms for o in ok]),
        "cost_usd": cost,
        "cost_per_1k_requests_usd": cost / len(outcomes) * 1000 if outcomes else 0.0,
        "avoided_cost_usd": sum(o.avoided for o in ok),
        "compute_ms": sum(o.compute_ns for o in ok) / 1e6,
    }


def count_spans_with_cost(trace_file: Path) -> int:
    if not trace_file.exists():
        return 0
    with trace_file.open(encoding="utf-8") as lines:
        return sum(attr.COST_TOTAL in json.loads(line).get("attributes", {}) for line in lines if line.strip())


def build_report(
    outcomes: list[CallOutcome],
    *,
    duration_s: float,
    concurrency: int,
    ledger_path: Path,
    trace_file: Path,
    eval_figures: dict[str, Any],
    search_eval_figures: dict[str, Any],
) -> dict[str, Any]:
    by_feature: dict[str, list[CallOutcome]] = defaultdict(list)
    by_rpc: dict[str, list[CallOutcome]] = defaultdict(list)
    by_pool: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    errors_by_status: dict[str, int] = defaultdict(int)
    for outcome in outcomes:
        by_feature[outcome.call.feature].append(outcome)
        by_rpc[outcome.call.rpc].append(outcome)
        if outcome.status == "OK":
            if not outcome.cache_hit:
                by_pool[outcome.pool][outcome.route_reason] += 1
        else:
            errors_by_status[outcome.status] += 1
    overall = _feature_summary(outcomes)
    feature_summaries = _summaries(by_feature)
    ledger = SqliteLedger(ledger_path)
    return {
        "requests": overall["requests"],
        "errors": overall["errors"],
        "errors_by_status": dict(errors_by_status),
        "cache_hits": overall["cache_hits"],
        "cache_hit_rate": overall["cache_hit_rate"],
        "latency_ms": overall["latency_ms"],
        "throughput_rps": round(len(outcomes) / duration_s, 1) if duration_s else 0.0,
        "concurrency": concurrency,
        "total_cost_usd": overall["cost_usd"],
        "avoided_cost_usd": overall["avoided_cost_usd"],
        "cost_per_1k_requests_usd": overall["cost_per_1k_requests_usd"],
        "cost_by_feature": {feature: summary["cost_usd"] for feature, summary in feature_summaries.items()},
        "by_feature": feature_summaries,
        "by_rpc": _summaries(by_rpc),
        # Model calls (cache misses) per pool and why that pool: primary, overflow, fallback, retry.
        "model_calls_by_pool": {pool: dict(reasons) for pool, reasons in sorted(by_pool.items())},
        "ledger_total_cost_usd": ledger.total_cost(),
        "ledger_records": ledger.count(),
        "spans_with_cost": count_spans_with_cost(trace_file),
        "samples": _samples(outcomes),
        "eval": eval_figures,
        "search_eval": search_eval_figures,
        "machine": {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0], "python": platform.python_version()},
    }


def _samples(outcomes: list[CallOutcome]) -> list[dict[str, Any]]:
    """A few answered calls per RPC, one per distinct user or query, to show what users see."""
    picked: dict[tuple[str, str], CallOutcome] = {}
    for o in outcomes:
        subject = o.call.query or o.call.user_id
        if o.status == "OK" and (o.personalized or o.call.rpc == "Search") and (o.call.rpc, subject) not in picked:
            if sum(rpc == o.call.rpc for rpc, _ in picked) < SAMPLE_COUNT:
                picked[(o.call.rpc, subject)] = o
    return [
        {
            "rpc": o.call.rpc,
            "user_id": o.call.user_id,
            "query": o.call.query,
            "feature": o.call.feature,
            "items": [{"item_id": i, "title": t, "score": round(s, 4)} for i, t, s in o.items[:SAMPLE_ITEMS]],
        }
        for o in picked.values()
    ]


def _summaries(by_feature: dict[str, list[CallOutcome]]) -> dict[str, dict[str, Any]]:
    return {feature: _feature_summary(outcomes) for feature, outcomes in sorted(by_feature.items())}


def print_report(report: dict[str, Any], console: Console) -> None:
    for sample in report["samples"]:
        title = (
            f"Search {sample['query']!r} ({sample['feature']})"
            if sample["rpc"] == "Search"
            else f"Recommended for customer {sample['user_id']} ({sample['feature']})"
        )
        table = Table(title=title, title_justify="left")
        table.add_column("item")
        table.add_column("title")
        table.add_column("score", justify="right")
        for item in sample["items"]:
            table.add_row(item["item_id"], item["title"], f"{item['score']:.3f}")
        console.print(table)

    table = Table(title="Traffic by feature (client-side latency; cost in USD)", title_justify="left")
    for column in ("feature", "requests", "errors", "cache hit rate", "p50 ms", "p99 ms", "cost", "cost / 1k req", "saved by cache"):
        table.add_column(column, justify="left" if column == "feature" else "right")
    for feature, row in report["by_feature"].items():
        table.add_row(
            feature,
            str(row["requests"]),
            str(row["errors"]),
            f"{row['cache_hit_rate']:.1%}",
            f"{row['latency_ms']['p50']:.2f}",
            f"{row['latency_ms']['p99']:.2f}",
            f"{row['cost_usd']:.4g}",
            f"{row['cost_per_1k_requests_usd']:.4g}",
            f"{row['avoided_cost_usd']:.4g}",
        )
    table.add_row(
        "[bold]all[/bold]",
        str(report["requests"]),
        str(report["errors"]),
        f"{report['cache_hit_rate']:.1%}",
        f"{report['latency_ms']['p50']:.2f}",
        f"{report['latency_ms']['p99']:.2f}",
        f"{report['total_cost_usd']:.4g}",
        f"{report['cost_per_1k_requests_usd']:.4g}",
        f"{report['avoided_cost_usd']:.4g}",
    )
    console.print(table)
    console.print(
        f"throughput {report['throughput_rps']} req/s at concurrency {report['concurrency']}; "
        f"model calls by pool and reason {report['model_calls_by_pool']}; "
        f"ledger total {report['ledger_total_cost_usd']:.12f} USD over {report['ledger_records']} records; "
        f"{report['spans_with_cost']} spans carry a cost"
    )
    _print_quality("Recommender on the time-based hold-out", recommender_quality(report["eval"]), console)
    search = report["search_eval"]
    _print_quality(f"Search on {search['judged_set']['queries']} judged queries", search["quality"], console)


def recommender_quality(evaluation: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The served model (unquantized and as served) and the popularity fallback, named by eval.json."""
    served = evaluation.get("served")
    if not served:  # a build from before the candidate comparison
        return {name: evaluation[name] for name in ("model_fp32", "model_int8", "popularity")}
    return {
        f"{served['label']} fp32": evaluation["model_fp32"],
        f"{served['label']} {served['variant']} (served)": evaluation["model_int8"],
        "popularity": evaluation["popularity"],
    }


def _print_quality(title: str, rankers: dict[str, dict[str, float]], console: Console) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("ranker")
    table.add_column("recall@10", justify="right")
    table.add_column("NDCG@10", justify="right")
    for name, row in rankers.items():
        table.add_row(name, f"{row['recall_at_10']:.4f}", f"{row['ndcg_at_10']:.4f}")
    console.print(table)
