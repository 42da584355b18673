"""Scores built versions' own artifacts on one evaluation split, so that the gate compares like with like.

When a build writes a new version, the candidate's exported arrays and the serving version's
arrays are scored by the same function on the candidate build's test split
(:func:`pipeline.recommender.split.time_split` at ``cutoff_date``), and both figures go into the
candidate's ``eval.json`` under ``gate_evaluation``; ``tollgate models gate`` reads them there.

How a version is scored: its served scorer (``recommender_scoring.user_scorer``, the code
Triton runs) with the version's learned arrays (item-item table or item vectors) and, as its
inputs, the customers' purchases before the cutoff — their histories, recency weights and the
trending prior recomputed at the cutoff with the version's own blend settings (``served.params``
of its eval.json) — ranked over what they had not bought yet and scored with the pipeline's
:func:`pipeline.recommender.evaluate.evaluate` on the held-out new items.

Caveat: a served version is refitted on all purchases, the test weeks included, so these
figures are optimistic in absolute terms (the candidate table's test figures are the clean
ones); they are a yardstick for comparing two versions, not a quality estimate. A factor
model's user vectors are the exported ones (fitted on everything as well).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from pipeline.data import CleanedData
from pipeline.recommender.config import RecommenderPipelineSettings
from pipeline.recommender.encoding import UserItemMatrix, Vocabulary
from pipeline.recommender.evaluate import RankingQuality, build_holdout, evaluate
from pipeline.recommender.history import PurchaseHistory
from pipeline.recommender.item_item import trend_prior
from pipeline.recommender.popularity import trending_scores
from pipeline.recommender.serving_kernels import scoring_module
from pipeline.recommender.split import TimeSplit, time_split

GATE_EVALUATION_KEY = "gate_evaluation"
NO_ITEMS = np.empty(0, dtype=np.int64)


def load_arrays(weights_file: Path) -> dict[str, np.ndarray]:
    with np.load(weights_file) as data:
        return {name: data[name] for name in data.files}


def version_quality(
    arrays: Mapping[str, np.ndarray], blend: Mapping[str, float], split: TimeSplit, config: RecommenderPipelineSettings
) -> RankingQuality:
    """recall@k and NDCG@k of one version's arrays on ``split`` (see the module docstring)."""
    kernels = scoring_module()
    users = Vocabulary(np.asarray(arrays["user_ids"].tolist(), dtype=object))
    items = Vocabulary(np.asarray(arrays["item_ids"].tolist(), dtype=object))
    known_users, known_items = set(users.ids), set(items.ids)
    train = split.train[split.train["user_id"].isin(known_users) & split.train["item_id"].isin(known_items)]
    test = split.test[split.test["user_id"].isin(known_users) & split.test["item_id"].isin(known_items)]
    history = PurchaseHistory.from_lines(train, users, items, split.cutoff)
    holdout = build_holdout(
        UserItemMatrix.from_pairs(users.lookup(test["user_id"]), items.lookup(test["item_id"]), len(users), len(items))
    )
    as_of_cutoff = {
        **arrays,
        "seen_indptr": history.matrix.indptr.astype(np.int64),
        "seen_indices": history.matrix.indices.astype(np.int32),
    }
    if kernels.scorer_kind(arrays) == kernels.ITEM_ITEM:
        as_of_cutoff["history_weights"] = history.recency_weights(float(blend.get("recency_days", 0.0)))
        trend_days = float(blend.get("trend_days", 0.0))
        as_of_cutoff["item_prior"] = (
            trend_prior(trending_scores(history, trend_days), float(blend.get("trend_weight", 0.0)))
            if trend_days > 0
            else np.zeros(len(items), dtype=np.float32)
        )
    scorer = kernels.user_scorer(as_of_cutoff, torch.device("cpu"), config.cpu_int8_kernel)

    def score(rows: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return scorer.scores(rows.tolist(), [NO_ITEMS] * len(rows)).float().numpy()

    return evaluate(score, holdout, history.matrix, config.top_k)


def probe_user_ids(arrays: Mapping[str, np.ndarray], config: RecommenderPipelineSettings) -> list[str]:
    """Known customers (with purchases) the gate sends its compute probes for, drawn with the build's seed."""
    indptr = arrays["seen_indptr"]
    buyers = np.flatnonzero(np.diff(indptr) > 0)
    size = min(config.gate_probe_users, len(buyers))
    chosen = np.random.default_rng(config.seed).choice(buyers, size=size, replace=False)
    user_ids = arrays["user_ids"]
    return [str(user_ids[row]) for row in sorted(chosen)]


def gate_evaluation(
    data: CleanedData,
    config: RecommenderPipelineSettings,
    versions: Mapping[int, tuple[str, Mapping[str, np.ndarray], Mapping[str, float]]],
    candidate_arrays: Mapping[str, np.ndarray],
) -> dict:
    """``versions``: version -> (build_id, arrays, blend settings); every one scored on the same split."""
    split = time_split(data.interactions, config.cutoff_date)
    k = config.top_k
    scored = {}
    for version, (build_id, arrays, blend) in sorted(versions.items()):
        quality = version_quality(arrays, blend, split, config)
        scored[str(version)] = {"build_id": build_id, "n_test_users": len(quality.user_recall), **quality.as_dict(k)}
    return {
        "k": k,
        "cutoff_date": config.cutoff_date.isoformat(),
        "protocol": (
            "each version's exported arrays scored by the served scorer on the purchases before the cutoff "
            "(histories, recency weights and trending prior recomputed there with the version's blend settings), "
            f"held-out new items of known customers after it; recall@{k}, NDCG@{k} means over test users. "
            "Versions are refitted on all data, so the figures are optimistic; they compare versions"
        ),
        "versions": scored,
        "probe_user_ids": probe_user_ids(candidate_arrays, config),
    }


def blend_of(evaluation: Mapping) -> dict[str, float]:
    """The served blend settings a version's eval.json records (none for a plain model)."""
    params = evaluation.get("served", {}).get("params", {})
    return {name: float(params[name]) for name in ("recency_days", "trend_days", "trend_weight") if name in params}
