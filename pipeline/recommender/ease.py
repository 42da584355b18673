"""EASE (Steck, 2019): a closed-form item-item linear model for implicit feedback.

For the purchase matrix X (users x items), EASE finds the item-item matrix B with a zero diagonal
that minimises ||X - XB||^2 + lambda ||B||^2, i.e. each item's column is a ridge regression of
that item's purchases on every *other* item's. With G = X^T X + lambda I and P = G^-1 the solution
is B_ij = -P_ij / P_jj (i != j), B_jj = 0. A user's scores are their history times B:
score_j = sum over bought items i of B_ij, so row i of B is what buying item i contributes.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def gram_matrix(purchases: sp.csr_matrix) -> np.ndarray:
    """X^T X as a dense float64 matrix: co-purchase counts, item purchase counts on the diagonal."""
    return (purchases.T @ purchases).toarray().astype(np.float64)


def fit_ease(gram: np.ndarray, l2: float) -> np.ndarray:
    """B (float32, items x items, zero diagonal) from the Gram matrix X^T X and lambda = ``l2`` > 0."""
    if l2 <= 0:
        raise ValueError("EASE needs a positive L2 penalty")
    regularised = gram.copy()
    regularised[np.diag_indices_from(regularised)] += l2
    precision = np.linalg.inv(regularised)
    weights = precision / -np.diag(precision)  # column j divided by -P_jj
    weights[np.diag_indices_from(weights)] = 0.0
    return weights.astype(np.float32)
