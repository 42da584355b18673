"""The item-item model as evaluation scores it: dense weights, scipy history, the serving formula.

score(u) = s_u / max|s_u| + prior with s_u = sum over u's purchases i of w_ui * B_i, where
B is the item-item matrix (EASE or item-kNN), w_ui the purchase's recency weight (1 without
decay) and ``prior`` the trending-items prior (zero for a plain model). The max-normalisation
puts every user's history scores on one scale so that a single prior weight fits all users; it
does not change a plain model's ranking. The served form (pruned, int8) is ``ItemItemTable`` in
recommender_scoring.py, which computes the same formula.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from pipeline.recommender.history import PurchaseHistory


@dataclass(frozen=True)
class ItemItemModel:
    weights: np.ndarray  # float32 [n_items, n_items]
    history: sp.csr_matrix  # users x items, float32 purchase weights
    history_weights: np.ndarray  # float32, aligned with the history's pairs (what serving stores)
    prior: np.ndarray  # float32 [n_items]

    @classmethod
    def fit(
        cls, weights: np.ndarray, history: PurchaseHistory, recency_days: float, prior: np.ndarray | None = None
    ) -> "ItemItemModel":
        pair_weights = history.recency_weights(recency_days)
        return cls(
            weights=weights,
            history=history.csr(pair_weights),
            history_weights=pair_weights,
            prior=np.zeros(history.n_items, dtype=np.float32) if prior is None else prior.astype(np.float32),
        )

    def scores(self, users: np.ndarray) -> np.ndarray:
        summed = np.asarray(self.history[users] @ self.weights, dtype=np.float32)
        peak = np.abs(summed).max(axis=1, keepdims=True)
        return summed / np.where(peak > 0, peak, 1.0) + self.prior

    def with_weights(self, weights: np.ndarray) -> "ItemItemModel":
        return ItemItemModel(weights, self.history, self.history_weights, self.prior)


def trend_prior(trending: np.ndarray, weight: float) -> np.ndarray:
    """``weight`` x trending scores scaled to a maximum of 1 (zeros when nothing trends)."""
    peak = float(trending.max(initial=0.0))
    return (weight * trending / peak if peak > 0 else np.zeros_like(trending)).astype(np.float32)
