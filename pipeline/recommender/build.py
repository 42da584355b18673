"""The recommender build: clean -> split -> train -> evaluate -> quantize -> measure -> refit -> export.

Evaluation figures are those of a model trained on the purchases before the cutoff. The model
that is served is then refitted, with the same hyper-parameters and seed, on ALL cleaned
purchases, so that it knows every customer and the last four weeks (the Christmas season);
its seen-item exclusion likewise uses all cleaned purchases. Its quality is not re-measured
(there is no later data to measure it on); its speed and memory are.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from pipeline.data import CleanedData, load_clean_data
from pipeline.model_dir import BuildResult
from pipeline.recommender.bpr import FactorModel, train_bpr
from pipeline.recommender.config import RecommenderPipelineSettings
from pipeline.recommender.encoding import UserItemMatrix, Vocabulary
from pipeline.recommender.evaluate import build_holdout, evaluate, mean_overlap, popularity_scores
from pipeline.recommender.export import (
    RecommenderDir,
    ServingArtifacts,
    is_complete,
    read_manifest,
    sync_serving_sources,
    write_model,
)
from pipeline.recommender.fingerprint import recommender_fingerprint
from pipeline.recommender.quantize import QuantizedTable, memory_report, quantize_rows
from pipeline.recommender.scoring_speed import measure_scoring_speed
from pipeline.recommender.serving_kernels import scoring_module
from pipeline.recommender.split import time_split
from pipeline.settings import PipelineSettings

log = logging.getLogger(__name__)


def model_paths(
    settings: PipelineSettings | None = None, config: RecommenderPipelineSettings | None = None
) -> RecommenderDir:
    settings = settings or PipelineSettings()
    config = config or RecommenderPipelineSettings()
    return RecommenderDir(repository=Path(settings.model_repository), name=config.model_name)


def current_fingerprint(
    settings: PipelineSettings | None = None, config: RecommenderPipelineSettings | None = None
) -> str:
    settings = settings or PipelineSettings()
    config = config or RecommenderPipelineSettings()
    return recommender_fingerprint(Path(settings.data_dir) / config.dataset_file, config)


def is_up_to_date(settings: PipelineSettings | None = None, config: RecommenderPipelineSettings | None = None) -> bool:
    return is_complete(model_paths(settings, config), current_fingerprint(settings, config))


def build_recommender(
    force: bool = False, settings: PipelineSettings | None = None, config: RecommenderPipelineSettings | None = None
) -> BuildResult[RecommenderDir]:
    """Builds the recommender into ``settings.model_repository``; reuses a build of the same inputs."""
    settings = settings or PipelineSettings()
    config = config or RecommenderPipelineSettings()
    paths = model_paths(settings, config)
    data_file = Path(settings.data_dir) / config.dataset_file
    fingerprint = recommender_fingerprint(data_file, config)
    if not force and is_complete(paths, fingerprint):
        sync_serving_sources(paths)
        manifest = read_manifest(paths) or {}
        log.info("reusing build %s in %s (inputs unchanged)", manifest.get("build_id"), paths.path)
        return BuildResult(paths=paths, manifest=manifest, reused=True)

    started = time.perf_counter()
    data = load_clean_data(data_file)
    evaluation, serving = _train_and_evaluate(data, config)
    evaluation["build_seconds"] = round(time.perf_counter() - started, 1)
    manifest = write_model(paths, config, serving, evaluation, fingerprint)
    return BuildResult(paths=paths, manifest=manifest, reused=False)


def int8_serving_table(model: FactorModel, quantized: QuantizedTable, config: RecommenderPipelineSettings):
    """The int8 table exactly as a CPU model instance scores with it."""
    return scoring_module().int8_item_table(
        torch.from_numpy(quantized.values),
        torch.from_numpy(quantized.scales),
        torch.from_numpy(model.item_bias),
        config.cpu_int8_kernel,
    )


def _train_and_evaluate(data: CleanedData, config: RecommenderPipelineSettings) -> tuple[dict, ServingArtifacts]:
    k = config.top_k
    interactions = data.interactions
    users = Vocabulary.from_values(interactions["user_id"])
    items = Vocabulary.from_values(interactions["item_id"])

    def matrix(frame) -> UserItemMatrix:
        return UserItemMatrix.from_pairs(
            users.lookup(frame["user_id"]), items.lookup(frame["item_id"]), len(users), len(items)
        )

    # --- evaluation on the time hold-out ---------------------------------------------------
    split = time_split(interactions, config.cutoff_date)
    train, test = matrix(split.train), matrix(split.test)
    holdout = build_holdout(test)
    eval_model, eval_training = train_bpr(train, config, label="train split")
    int8_table = int8_serving_table(eval_model, quantize_rows(eval_model.item_vectors), config)
    popularity = popularity_scores(train)

    fp32 = evaluate(eval_model.scores, holdout, train, k)
    int8_users = int8_table.prepare_users(torch.from_numpy(eval_model.user_vectors))
    int8 = evaluate(lambda batch: int8_table.scores(int8_users[torch.from_numpy(batch)]).numpy(), holdout, train, k)
    popular = evaluate(lambda batch: np.tile(popularity, (len(batch), 1)), holdout, train, k)
    log.info(
        "hold-out (%d users) recall@%d / NDCG@%d: fp32 %.4f / %.4f, int8 %.4f / %.4f, popularity %.4f / %.4f",
        len(holdout.users), k, k, fp32.recall_at_k, fp32.ndcg_at_k, int8.recall_at_k, int8.ndcg_at_k,
        popular.recall_at_k, popular.ndcg_at_k,
    )

    # --- serving model: refit on everything ----------------------------------------------------
    everything = matrix(interactions)
    serving_model, serving_training = train_bpr(everything, config, label="all data")
    quantized = quantize_rows(serving_model.item_vectors)
    speed = measure_scoring_speed(serving_model, quantized, everything, config)

    evaluation = {
        "k": k,
        "cutoff_date": config.cutoff_date.isoformat(),
        "n_test_users": len(holdout.users),
        "n_test_pairs": int(test.nnz),
        "model_fp32": fp32.as_dict(k),
        "model_int8": {**int8.as_dict(k), "kernel": int8_table.kernel},
        "popularity": popular.as_dict(k),
        f"top{k}_overlap_int8_vs_fp32": round(mean_overlap(int8, fp32, k), 6),
        "metric_definitions": (
            f"recall@{k} = hits / all held-out new items of the user; NDCG@{k} binary gains, ideal = "
            f"min(k, relevant) hits first; means over test users; items bought before the cutoff excluded "
            "from every ranking; popularity = share of training customers who bought the item"
        ),
        "dataset": data.stats.as_dict(),
        "split": split.summary(),
        "training": {
            "algorithm": "BPR matrix factorisation with item bias",
            "train_split_seconds": round(eval_training.seconds, 2),
            "all_data_seconds": round(serving_training.seconds, 2),
            "epochs": config.epochs,
            "train_split_pairs": eval_training.pairs,
            "all_data_pairs": serving_training.pairs,
            "train_split_final_loss": round(eval_training.epoch_losses[-1], 5),
            "all_data_final_loss": round(serving_training.epoch_losses[-1], 5),
        },
        "serving_model": "refitted on all cleaned purchases with the same hyper-parameters; quality figures "
        "above are of the train-split model",
        "speed": speed,
        "memory": memory_report(serving_model.item_vectors, quantized),
        "config": config.model_dump(mode="json"),
    }
    serving = ServingArtifacts(
        item_ids=list(items.ids),
        item_titles=[data.titles[item] for item in items.ids],
        item_vectors=serving_model.item_vectors,
        item_bias=serving_model.item_bias,
        quantized=quantized,
        user_ids=list(users.ids),
        user_vectors=serving_model.user_vectors,
        popularity_scores=popularity_scores(everything),
        seen=everything,
    )
    return evaluation, serving
