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
from pipeline.recommender.build import build_recommender, is_up_to_date, write_assembled
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


def test_changed_inputs_or_force_retrain_and_the_same_build_id_writes_no_new_version(workspace) -> None:
    settings, config = workspace
    first = build_recommender(settings=settings, config=config)
    changed = config.model_copy(update={"epochs": 3})
    assert not is_up_to_date(settings, changed)
    forced = build_recommender(settings=settings, config=config, force=True)
    assert forced.reused and forced.paths.version == 1 and forced.manifest["build_id"] == first.manifest["build_id"]
    retrained = build_recommender(settings=settings, config=changed)
    assert retrained.manifest["input_fingerprint"] != first.manifest["input_fingerprint"]
    assert is_up_to_date(settings, changed)  # whichever version it is, the next run reuses it


def _scaled(repository: Path, factor: float) -> dict[str, np.ndarray]:
    """The serving version's arrays with every item-item scale times ``factor``: a different build_id, the
    same ranking (score = s / max|s| + prior is unchanged when every link is scaled alike)."""
    with np.load(repository / "recommender" / "1" / "artifacts" / "recommender.npz") as data:
        arrays = {name: data[name] for name in data.files}
    assert str(arrays["scorer_kind"]) == "item-item"  # what the synthetic build serves (item-kNN)
    arrays["neighbour_scales"] = arrays["neighbour_scales"] * np.float32(factor)
    return arrays


def test_a_new_build_id_becomes_the_candidate_version_beside_the_serving_one(workspace) -> None:
    settings, config = workspace
    first = build_recommender(settings=settings, config=config)
    model = settings.model_repository / "recommender"
    blend = json.loads(first.paths.eval_file.read_text())["served"]["params"]
    candidate = write_assembled(_scaled(settings.model_repository, 2.0), blend, "scales x2", settings, config)

    assert (candidate.paths.version, candidate.reused) == (2, False)
    assert candidate.manifest["build_id"] != first.manifest["build_id"]
    record = json.loads((model / "versions.json").read_text())
    assert (record["serving"], record["candidate"], sorted(record["versions"])) == ("1", "2", ["1", "2"])
    assert record["versions"]["1"]["data"]["dataset"] == DATASET and record["versions"]["2"]["build_id"] == (
        candidate.manifest["build_id"]
    )
    assert record["versions"]["2"]["eval"]["gate"]["recall_at_10"] > 0
    text = (model / "config.pbtxt").read_text()
    assert "versions: [ 1, 2 ]" in text
    assert f'key: "build_id.2"\n    value {{ string_value: "{candidate.manifest["build_id"]}" }}' in text
    assert f'key: "build_id"\n    value {{ string_value: "{first.manifest["build_id"]}" }}' in text  # still serving
    assert {p.name for p in (model / "2").iterdir()} >= {"model.py", "recommender_scoring.py", "artifacts"}
    assert is_complete(candidate.paths) and is_complete(first.paths)

    # Both versions scored on the same split by the same evaluator; same ranking, same figures.
    gate = json.loads(candidate.paths.eval_file.read_text())["gate_evaluation"]
    serving, scaled = gate["versions"]["1"], gate["versions"]["2"]
    assert serving["build_id"] == first.manifest["build_id"] and scaled["build_id"] == candidate.manifest["build_id"]
    assert serving["n_test_users"] > 0 and 0 < scaled["recall_at_10"] == serving["recall_at_10"]
    assert scaled["ndcg_at_10"] == serving["ndcg_at_10"]
    assert len(gate["probe_user_ids"]) == len(set(gate["probe_user_ids"])) > 0

    # A newer candidate replaces the unpromoted one; the serving version is untouched.
    newer = write_assembled(_scaled(settings.model_repository, 3.0), blend, "scales x3", settings, config)
    assert newer.paths.version == 3 and not (model / "2").exists()
    assert "versions: [ 1, 3 ]" in (model / "config.pbtxt").read_text()
    # Rebuilding from unchanged inputs reuses the serving version and writes nothing.
    again = build_recommender(settings=settings, config=config)
    assert again.reused and again.paths.version == 1
    assert json.loads((model / "versions.json").read_text())["candidate"] == "3"

    # Promoting at build time: the candidate serves, the old serving version is kept as previous.
    build_recommender(settings=settings, config=config, serve=True)  # version 1 is serving already: no change
    promoted = write_assembled(_scaled(settings.model_repository, 3.0), blend, "scales x3", settings, config,
                               serve=True)
    record = json.loads((model / "versions.json").read_text())
    assert (promoted.paths.version, record["serving"], record["previous"], record["candidate"]) == (3, "3", "1", None)
    assert load_exported(settings.model_repository).build_id == newer.manifest["build_id"]


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
    assert build_recommender(settings=settings, config=config).manifest["build_id"] == result.manifest["build_id"]
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
