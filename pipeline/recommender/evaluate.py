"""Offline evaluation on the time hold-out: recall@k and NDCG@k, training-seen items excluded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipeline.metrics import ndcg_at_k, overlap_at_k, recall_at_k
from pipeline.recommender.encoding import UserItemMatrix

ScoreFn = Callable[[np.ndarray], np.ndarray]  # dense user indices [B] -> scores [B, n_items]


@dataclass(frozen=True)
class HoldOut:
    users: np.ndarray  # dense user indices, one per test user
    relevant: list[frozenset[int]]  # held-out new items of each test user


@dataclass(frozen=True)
class RankingQuality:
    """Means over the hold-out's users, and each user's own figures (for paired comparisons)."""

    user_recall: np.ndarray  # float64 [n_test_users]
    user_ndcg: np.ndarray  # float64 [n_test_users]
    top_k: np.ndarray  # [n_test_users, k] item indices, kept for overlap comparisons

    @property
    def recall_at_k(self) -> float:
        return float(self.user_recall.mean())

    @property
    def ndcg_at_k(self) -> float:
        return float(self.user_ndcg.mean())

    def as_dict(self, k: int) -> dict[str, float]:
        return {f"recall_at_{k}": round(self.recall_at_k, 6), f"ndcg_at_{k}": round(self.ndcg_at_k, 6)}

    @classmethod
    def mean_of(cls, runs: list["RankingQuality"]) -> "RankingQuality":
        """Each user's figures averaged over runs (e.g. seeds); keeps the first run's top-k."""
        return cls(
            user_recall=np.mean([run.user_recall for run in runs], axis=0),
            user_ndcg=np.mean([run.user_ndcg for run in runs], axis=0),
            top_k=runs[0].top_k,
        )


def build_holdout(test: UserItemMatrix) -> HoldOut:
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    return HoldOut(users=users, relevant=[frozenset(test.row(u).tolist()) for u in users])


def rank_excluding(scores: np.ndarray, users: np.ndarray, seen: UserItemMatrix, k: int) -> np.ndarray:
    """Top-k item indices per row after removing each user's seen items; ties by item index."""
    scores = scores.astype(np.float64, copy=True)
    for row, user in enumerate(users):
        scores[row, seen.row(user)] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def evaluate(
    score_fn: ScoreFn, holdout: HoldOut, seen: UserItemMatrix, k: int, batch_size: int = 512
) -> RankingQuality:
    tops = []
    for start in range(0, len(holdout.users), batch_size):
        users = holdout.users[start : start + batch_size]
        tops.append(rank_excluding(score_fn(users), users, seen, k))
    top_k = np.concatenate(tops)
    recall = np.array([recall_at_k(top.tolist(), rel, k) for top, rel in zip(top_k, holdout.relevant)])
    ndcg = np.array([ndcg_at_k(top.tolist(), rel, k) for top, rel in zip(top_k, holdout.relevant)])
    return RankingQuality(user_recall=recall, user_ndcg=ndcg, top_k=top_k)


def mean_overlap(a: RankingQuality, b: RankingQuality, k: int) -> float:
    return float(np.mean([overlap_at_k(x.tolist(), y.tolist(), k) for x, y in zip(a.top_k, b.top_k)]))
