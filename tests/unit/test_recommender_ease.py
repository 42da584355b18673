"""EASE's closed form against values worked out by hand, and against its definition (a ridge regression per item)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from pipeline.recommender.ease import fit_ease, gram_matrix


def test_two_items_by_hand() -> None:
    """Users: {a, b} and {a}. X = [[1, 1], [1, 0]], so G = X^T X = [[2, 1], [1, 1]].

    With two items each column of B is a one-variable ridge regression of one item's purchase
    column on the other's: B[i, j] = G_ij / (G_ii + lambda). With lambda = 1:
    B[a, b] = 1 / (2 + 1) = 1/3 (a was bought twice, once with b) and
    B[b, a] = 1 / (1 + 1) = 1/2 (b was bought once, always with a); the diagonal is 0.
    The closed form agrees: G + I = [[3, 1], [1, 2]], P = (1/5) [[2, -1], [-1, 3]],
    B[a, b] = -P_ab / P_bb = (1/5) / (3/5) = 1/3 and B[b, a] = -P_ba / P_aa = (1/5) / (2/5) = 1/2.
    """
    purchases = sp.csr_matrix(np.array([[1, 1], [1, 0]], dtype=np.float32))
    gram = gram_matrix(purchases)
    assert gram.tolist() == [[2.0, 1.0], [1.0, 1.0]]
    weights = fit_ease(gram, l2=1.0)
    assert weights == pytest.approx(np.array([[0.0, 1 / 3], [1 / 2, 0.0]]))
    # The user who bought only a scores b at 1/3: the evidence of one co-purchase in two of a's sales.
    assert np.asarray(purchases[1] @ weights).ravel() == pytest.approx([0.0, 1 / 3])


def test_each_column_is_a_ridge_regression_on_the_other_items() -> None:
    rng = np.random.default_rng(3)
    x = (rng.random((30, 5)) < 0.4).astype(np.float64)
    l2 = 2.5
    weights = fit_ease(gram_matrix(sp.csr_matrix(x)), l2)
    for j in range(5):
        others = [i for i in range(5) if i != j]
        a = x[:, others]
        expected = np.linalg.solve(a.T @ a + l2 * np.eye(4), a.T @ x[:, j])
        assert weights[others, j] == pytest.approx(expected, rel=1e-4, abs=1e-6)
        assert weights[j, j] == 0.0


def test_a_non_positive_penalty_is_refused() -> None:
    with pytest.raises(ValueError):
        fit_ease(np.eye(2), 0.0)
