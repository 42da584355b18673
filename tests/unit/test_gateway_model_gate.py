"""The gate's judgement from recorded quality and measured compute, and its reading of the version files."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from costing.price_book import load_price_book
from costing.settings import CostingSettings
from gateway.model_gate import GateError, GateSettings, Versions, judge, read_versions

BOOK = load_price_book(CostingSettings().price_book_path)


def versions(serving_quality: tuple[float, float], candidate_quality: tuple[float, float]) -> Versions:
    return Versions(
        serving=1, candidate=2, build_ids={1: "aaa", 2: "bbb"}, k=10,
        quality={1: serving_quality, 2: candidate_quality}, probe_user_ids=["12347"],
    )


def test_compute_is_priced_exactly_per_1k_requests() -> None:
    # 500 us of vCPU per request x 1,000 = 0.5 vCPU-seconds at cpu-local's $0.044625 per vCPU-hour:
    # 0.5 x 0.044625 / 3600 = 0.000006197916666... USD, rounded once to the pico-dollar.
    settings = GateSettings(pool="cpu-local", budget_usd_per_1k_requests=Decimal("1"))
    verdict = judge(versions((0.07, 0.11), (0.07, 0.11)), {1: [500_000] * 4, 2: [400_000, 600_000]}, BOOK, settings)
    assert verdict.serving_cost == verdict.candidate_cost == Decimal("0.000006197917")
    assert verdict.passed and verdict.reasons == []


def test_quality_within_the_tolerance_passes_and_below_it_is_refused_naming_the_metric() -> None:
    settings = GateSettings(quality_tolerance=Decimal("0.02"), budget_usd_per_1k_requests=Decimal("1"))
    compute = {1: [1], 2: [1]}
    # floor = 0.07 x 0.98 = 0.0686 (recall) and 0.11 x 0.98 = 0.1078 (NDCG)
    assert judge(versions((0.07, 0.11), (0.0686, 0.1078)), compute, BOOK, settings).passed
    refused = judge(versions((0.07, 0.11), (0.0685, 0.1078)), compute, BOOK, settings)
    assert len(refused.reasons) == 1 and refused.reasons[0].startswith("recall@10 0.0685 is below")
    both = judge(versions((0.07, 0.11), (0.01, 0.02)), compute, BOOK, settings)
    assert [reason.split(" ")[0] for reason in both.reasons] == ["recall@10", "ndcg@10"]


def test_a_candidate_over_the_budget_is_refused_naming_the_cost() -> None:
    settings = GateSettings(budget_usd_per_1k_requests=Decimal("0.000006"))
    verdict = judge(versions((0.07, 0.11), (0.07, 0.11)), {1: [1_000], 2: [500_000]}, BOOK, settings)
    assert verdict.reasons == [
        "compute costs 0.000006197917 USD per 1k requests on cpu-local, over the budget of 0.000006 USD"
    ]


def write_model(repository: Path, record: dict, gate: dict | None) -> None:
    model = repository / "recommender"
    (model / "2" / "artifacts").mkdir(parents=True)
    (model / "versions.json").write_text(json.dumps(record))
    (model / "2" / "artifacts" / "eval.json").write_text(json.dumps({"gate_evaluation": gate} if gate else {}))


RECORD = {"serving": "1", "candidate": "2", "versions": {"1": {"build_id": "aaa"}, "2": {"build_id": "bbb"}}}
GATE = {
    "k": 10,
    "versions": {
        "1": {"build_id": "aaa", "recall_at_10": 0.07, "ndcg_at_10": 0.11},
        "2": {"build_id": "bbb", "recall_at_10": 0.01, "ndcg_at_10": 0.02},
    },
    "probe_user_ids": ["12347", "12348"],
}


def test_the_versions_and_the_candidates_evaluation_are_read_from_the_repository(tmp_path: Path) -> None:
    write_model(tmp_path, RECORD, GATE)
    read = read_versions(GateSettings(model_repository=tmp_path))
    assert (read.serving, read.candidate, read.k) == (1, 2, 10)
    assert read.quality == {1: (0.07, 0.11), 2: (0.01, 0.02)} and read.probe_user_ids == ["12347", "12348"]


@pytest.mark.parametrize(
    ("record", "gate", "reason"),
    [
        ({**RECORD, "candidate": None, "versions": {"1": {"build_id": "aaa"}}}, GATE, "no candidate version"),
        (RECORD, None, "holds no gate_evaluation"),
        ({**RECORD, "versions": {"1": {"build_id": "ccc"}, "2": {"build_id": "bbb"}}}, GATE,
         "does not score version 1 build ccc"),
    ],
)
def test_what_the_gate_cannot_judge_is_refused_with_the_reason(tmp_path: Path, record, gate, reason) -> None:
    write_model(tmp_path, record, gate)
    with pytest.raises(GateError, match=reason):
        read_versions(GateSettings(model_repository=tmp_path))
