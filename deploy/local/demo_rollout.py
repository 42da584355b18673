"""The demo's rollout step: a candidate version of the recommender in shadow next to the serving
one, its cost per 1,000 requests and the overlap of its answers, version by version.

The candidate is the repository's own (``model_repo/recommender/versions.json`` names one) or,
when it has none, a copy of the serving version made for the demo (same weights: its answers
overlap fully and its cost is the serving version's, which shows the mechanism, not a new
model). Quality per version comes from the eval records of versions.json when present.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
from rich.console import Console
from rich.table import Table

from costing.ledger import SqliteLedger
from costing.money import pico_to_decimal
from deploy.local.access import LocalAccess
from deploy.local.demo_client import drive
from deploy.local.traffic import PlannedCall
from deploy.local.versioned_repository import MODEL, SERVING, build_versioned_repository
from gateway.api import rollout_pb2, rollout_pb2_grpc
from pipeline.model_versions import VERSIONS_FILE
from gateway.api_keys import ALL_TENANTS, Role

DEMO_CANDIDATE, DEMO_CANDIDATE_BUILD = "2", "demo-copy-of-1"
# Loading a version and the drain of a roll back take seconds on a small machine.
OPERATION_DEADLINE_S = 120.0
PER_THOUSAND = 1000
MICRO = Decimal(1_000_000)  # the table shows micro-dollars, as `tollgate cost report` does


def _versions_record(model_repository: Path) -> dict[str, Any]:
    path = model_repository / MODEL / VERSIONS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def demo_repository(model_repository: Path, run_dir: Path) -> Path:
    """The repository the demo's Triton serves: the project's when it has a candidate, else a
    copy whose recommender has version 2 = version 1."""
    if _versions_record(model_repository).get("candidate"):
        return model_repository
    target = run_dir / "demo-repository"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    build_versioned_repository(model_repository, target, {DEMO_CANDIDATE: DEMO_CANDIDATE_BUILD}, kept=(SERVING, DEMO_CANDIDATE))
    return target


@dataclass(frozen=True)
class ShadowStep:
    serving: str
    candidate: str
    share: float
    calls: int
    errors: int
    compared: int
    mean_overlap: float
    skipped: int
    note: str


async def shadow_step(
    address: str, access: LocalAccess, calls: list[PlannedCall], concurrency: int, deadline_s: float, share: float
) -> ShadowStep:
    """Shadow of the candidate at ``share`` while ``calls`` are sent, then a roll back."""
    operator = access.metadata(ALL_TENANTS, Role.OPERATOR)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = rollout_pb2_grpc.ModelRolloutStub(channel)
        started = await stub.Shadow(
            rollout_pb2.StartRolloutRequest(model=MODEL, share=share), timeout=OPERATION_DEADLINE_S, metadata=operator
        )
        outcomes = await drive(address, calls, concurrency, deadline_s, access)
        seen = await stub.Status(rollout_pb2.RolloutRequest(model=MODEL), timeout=OPERATION_DEADLINE_S, metadata=operator)
        ended = await stub.Rollback(rollout_pb2.RolloutRequest(model=MODEL), timeout=OPERATION_DEADLINE_S, metadata=operator)
    return ShadowStep(
        serving=started.serving_version,
        candidate=started.candidate_version,
        share=share,
        calls=len(outcomes),
        errors=sum(outcome.status != "OK" for outcome in outcomes),
        compared=seen.shadow_compared,
        mean_overlap=seen.shadow_mean_overlap,
        skipped=seen.shadow_skipped,
        note=ended.note,
    )


@dataclass(frozen=True)
class VersionCost:
    version: str
    traffic: str
    requests: int
    model_calls: int  # requests that reached the model (not answered from the cache)
    cost_per_1k: Decimal  # direct cost per 1,000 requests
    compute_per_1k_model_calls: Decimal


def version_costs(ledger: SqliteLedger) -> list[VersionCost]:
    """The recommender's cost per version and traffic, from the ledger."""
    rows = []
    for sums in ledger.summarize(["model", "model_version", "traffic"]):
        if sums.group["model"] != MODEL or not sums.requests:
            continue
        model_calls = sums.requests - sums.cache_hits
        rows.append(
            VersionCost(
                version=str(sums.group["model_version"]),
                traffic=str(sums.group["traffic"]),
                requests=sums.requests,
                model_calls=model_calls,
                cost_per_1k=pico_to_decimal(sums.cost_total_pico) * PER_THOUSAND / sums.requests,
                compute_per_1k_model_calls=(
                    pico_to_decimal(sums.cost_compute_pico) * PER_THOUSAND / model_calls if model_calls else Decimal(0)
                ),
            )
        )
    return rows


def version_quality(model_repository: Path, demo_copy: bool) -> dict[str, str]:
    """Version -> its offline evaluation in a line (recall@10, NDCG@10 of the served form on the
    test weeks), from the built repository's versions.json; ``demo_copy``: the candidate is the
    demo's copy of the serving version, so its figures are the serving version's."""
    record = _versions_record(model_repository)
    quality = {}
    for version, entry in record.get("versions", {}).items():
        figures = (entry.get("eval") or {}).get("test_served_form") or {}
        if "recall_at_10" in figures and "ndcg_at_10" in figures:
            quality[version] = f"recall@10 {figures['recall_at_10']:.4f}, NDCG@10 {figures['ndcg_at_10']:.4f}"
    serving = str(record.get("serving", ""))
    if demo_copy and serving in quality:
        quality = {SERVING: quality[serving], DEMO_CANDIDATE: f"{quality[serving]} (a copy of {SERVING})"}
    return quality


def print_rollout(step: ShadowStep, costs: list[VersionCost], quality: dict[str, str], console: Console) -> None:
    console.print(
        f"[bold]Rollout step:[/bold] version {step.candidate} in shadow at {step.share:.0%} next to serving version "
        f"{step.serving} for {step.calls} Recommend calls ({step.errors} failed); {step.compared} answers compared, "
        f"mean overlap of item ids {step.mean_overlap:.3f}, {step.skipped} mirrors skipped; then: {step.note}"
    )
    table = Table(
        "version", "traffic", "requests", "model calls", "cost per 1k requests (µUSD)",
        "compute per 1k model calls (µUSD)", "offline quality",
    )  # fmt: skip
    for row in costs:
        table.add_row(
            row.version, row.traffic, str(row.requests), str(row.model_calls), f"{row.cost_per_1k * MICRO:,.3f}",
            f"{row.compute_per_1k_model_calls * MICRO:,.3f}", quality.get(row.version) or "(no versions.json eval)",
        )  # fmt: skip
    console.print(table)


def rollout_report(step: ShadowStep, costs: list[VersionCost], quality: dict[str, str]) -> dict[str, Any]:
    return {
        "shadow": asdict(step),
        "versions": [
            {**asdict(row), "cost_per_1k": str(row.cost_per_1k), "compute_per_1k_model_calls": str(row.compute_per_1k_model_calls),
             "quality": quality.get(row.version, "")}
            for row in costs
        ],
    }  # fmt: skip
