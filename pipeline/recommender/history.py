"""Purchase histories with their age: what the candidates are fitted on and what an item-item model scores from.

A history is the distinct (user, item) pairs of a set of purchase lines, as a
:class:`UserItemMatrix`, plus, for every pair, the age in days of its latest purchase at the
history's reference time (the split's cutoff; for the served model, the end of the data).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pipeline.recommender.encoding import UserItemMatrix, Vocabulary

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class PurchaseHistory:
    matrix: UserItemMatrix
    age_days: np.ndarray  # float32, aligned with matrix.indices: days since the pair's latest purchase

    @classmethod
    def from_lines(
        cls, lines: pd.DataFrame, users: Vocabulary, items: Vocabulary, reference_time: pd.Timestamp
    ) -> "PurchaseHistory":
        """``lines``: purchase lines (``user_id``, ``item_id``, ``timestamp``), all before ``reference_time``."""
        user_index, item_index = users.lookup(lines["user_id"]), items.lookup(lines["item_id"])
        matrix = UserItemMatrix.from_pairs(user_index, item_index, len(users), len(items))
        latest = (
            pd.DataFrame({"key": user_index * len(items) + item_index, "timestamp": lines["timestamp"].to_numpy()})
            .groupby("key")["timestamp"]
            .max()
        )  # sorted by key, which is the CSR order of matrix
        age = (reference_time - latest).dt.total_seconds().to_numpy() / SECONDS_PER_DAY
        if np.any(age < 0):
            raise ValueError("a purchase lies after the history's reference time")
        return cls(matrix=matrix, age_days=age.astype(np.float32))

    @property
    def n_items(self) -> int:
        return self.matrix.n_items

    def recency_weights(self, e_folding_days: float) -> np.ndarray:
        """exp(-age / e_folding_days) per pair: 1 for a purchase made at the reference time; all 1 when 0."""
        if e_folding_days <= 0:
            return np.ones_like(self.age_days)
        return np.exp(-self.age_days / np.float32(e_folding_days)).astype(np.float32)

    def csr(self, weights: np.ndarray | None = None) -> sp.csr_matrix:
        """Users x items, float32: 1 per purchased pair, or ``weights`` (aligned with the pairs)."""
        data = np.ones(self.matrix.nnz, dtype=np.float32) if weights is None else weights.astype(np.float32)
        return sp.csr_matrix(
            (data, self.matrix.indices, self.matrix.indptr), shape=(self.matrix.n_users, self.n_items)
        )

    def buyers_within(self, days: float) -> np.ndarray:
        """How many distinct users bought each item within the last ``days`` days."""
        recent = self.age_days < days
        return np.bincount(self.matrix.indices[recent], minlength=self.n_items)
