"""Top-k over the product index (the kernel model_repo/product_index serves with) and the quality metrics."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.search.evaluate import encoder_agreement, ranking_quality
from pipeline.search.judged import JudgedQuery
from pipeline.search.serving_sources import index_module

top_k = index_module().top_k_inner_product


def unit_rows(rng: np.random.Generator, n: int, dim: int = 16) -> np.ndarray:
    rows = rng.normal(size=(n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_top_k_equals_a_full_sort():
    rng = np.random.default_rng(0)
    index, queries = unit_rows(rng, 500), unit_rows(rng, 7)
    rows, scores = top_k(queries, index, 10)
    expected = np.argsort(-(queries @ index.T), axis=1, kind="stable")[:, :10]
    assert rows.shape == scores.shape == (7, 10)
    np.testing.assert_array_equal(rows, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ index.T, expected, axis=1), rtol=1e-6)
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_k_beyond_the_catalogue_returns_all_of_it_ranked():
    rng = np.random.default_rng(1)
    index = unit_rows(rng, 5)
    rows, scores = top_k(index[:2], index, 50)
    assert rows.shape == (2, 5)
    assert rows[:, 0].tolist() == [0, 1]  # each row is its own nearest neighbour
    assert sorted(rows[0].tolist()) == list(range(5))


def test_ties_go_to_the_lower_row_and_k_below_one_is_refused():
    index = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    rows, _ = top_k(np.array([[1.0, 0.0]], dtype=np.float32), index, 2)
    assert rows.tolist() == [[0, 2]]
    with pytest.raises(ValueError):
        top_k(index[:1], index, 0)


def test_ranking_quality_on_a_hand_case():
    queries = [JudgedQuery("a", frozenset({"A"}), "A"), JudgedQuery("b", frozenset({"B", "C"}), "B")]
    rankings = np.array([[0, 1], [3, 1]])  # item ids A, B, C, D
    quality = ranking_quality(rankings, queries, ["A", "B", "C", "D"], k=2)
    assert quality["recall_at_2"] == pytest.approx((1 + 0.5) / 2)
    assert quality["hit_rate_at_1"] == pytest.approx(0.5)
    ideal_two = 1 + 1 / np.log2(3)
    assert quality["ndcg_at_2"] == pytest.approx((1 + (1 / np.log2(3)) / ideal_two) / 2, abs=1e-4)


def test_an_encoder_agrees_fully_with_itself():
    rng = np.random.default_rng(2)
    index, queries = unit_rows(rng, 50), unit_rows(rng, 6)
    agreement = encoder_agreement(queries, queries.copy(), index, 5, top_k)
    assert agreement["mean_cosine"] == pytest.approx(1.0, abs=1e-5)
    assert agreement["top5_overlap"] == 1.0
