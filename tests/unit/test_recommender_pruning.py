"""Top-N pruning of an item-item matrix, and the served item-item kernel (the code model.py runs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.recommender.encoding import Vocabulary
from pipeline.recommender.history import PurchaseHistory
from pipeline.recommender.item_item import ItemItemModel, trend_prior
from pipeline.recommender.pruning import ItemNeighbours, keep_top_n_per_row
from pipeline.recommender.serving_forms import item_item_scorer, score_fn
from pipeline.recommender.serving_kernels import scoring_module

kernels = scoring_module()

MATRIX = np.array(
    [
        [0.0, 0.5, -0.9, 0.1],
        [0.2, 0.0, 0.3, -0.25],
        [-0.05, 0.4, 0.0, 0.6],
        [0.7, -0.8, 0.1, 0.0],
    ],
    dtype=np.float32,
)


def test_pruning_keeps_each_rows_largest_magnitudes_negative_ones_included() -> None:
    pruned = keep_top_n_per_row(MATRIX, 2)
    expected = [[0.0, 0.5, -0.9, 0.0], [0.0, 0.0, 0.3, -0.25], [0.0, 0.4, 0.0, 0.6], [0.7, -0.8, 0.0, 0.0]]
    assert pruned == pytest.approx(np.array(expected))
    assert (np.count_nonzero(pruned, axis=1) == 2).all()


def test_neighbours_hold_the_same_links_strongest_first_and_narrow_to_smaller_n() -> None:
    neighbours = ItemNeighbours.from_matrix(MATRIX, 3)
    assert neighbours.columns.dtype == np.int16
    assert neighbours.columns[0].tolist() == [2, 1, 3]  # |-0.9| > 0.5 > 0.1
    assert neighbours.to_dense(4) == pytest.approx(keep_top_n_per_row(MATRIX, 3))
    assert neighbours.narrowed(2).to_dense(4) == pytest.approx(keep_top_n_per_row(MATRIX, 2))
    assert neighbours.narrowed(1).weights[:, 0].tolist() == pytest.approx([-0.9, 0.3, 0.6, -0.8])


def test_int8_weights_take_a_quarter_of_the_bytes_with_one_scale_per_item() -> None:
    neighbours = ItemNeighbours.from_matrix(np.random.default_rng(0).normal(size=(100, 100)).astype(np.float32), 40)
    quantized = neighbours.quantized()
    assert quantized.values.dtype == np.int8 and quantized.scales.shape == (100,)
    assert neighbours.nbytes_int8() == neighbours.columns.nbytes + quantized.values.nbytes + quantized.scales.nbytes
    assert quantized.values.nbytes * 4 == neighbours.weights.nbytes


def small_model(recency_days: float = 0.0, trend_weight: float = 0.0) -> ItemItemModel:
    lines = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2", "u3", "u3", "u3"],
            "item_id": ["a", "c", "b", "a", "b", "d"],
            "timestamp": pd.to_datetime(
                ["2011-11-01", "2011-11-09", "2011-10-01", "2011-11-10", "2011-11-05", "2011-11-10"]
            ),
        }
    )
    history = PurchaseHistory.from_lines(
        lines, Vocabulary.from_values(lines["user_id"]), Vocabulary.from_values(["a", "b", "c", "d"]),
        pd.Timestamp("2011-11-11"),
    )
    prior = trend_prior(np.array([0.0, 2.0, 1.0, 0.0], dtype=np.float32), trend_weight)
    return ItemItemModel.fit(MATRIX, history, recency_days, prior)


def test_history_ages_and_recency_weights() -> None:
    history = small_model().history
    model = small_model(recency_days=10.0)
    # u1 bought a 10 days and c 2 days before the reference time.
    assert model.history_weights[:2] == pytest.approx(np.exp([-1.0, -0.2]))
    assert (small_model().history_weights == 1).all() and history.shape == (3, 4)


@pytest.mark.parametrize(("recency_days", "trend_weight"), [(0.0, 0.0), (10.0, 0.5)])
def test_the_served_kernel_computes_the_evaluated_formula(recency_days: float, trend_weight: float) -> None:
    model = small_model(recency_days, trend_weight)
    users = np.arange(3)
    expected = model.scores(users)
    full = ItemNeighbours.from_matrix(MATRIX, 4)
    assert score_fn(item_item_scorer(model, full, int8=False))(users) == pytest.approx(expected, abs=1e-6)
    assert score_fn(item_item_scorer(model, full, int8=True))(users) == pytest.approx(expected, abs=0.02)
    pruned = model.with_weights(keep_top_n_per_row(MATRIX, 2)).scores(users)
    assert score_fn(item_item_scorer(model, full.narrowed(2), int8=False))(users) == pytest.approx(pruned, abs=1e-6)


def test_scores_are_max_normalised_before_the_prior_is_added() -> None:
    model = small_model(trend_weight=0.5)
    scores = model.scores(np.array([1]))  # u2 bought b only: row b of the matrix
    row = MATRIX[1] / np.abs(MATRIX[1]).max()
    assert scores[0] == pytest.approx(row + np.array([0.0, 0.5, 0.25, 0.0]))


def test_recent_items_count_as_purchases_made_just_now() -> None:
    model = small_model(recency_days=10.0)
    scorer = item_item_scorer(model, ItemNeighbours.from_matrix(MATRIX, 4), int8=False)
    with_recent = scorer.scores([1, -1], [np.array([3]), np.array([0, 2])]).numpy()
    # u2's history (b, 41 days old) plus d at weight 1; an unknown user with a and c at weight 1.
    u2 = np.exp(-41 / 10) * MATRIX[1] + MATRIX[3]
    stranger = MATRIX[0] + MATRIX[2]
    assert with_recent[0] == pytest.approx(u2 / np.abs(u2).max(), abs=1e-5)
    assert with_recent[1] == pytest.approx(stranger / np.abs(stranger).max(), abs=1e-6)
    assert scorer.personalizes(-1, np.array([0])) and not scorer.personalizes(-1, np.empty(0, dtype=np.int64))


def test_user_scorer_reads_both_shapes_from_the_artifact_arrays() -> None:
    model = small_model()
    neighbours = ItemNeighbours.from_matrix(MATRIX, 2)
    quantized = neighbours.quantized()
    arrays = {
        "scorer_kind": np.asarray(kernels.ITEM_ITEM),
        "neighbour_columns": neighbours.columns,
        "neighbour_weights_int8": quantized.values,
        "neighbour_scales": quantized.scales,
        "item_prior": model.prior,
        "history_weights": model.history_weights,
        "seen_indptr": model.history.indptr.astype(np.int64),
        "seen_indices": model.history.indices.astype(np.int32),
    }
    scorer = kernels.user_scorer(arrays, torch.device("cpu"), "int8-dequantize")
    assert scorer.kernel == "item-item-int8"
    assert kernels.scorer_kind({}) == kernels.FACTORS  # artifacts of builds before the item-item shape
