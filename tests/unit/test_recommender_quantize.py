"""int8 quantization error bounds and the serving kernels (the same code model.py runs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.recommender.quantize import memory_report, quantize_rows
from pipeline.recommender.serving_kernels import scoring_module

kernels = scoring_module()


@pytest.fixture(scope="module")
def table() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.normal(size=(500, 64)) * rng.uniform(0.01, 3.0, size=(500, 1))).astype(np.float32)


def test_round_trip_error_is_at_most_half_a_step_per_element(table: np.ndarray) -> None:
    quantized = quantize_rows(table)
    error = np.abs(quantized.dequantize() - table)
    assert quantized.values.dtype == np.int8 and quantized.scales.shape == (500,)
    assert np.all(error <= quantized.scales[:, None] / 2 + 1e-6)
    assert np.all(np.abs(quantized.values).max(axis=1) == 127)  # every row uses its full range


def test_zero_row_is_exact() -> None:
    quantized = quantize_rows(np.zeros((2, 4), dtype=np.float32))
    assert quantized.dequantize().tolist() == np.zeros((2, 4)).tolist()


def test_memory_report_counts_values_and_scales(table: np.ndarray) -> None:
    report = memory_report(table, quantize_rows(table))
    assert report["item_table_fp32_bytes"] == 500 * 64 * 4
    assert report["item_table_int8_with_scales_bytes"] == 500 * 64 + 500 * 4
    assert report["compression_ratio"] == pytest.approx(500 * 64 * 4 / (500 * 64 + 500 * 4), rel=1e-3)


@pytest.mark.parametrize("kernel", ["int8-dequantize", "int8-gemm"])
def test_int8_kernels_score_close_to_fp32(table: np.ndarray, kernel: str) -> None:
    rng = np.random.default_rng(1)
    users = torch.from_numpy(rng.normal(size=(16, 64)).astype(np.float32))
    bias = torch.from_numpy(rng.normal(size=500).astype(np.float32))
    quantized = quantize_rows(table)
    fp32 = kernels.FloatItemTable.build(torch.from_numpy(table), bias, torch.float32, "cpu")
    int8 = kernels.int8_item_table(torch.from_numpy(quantized.values), torch.from_numpy(quantized.scales), bias, kernel)
    exact = fp32.scores(fp32.prepare_users(users))
    approx = int8.scores(int8.prepare_users(users))
    relative = (approx - exact).abs().max() / exact.abs().max()
    assert relative < 0.02


def test_int8_gemm_scores_do_not_depend_on_the_rest_of_the_batch(table: np.ndarray) -> None:
    assert kernels.Int8GemmItemTable.available(), "the locked torch build has FBGEMM (its int8 GEMM): this one does not"
    quantized = quantize_rows(table)
    int8 = kernels.Int8GemmItemTable.build(
        torch.from_numpy(quantized.values), torch.from_numpy(quantized.scales), torch.zeros(500)
    )
    raw = np.random.default_rng(2).normal(size=(8, 64)).astype(np.float32)
    raw[4:] *= 50  # neighbours with a far larger range than the first four users
    users = int8.prepare_users(torch.from_numpy(raw))
    alone = torch.cat([int8.scores(users[i : i + 1]) for i in range(4)])
    with_big_neighbours = int8.scores(users)[:4]
    assert torch.equal(alone, with_big_neighbours)


def test_top_k_drops_excluded_items_and_returns_what_is_left() -> None:
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.7], [0.4, 0.3, 0.2, 0.1]])
    rows, cols = kernels.exclusion_coordinates([np.array([1]), np.array([0, 1, 2])])
    (items_a, scores_a), (items_b, scores_b) = kernels.top_k_excluding(scores, rows, cols, [2, 10])
    assert items_a.tolist() == [3, 2]
    assert scores_a.tolist() == pytest.approx([0.7, 0.5])
    assert items_b.tolist() == [3]  # k=10, one candidate left


def test_top_k_with_nothing_excluded() -> None:
    rows, cols = kernels.exclusion_coordinates([np.empty(0, dtype=np.int64)])
    [(items, _)] = kernels.top_k_excluding(torch.tensor([[1.0, 3.0, 2.0]]), rows, cols, [2])
    assert items.tolist() == [1, 2]
