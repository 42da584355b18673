"""The rankers compared by the build, each with its hyper-parameter grid and one ``fit``.

Every candidate is fitted on a :class:`TrainingSet` (a split's training purchases) and returns a
model with ``scores(users) -> [B, n_items]``, so that one evaluation code scores them all. The
grids come from :class:`RecommenderPipelineSettings`; ``extends`` names a candidate whose chosen
setting this one starts from (the EASE blend tunes its blend on top of the tuned EASE lambda).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from pipeline.recommender.als import train_als
from pipeline.recommender.bpr import FactorModel, train_bpr
from pipeline.recommender.config import RecommenderPipelineSettings
from pipeline.recommender.ease import fit_ease, gram_matrix
from pipeline.recommender.history import PurchaseHistory
from pipeline.recommender.item_item import ItemItemModel, trend_prior
from pipeline.recommender.item_knn import cosine_similarity
from pipeline.recommender.popularity import popularity_scores, trending_scores

Params = dict[str, float]

POPULARITY, ITEM_KNN, ALS, EASE, EASE_BLEND, BPR, BPR_REFERENCE = (
    "popularity", "item_knn", "als", "ease", "ease_blend", "bpr", "bpr_reference",
)


@dataclass(frozen=True)
class PopularityModel:
    popularity: np.ndarray  # float32 [n_items]

    def scores(self, users: np.ndarray) -> np.ndarray:
        return np.tile(self.popularity, (len(users), 1))


Model = PopularityModel | FactorModel | ItemItemModel


@dataclass(frozen=True)
class Fitted:
    model: Model
    seconds: float  # wall-clock fit time, shared pre-computations (the Gram matrix) included


@dataclass
class TrainingSet:
    """A split's training purchases, and what several candidates derive from them (computed once)."""

    history: PurchaseHistory
    threads: int
    _seconds: dict[str, float] = field(default_factory=dict)
    _ease: dict[float, np.ndarray] = field(default_factory=dict)
    _fits: dict[tuple, Fitted] = field(default_factory=dict)

    @cached_property
    def purchases(self) -> sp.csr_matrix:
        return self.history.csr()

    @cached_property
    def gram(self) -> np.ndarray:
        started = time.perf_counter()
        gram = gram_matrix(self.purchases)
        self._seconds["gram"] = time.perf_counter() - started
        return gram

    @property
    def gram_seconds(self) -> float:
        _ = self.gram
        return self._seconds["gram"]

    def ease(self, l2: float) -> tuple[np.ndarray, float]:
        """EASE weights for ``l2`` (computed once per value) and their fit seconds."""
        if l2 not in self._ease:
            started = time.perf_counter()
            self._ease[l2] = fit_ease(self.gram, l2)
            self._seconds[f"ease:{l2}"] = time.perf_counter() - started
        return self._ease[l2], self.gram_seconds + self._seconds[f"ease:{l2}"]

    def cached_fit(self, key: tuple, fit: Callable[[], Fitted]) -> Fitted:
        """Randomised fits are the slow ones; the same (candidate kind, setting, seed) is fitted once."""
        if key not in self._fits:
            self._fits[key] = fit()
        return self._fits[key]


FitFn = Callable[[TrainingSet, Params, int], Fitted]


@dataclass(frozen=True)
class Candidate:
    name: str
    label: str  # short, for the table
    grid: tuple[Params, ...]
    fit: FitFn
    randomised: bool = False
    servable: bool = True  # popularity is the unknown-user fallback, not a personalised model
    extends: str | None = None


def grid(**axes: tuple[float, ...]) -> tuple[Params, ...]:
    """Every combination of the axes' values, in order."""
    names = list(axes)
    return tuple(dict(zip(names, values)) for values in itertools.product(*(axes[name] for name in names)))


def candidates(config: RecommenderPipelineSettings) -> list[Candidate]:
    """Tuning order matters only for ``extends``: a candidate comes after the one it extends."""

    def popularity(training: TrainingSet, params: Params, seed: int) -> Fitted:
        started = time.perf_counter()
        model = PopularityModel(popularity_scores(training.history.matrix))
        return Fitted(model, time.perf_counter() - started)

    def item_knn(training: TrainingSet, params: Params, seed: int) -> Fitted:
        started = time.perf_counter()
        similarity = cosine_similarity(training.gram, int(params["neighbours"]))
        model = ItemItemModel.fit(similarity, training.history, recency_days=0.0)
        return Fitted(model, training.gram_seconds + time.perf_counter() - started)

    def ease(training: TrainingSet, params: Params, seed: int) -> Fitted:
        weights, seconds = training.ease(params["l2"])
        return Fitted(ItemItemModel.fit(weights, training.history, recency_days=0.0), seconds)

    def ease_blend(training: TrainingSet, params: Params, seed: int) -> Fitted:
        weights, seconds = training.ease(params["l2"])
        started = time.perf_counter()
        prior = trend_prior(trending_scores(training.history, params["trend_days"]), params["trend_weight"])
        model = ItemItemModel.fit(weights, training.history, params["recency_days"], prior)
        return Fitted(model, seconds + time.perf_counter() - started)

    def als(training: TrainingSet, params: Params, seed: int) -> Fitted:
        def fit() -> Fitted:
            model, seconds = train_als(
                training.purchases,
                factors=int(params["factors"]),
                regularization=params["regularization"],
                alpha=params["alpha"],
                iterations=config.als_iterations,
                seed=seed,
                threads=training.threads,
            )
            return Fitted(model, seconds)

        return training.cached_fit((ALS, tuple(sorted(params.items())), seed), fit)

    def bpr(training: TrainingSet, params: Params, seed: int) -> Fitted:
        def fit() -> Fitted:
            settings = config.model_copy(update={"epochs": int(params["epochs"]), "l2_reg": params["l2"], "seed": seed})
            model, report = train_bpr(training.history.matrix, settings, label=f"bpr {params} seed {seed}")
            return Fitted(model, report.seconds)

        return training.cached_fit((BPR, tuple(sorted(params.items())), seed), fit)

    return [
        Candidate(POPULARITY, "popularity", ({},), popularity, servable=False),
        Candidate(ITEM_KNN, "item-kNN", grid(neighbours=config.knn_neighbours_grid), item_knn),
        Candidate(
            ALS,
            "ALS",
            grid(
                factors=config.als_factors_grid,
                regularization=config.als_regularization_grid,
                alpha=config.als_alpha_grid,
            ),
            als,
            randomised=True,
        ),
        Candidate(EASE, "EASE", grid(l2=config.ease_l2_grid), ease),
        Candidate(
            EASE_BLEND,
            "EASE+blend",
            grid(
                recency_days=config.blend_recency_days_grid,
                trend_days=config.blend_trend_days_grid,
                trend_weight=config.blend_trend_weight_grid,
            ),
            ease_blend,
            extends=EASE,
        ),
        Candidate(BPR, "BPR", grid(epochs=config.bpr_epochs_grid, l2=config.bpr_l2_grid), bpr, randomised=True),
        Candidate(
            BPR_REFERENCE,
            "BPR (today)",
            ({"epochs": config.epochs, "l2": config.l2_reg},),
            bpr,
            randomised=True,
        ),
    ]
