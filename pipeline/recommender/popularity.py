"""Non-personalised rankings: all-time popularity (the baseline and the unknown-user fallback) and trending items."""

from __future__ import annotations

import numpy as np

from pipeline.recommender.encoding import UserItemMatrix
from pipeline.recommender.history import PurchaseHistory


def popularity_scores(train: UserItemMatrix) -> np.ndarray:
    """Share of training users who bought each item."""
    active_users = int((np.diff(train.indptr) > 0).sum())
    return (train.item_user_counts() / max(1, active_users)).astype(np.float32)


def trending_scores(history: PurchaseHistory, days: float) -> np.ndarray:
    """Share of the history's users who bought each item within its last ``days`` days."""
    active_users = int((np.diff(history.matrix.indptr) > 0).sum())
    return (history.buyers_within(days) / max(1, active_users)).astype(np.float32)
