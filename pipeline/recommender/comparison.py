"""The test side of the protocol: each candidate's chosen setting refitted on train + validation
(all purchases before the test cutoff), scored once on the test split, over several seeds where
training is random, and compared with the reference BPR by a paired bootstrap over test users.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from pipeline.recommender.bootstrap import DifferenceInterval, paired_bootstrap
from pipeline.recommender.candidates import Candidate, Model, Params, TrainingSet
from pipeline.recommender.config import RecommenderPipelineSettings
from pipeline.recommender.evaluate import HoldOut, RankingQuality, evaluate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TestResult:
    candidate: Candidate
    params: Params
    seeds: list[int]
    runs: list[RankingQuality]  # one per seed
    seconds: list[float]  # fit time per seed
    model: Model  # the first seed's model: memory and compute are measured on it

    @property
    def quality(self) -> RankingQuality:
        """Each test user's figures averaged over the seeds (what the bootstrap compares)."""
        return RankingQuality.mean_of(self.runs)

    def figures(self, k: int) -> dict:
        recalls = [run.recall_at_k for run in self.runs]
        ndcgs = [run.ndcg_at_k for run in self.runs]
        return {
            f"recall_at_{k}": round(float(np.mean(recalls)), 6),
            f"recall_at_{k}_sd": round(float(np.std(recalls)), 6),
            f"ndcg_at_{k}": round(float(np.mean(ndcgs)), 6),
            f"ndcg_at_{k}_sd": round(float(np.std(ndcgs)), 6),
            f"recall_at_{k}_per_seed": [round(value, 6) for value in recalls],
            f"ndcg_at_{k}_per_seed": [round(value, 6) for value in ndcgs],
            "seeds": self.seeds,
        }


def score_on_test(
    candidate: Candidate,
    params: Params,
    training: TrainingSet,
    holdout: HoldOut,
    config: RecommenderPipelineSettings,
) -> TestResult:
    seeds = list(config.evaluation_seeds) if candidate.randomised else [config.seed]
    runs, seconds, models = [], [], []
    for seed in seeds:
        fitted = candidate.fit(training, params, seed)
        runs.append(evaluate(fitted.model.scores, holdout, training.history.matrix, config.top_k))
        seconds.append(fitted.seconds)
        models.append(fitted.model)
    result = TestResult(candidate, params, seeds, runs, seconds, models[0])
    log.info(
        "test: %s %s over %d seed(s): recall@%d %.4f, NDCG@%d %.4f",
        candidate.name, params, len(seeds), config.top_k, result.quality.recall_at_k, config.top_k,
        result.quality.ndcg_at_k,
    )
    return result


def versus_reference(
    quality: RankingQuality, reference: RankingQuality, config: RecommenderPipelineSettings
) -> dict[str, DifferenceInterval]:
    """Paired bootstrap intervals of (candidate - reference) in recall@k and NDCG@k."""
    k = config.top_k
    return {
        f"recall_at_{k}": paired_bootstrap(
            quality.user_recall, reference.user_recall, config.bootstrap_resamples, config.bootstrap_confidence,
            config.seed,
        ),
        f"ndcg_at_{k}": paired_bootstrap(
            quality.user_ndcg, reference.user_ndcg, config.bootstrap_resamples, config.bootstrap_confidence,
            config.seed,
        ),
    }
