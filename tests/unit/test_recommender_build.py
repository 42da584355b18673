"""A whole recommender build on a small synthetic dataset: export layout, reuse by fingerprint, atomicity."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from pipeline.recommender.artifact_reader import load_exported
from pipeline.recommender.build import build_recommender, is_up_to_date
from pipeline.recommender.config import RecommenderPipelineSettings
from pipeline.recommender.export import is_complete, record_triton_compute, triton_compute_of
from pipeline.recommender.summary import summary_tables
from pipeline.settings import PipelineSettings

DATASET = "retail/transactions.csv.gz"
N_USERS, N_ITEMS = 40, 30


def write_synthetic_transactions(path: Path) -> None:
    rng = np.random.default_rng(7)
    rows = []
    for invoice in range(600):
        user = 10000 + int(rng.integers(N_USERS))
        day = pd.Timestamp("2011-10-01") + pd.Timedelta(hours=int(rng.integers(24 * 69)))
        item = 20000 + int(min(rng.zipf(1.5), N_ITEMS))
        rows.append((str(500000 + invoice), str(item), f"ITEM {item}", 1 + int(rng.integers(5)), day, 1.5, user))
    rows.append(("C600001", "20001", "ITEM 20001", -1, pd.Timestamp("2011-11-02"), 1.5, 10001))
    rows.append(("600002", "POST", "POSTAGE", 1, pd.Timestamp("2011-11-02"), 18.0, 10001))
    frame = pd.DataFrame(
        rows, columns=["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID"]
    )
    frame["Country"] = "United Kingdom"
    path.parent.mkdir(parents=True)
    frame.to_csv(path, index=False, date_format="%Y-%m-%d %H:%M:%S")


@pytest.fixture()
def workspace(tmp_path: Path) -> tuple[PipelineSettings, RecommenderPipelineSettings]:
    write_synthetic_transactions(tmp_path / "data" / DATASET)
    settings = PipelineSettings(data_dir=tmp_path / "data", model_repository=tmp_path / "repo")
    config = RecommenderPipelineSettings(
        dataset_file=DATASET,
        cutoff_date=date(2011, 11, 20),
        validation_days=14,
        embedding_dim=8,
        epochs=2,
        batch_size=256,
        bench_repeats=3,
        bench_warmup=1,
        evaluation_seeds=(1, 2, 3),
        bpr_l2_grid=(1e-4,),
        als_factors_grid=(4,),
        als_regularization_grid=(0.1,),
        als_alpha_grid=(1.0, 10.0),
        als_iterations=3,
        knn_neighbours_grid=(5, 0),
        ease_l2_grid=(5.0, 50.0),
        blend_recency_days_grid=(0.0, 10.0),
        blend_trend_days_grid=(7,),
        blend_trend_weight_grid=(0.0, 0.5),
        prune_top_n_grid=(5, 10),
        bootstrap_resamples=200,
    )
    return settings, config


def test_build_writes_a_complete_model_and_reuses_it(workspace) -> None:
    settings, config = workspace
    first = build_recommender(settings=settings, config=config)
    model_dir = settings.model_repository / "recommender"
    assert not first.reused
    assert {p.name for p in (model_dir / "1").iterdir()} >= {"model.py", "recommender_scoring.py", "artifacts"}
    assert f'string_value: "{first.manifest["build_id"]}"' in (model_dir / "config.pbtxt").read_text()
    assert not list((model_dir / "1").glob(".artifacts-*"))  # no staging left behind

    evaluation = json.loads((model_dir / "1" / "artifacts" / "eval.json").read_text())
    for ranker in ("model_fp32", "model_int8", "popularity"):  # what the demo report and benchmarks read
        assert set(evaluation[ranker]) >= {"recall_at_10", "ndcg_at_10"}
    rows = {row["name"]: row for row in evaluation["candidates"]}
    assert {"popularity", "item_knn", "als", "ease", "ease_blend", "bpr", "bpr_reference"} <= set(rows)
    assert len(evaluation["tuning"]["als"]) == 2 and len(evaluation["tuning"]["ease_blend"]) == 4
    assert rows["als"]["test"]["seeds"] == [1, 2, 3] and rows["ease"]["test"]["seeds"] == [config.seed]
    assert rows["bpr_reference"]["vs_reference"]["ndcg_at_10"]["difference"] == 0.0
    served = [row for row in evaluation["candidates"] if row.get("served")]
    assert len(served) == 1 and served[0]["name"].startswith(evaluation["served"]["candidate"])
    assert all(row["serving_bytes"] > 0 and row["compute_us"]["median_us"] > 0 for row in rows.values())
    with np.load(model_dir / "1" / "artifacts" / "recommender.npz") as arrays:
        assert str(arrays["scorer_kind"]) == evaluation["served"]["scorer_kind"] == first.manifest["scorer_kind"]
    assert evaluation["dataset"]["removed_rows"]["non_product_code"] == 1
    assert evaluation["dataset"]["removed_rows"]["cancellation"] == 1

    exported = load_exported(settings.model_repository)
    assert exported.build_id == first.manifest["build_id"]
    assert "POST" not in exported.titles and len(exported.popularity_ranking) == len(exported.titles)

    second = build_recommender(settings=settings, config=config)
    assert second.reused and second.manifest["build_id"] == first.manifest["build_id"]
    assert is_up_to_date(settings, config)


def test_changed_config_or_force_rebuilds(workspace) -> None:
    settings, config = workspace
    first = build_recommender(settings=settings, config=config)
    assert not is_up_to_date(settings, config.model_copy(update={"epochs": 3}))
    assert not build_recommender(settings=settings, config=config, force=True).reused
    retrained = build_recommender(settings=settings, config=config.model_copy(update={"epochs": 3}))
    assert not retrained.reused
    assert retrained.manifest["input_fingerprint"] != first.manifest["input_fingerprint"]


def test_same_inputs_give_the_same_build_id(workspace) -> None:
    settings, config = workspace
    first = build_recommender(settings=settings, config=config)
    again = build_recommender(settings=settings, config=config, force=True)
    assert again.manifest["build_id"] == first.manifest["build_id"]


def test_a_repository_without_its_config_is_not_complete(workspace) -> None:
    settings, config = workspace
    result = build_recommender(settings=settings, config=config)
    result.paths.config_file.unlink()  # what an interrupted build leaves behind
    assert not is_complete(result.paths)
    assert not build_recommender(settings=settings, config=config).reused
    assert is_complete(result.paths, result.manifest["input_fingerprint"])


def test_triton_compute_is_recorded_for_the_served_and_fallback_rows(workspace) -> None:
    settings, config = workspace
    result = build_recommender(settings=settings, config=config)
    evaluation = json.loads(result.paths.eval_file.read_text())
    assert triton_compute_of(evaluation) is None
    figures = {
        "build_id": result.manifest["build_id"],
        "known_users": {"median": 300_000, "p90": 400_000, "requests": 5},
        "unknown_users": {"median": 90_000, "p90": 100_000, "requests": 5},
    }
    updated = record_triton_compute(result.paths, figures)
    assert triton_compute_of(updated) == figures == triton_compute_of(json.loads(result.paths.eval_file.read_text()))
    rows = {row["name"]: row for row in updated["candidates"]}
    assert rows["popularity"]["triton_compute_ns"]["median"] == 90_000
    assert [row["triton_compute_ns"]["median"] for row in updated["candidates"] if row.get("served")] == [300_000]
    manifest = json.loads(result.paths.manifest_file.read_text())
    assert manifest["files"]["eval.json"]["bytes"] == result.paths.eval_file.stat().st_size
    assert build_recommender(settings=settings, config=config).reused  # the record does not invalidate the build

    console = Console(width=200, record=True)
    for table in summary_tables(updated, reused=False):
        console.print(table)
    text = console.export_text()
    assert "300 µs†" in text and "(served)" in text and "BPR (today)" in text
