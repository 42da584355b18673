"""``tollgate models gate``: serving vs candidate (quality, compute, cost per 1k requests); exit 1 when refused."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from tritonclient.utils import InferenceServerException
from rich.table import Table

from costing.price_book import PriceBookError, UnknownPoolError, load_price_book
from costing.settings import get_costing_settings
from gateway.model_gate import GateError, GateSettings, GateVerdict, run_gate

console = Console()
REFUSED = 1


def _delta(candidate: float | Decimal, serving: float | Decimal, places: str) -> str:
    difference = candidate - serving
    return f"{difference:+{places}}"


def verdict_table(verdict: GateVerdict, settings: GateSettings) -> Table:
    serving, candidate, k = verdict.serving, verdict.candidate, verdict.k
    table = Table(title=f"{settings.model}: candidate version {candidate.version} vs serving version {serving.version}")
    for column in ("", f"serving v{serving.version} ({serving.build_id})", f"candidate v{candidate.version} "
                   f"({candidate.build_id})", "Δ", "limit"):
        table.add_column(column, justify="left" if not column else "right")
    floor = f"≥ serving × (1 − {settings.quality_tolerance})"
    table.add_row(f"recall@{k}", f"{serving.recall:.4f}", f"{candidate.recall:.4f}",
                  _delta(candidate.recall, serving.recall, ".4f"), floor)
    table.add_row(f"NDCG@{k}", f"{serving.ndcg:.4f}", f"{candidate.ndcg:.4f}",
                  _delta(candidate.ndcg, serving.ndcg, ".4f"), floor)
    serving_us, candidate_us = float(serving.mean_compute_ns) / 1e3, float(candidate.mean_compute_ns) / 1e3
    table.add_row("compute µs/request", f"{serving_us:.0f}", f"{candidate_us:.0f}",
                  _delta(candidate_us, serving_us, ".0f"), "")
    table.add_row(f"USD per 1k requests ({settings.pool})", f"{verdict.serving_cost:f}", f"{verdict.candidate_cost:f}",
                  _delta(verdict.candidate_cost, verdict.serving_cost, "f"), f"≤ {settings.budget_usd_per_1k_requests:f}")
    table.caption = (
        f"quality: both versions' artifacts scored on the candidate build's split (gate_evaluation in its eval.json); "
        f"compute: mean COMPUTE_NS of {len(candidate.compute_ns)} calls to each version through Triton at "
        f"{settings.triton_url}"
    )
    return table


def gate(
    triton_url: Annotated[str | None, typer.Option(help="Triton gRPC address with both versions loaded.")] = None,
    model_repository: Annotated[Path | None, typer.Option(help="Model repository holding the versions.")] = None,
    tolerance: Annotated[Decimal | None, typer.Option(help="Fraction of recall/NDCG the candidate may lose.")] = None,
    budget: Annotated[Decimal | None, typer.Option(help="Most USD of compute per 1,000 requests.")] = None,
    requests: Annotated[int | None, typer.Option(min=1, help="Timed calls to each version.")] = None,
    pool: Annotated[str | None, typer.Option(help="Price-book pool the compute is priced for.")] = None,
) -> None:
    """Judge the candidate version against the serving one: quality on the same evaluation, compute cost per
    1k requests through Triton. Exit 0: it may be promoted; exit 1: refused (the reasons are printed).
    Defaults: TOLLGATE_GATE_* settings."""
    overrides = {
        "triton_url": triton_url, "model_repository": model_repository, "quality_tolerance": tolerance,
        "budget_usd_per_1k_requests": budget, "requests": requests, "pool": pool,
    }
    settings = GateSettings(**{name: value for name, value in overrides.items() if value is not None})
    try:
        book = load_price_book(get_costing_settings().price_book_path)
        verdict = run_gate(settings, book)
    except (GateError, UnknownPoolError, PriceBookError, InferenceServerException) as error:
        console.print(f"[bold red]REFUSED[/]: {error}")
        raise typer.Exit(REFUSED) from None
    console.print(verdict_table(verdict, settings))
    if not verdict.passed:
        console.print(f"[bold red]REFUSED[/]: version {verdict.candidate.version} may not be promoted:")
        for reason in verdict.reasons:
            console.print(f"  - {reason}")
        raise typer.Exit(REFUSED)
    console.print(f"[bold green]PASSED[/]: version {verdict.candidate.version} may be promoted")
