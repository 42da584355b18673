"""Hyper-parameter search on the validation split: every setting of every candidate's grid, one seed.

The chosen setting maximises validation NDCG@k (recall@k breaks ties; then the grid's order). The
test split is never looked at here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pipeline.recommender.candidates import Candidate, Params, TrainingSet
from pipeline.recommender.evaluate import HoldOut, evaluate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Trial:
    params: Params
    recall: float
    ndcg: float

    def as_dict(self) -> dict:
        return {"params": self.params, "recall": round(self.recall, 6), "ndcg": round(self.ndcg, 6)}


@dataclass(frozen=True)
class Tuned:
    candidate: str
    trials: list[Trial]

    @property
    def best(self) -> Trial:
        return max(self.trials, key=lambda trial: (trial.ndcg, trial.recall))  # max keeps the first of equals


def tune(
    candidates: list[Candidate], training: TrainingSet, holdout: HoldOut, k: int, seed: int
) -> dict[str, Tuned]:
    tuned: dict[str, Tuned] = {}
    for candidate in candidates:
        base = tuned[candidate.extends].best.params if candidate.extends else {}
        trials = []
        for setting in candidate.grid:
            params = {**base, **setting}
            fitted = candidate.fit(training, params, seed)
            quality = evaluate(fitted.model.scores, holdout, training.history.matrix, k)
            trials.append(Trial(params, quality.recall_at_k, quality.ndcg_at_k))
        tuned[candidate.name] = Tuned(candidate.name, trials)
        best = tuned[candidate.name].best
        log.info(
            "validation: %s best of %d settings %s: recall@%d %.4f, NDCG@%d %.4f",
            candidate.name, len(trials), best.params, k, best.recall, k, best.ndcg,
        )
    return tuned


def chosen_for_serving(candidates: list[Candidate], tuned: dict[str, Tuned]) -> Candidate:
    """The servable candidate with the best validation NDCG@k (recall@k breaks ties)."""
    servable = [candidate for candidate in candidates if candidate.servable]
    return max(servable, key=lambda c: (tuned[c.name].best.ndcg, tuned[c.name].best.recall))
