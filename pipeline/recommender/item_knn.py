"""Item-kNN: cosine similarity between items' buyer sets, each item keeping its nearest neighbours.

sim(i, j) = |buyers(i) & buyers(j)| / sqrt(|buyers(i)| |buyers(j)|), zero diagonal; a user's score
for item j is the sum of sim(i, j) over the items i they bought (the same history x item-item
shape as EASE).
"""

from __future__ import annotations

import numpy as np

from pipeline.recommender.pruning import keep_top_n_per_row


def cosine_similarity(gram: np.ndarray, neighbours: int) -> np.ndarray:
    """float32 items x items from X^T X; ``neighbours`` > 0 keeps that many most similar items per row."""
    norms = np.sqrt(np.diag(gram))
    norms[norms == 0] = 1.0
    similarity = (gram / norms[:, None] / norms[None, :]).astype(np.float32)
    np.fill_diagonal(similarity, 0.0)
    if 0 < neighbours < similarity.shape[1]:
        similarity = keep_top_n_per_row(similarity, neighbours)
    return similarity
