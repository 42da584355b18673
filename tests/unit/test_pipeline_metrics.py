"""Ranking metrics on hand-made cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.metrics import ndcg_at_k, overlap_at_k, recall_at_k
from pipeline.recommender.encoding import UserItemMatrix
from pipeline.recommender.evaluate import HoldOut, evaluate, rank_excluding
from pipeline.recommender.popularity import popularity_scores


def test_recall_counts_hits_over_all_relevant_items() -> None:
    assert recall_at_k([1, 2, 3], {2, 9}, k=3) == 0.5
    assert recall_at_k([1, 2, 3], {3}, k=2) == 0.0  # the hit is below the cut-off
    assert recall_at_k([4, 5], {4, 5}, k=10) == 1.0


def test_ndcg_known_values() -> None:
    assert ndcg_at_k([7, 1, 2], {7}, k=3) == pytest.approx(1.0)
    assert ndcg_at_k([1, 7, 2], {7}, k=3) == pytest.approx(1 / math.log2(3))
    # two relevant items at ranks 1 and 3; ideal puts them at ranks 1 and 2
    expected = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k([5, 1, 6], {5, 6}, k=3) == pytest.approx(expected)
    # more relevant items than k: the ideal DCG has only k terms
    assert ndcg_at_k([1, 2], {1, 2, 3, 4}, k=2) == pytest.approx(1.0)


def test_metrics_refuse_users_without_relevant_items() -> None:
    with pytest.raises(ValueError):
        recall_at_k([1], set(), k=1)
    with pytest.raises(ValueError):
        ndcg_at_k([1], set(), k=1)


def test_overlap_at_k() -> None:
    assert overlap_at_k([1, 2, 3, 4], [4, 3, 9, 8], k=4) == 0.5


def test_ranking_excludes_seen_items_and_breaks_ties_by_index() -> None:
    seen = UserItemMatrix.from_pairs(np.array([0, 0]), np.array([1, 3]), n_users=1, n_items=5)
    scores = np.array([[0.5, 9.0, 0.5, 8.0, 0.1]])
    assert rank_excluding(scores, np.array([0]), seen, k=3).tolist() == [[0, 2, 4]]


def test_evaluate_on_a_tiny_holdout() -> None:
    train = UserItemMatrix.from_pairs(np.array([0, 1, 1]), np.array([0, 0, 1]), n_users=2, n_items=4)
    holdout = HoldOut(users=np.array([0, 1]), relevant=[frozenset({1}), frozenset({3})])
    scores = np.array([[5.0, 4.0, 3.0, 2.0], [5.0, 4.0, 3.0, 2.0]])
    quality = evaluate(lambda users: scores[users], holdout, train, k=1)
    # user 0: item 0 seen -> top-1 is item 1, a hit; user 1: items 0, 1 seen -> top-1 is item 2, a miss
    assert quality.recall_at_k == pytest.approx(0.5)
    assert quality.ndcg_at_k == pytest.approx(0.5)
    assert quality.top_k.tolist() == [[1], [2]]


def test_popularity_is_the_share_of_active_users_who_bought_the_item() -> None:
    train = UserItemMatrix.from_pairs(np.array([0, 1, 1]), np.array([0, 0, 2]), n_users=3, n_items=3)
    assert popularity_scores(train).tolist() == [1.0, 0.0, 0.5]
