"""Exact top-k by inner product over the product index, shared by ``model.py`` and the search build.

The index rows and the queries are L2-normalised, so the inner product is the cosine. One
matmul scores the whole batch; ``argpartition`` keeps the k best of each row and only those
are sorted (descending score, ties by ascending row). ``k`` larger than the catalogue returns
the whole catalogue, ranked.
"""

from __future__ import annotations

import numpy as np


def top_k_inner_product(queries: np.ndarray, index: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers int64 ``[B, min(k, N)]`` and their scores float32, best first, for queries ``[B, d]``."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    n_items = index.shape[0]
    k = min(k, n_items)
    scores = np.asarray(queries, dtype=np.float32) @ index.T
    if k < n_items:
        candidates = np.sort(np.argpartition(-scores, k - 1, axis=1)[:, :k], axis=1)
    else:
        candidates = np.broadcast_to(np.arange(n_items), scores.shape)
    candidate_scores = np.take_along_axis(scores, candidates, axis=1)
    order = np.argsort(-candidate_scores, axis=1, kind="stable")
    rows = np.take_along_axis(candidates, order, axis=1).astype(np.int64)
    return rows, np.take_along_axis(candidate_scores, order, axis=1)
