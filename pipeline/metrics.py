"""Ranking metrics with binary relevance, on one user's ranked list.

- ``recall_at_k`` = |top-k ∩ relevant| / |relevant| (the whole held-out basket is the denominator,
  so a user with 30 new items can reach at most 10/30).
- ``ndcg_at_k`` = DCG@k / ideal DCG@k, gains 1/log2(rank + 1) with ranks from 1; the ideal list
  puts min(k, |relevant|) relevant items first.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np


def recall_at_k(ranked: Sequence[int], relevant: Collection[int], k: int) -> float:
    if not relevant:
        raise ValueError("recall is undefined for a user without relevant items")
    hits = sum(1 for item in ranked[:k] if item in relevant)
    return hits / len(relevant)


def dcg_at_k(ranked: Sequence[int], relevant: Collection[int], k: int) -> float:
    return float(sum(1.0 / np.log2(rank + 2) for rank, item in enumerate(ranked[:k]) if item in relevant))


def ndcg_at_k(ranked: Sequence[int], relevant: Collection[int], k: int) -> float:
    if not relevant:
        raise ValueError("NDCG is undefined for a user without relevant items")
    ideal = float(sum(1.0 / np.log2(rank + 2) for rank in range(min(k, len(relevant)))))
    return dcg_at_k(ranked, relevant, k) / ideal


def overlap_at_k(a: Sequence[int], b: Sequence[int], k: int) -> float:
    """Share of the top-k of ``a`` that is also in the top-k of ``b``."""
    top_a, top_b = set(a[:k]), set(b[:k])
    return len(top_a & top_b) / max(1, min(k, len(top_a)))
