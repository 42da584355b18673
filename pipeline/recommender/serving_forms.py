"""Evaluation models -> the serving kernels of ``recommender_scoring.py`` (the code model.py runs).

The build scores the served variants (pruned, int8) and times every candidate through these, so
that the figures in eval.json are those of the code Triton runs.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.recommender.bpr import FactorModel
from pipeline.recommender.evaluate import ScoreFn
from pipeline.recommender.item_item import ItemItemModel
from pipeline.recommender.pruning import ItemNeighbours
from pipeline.recommender.quantize import quantize_rows
from pipeline.recommender.serving_kernels import scoring_module

CPU = torch.device("cpu")


def factor_scorer(model: FactorModel, int8_kernel: str | None = None):
    """fp32 item table, or the int8 one scored with ``int8_kernel``."""
    kernels = scoring_module()
    bias = torch.from_numpy(model.item_bias)
    if int8_kernel is None:
        table = kernels.FloatItemTable.build(torch.from_numpy(model.item_vectors), bias, torch.float32, CPU)
    else:
        quantized = quantize_rows(model.item_vectors)
        table = kernels.int8_item_table(
            torch.from_numpy(quantized.values), torch.from_numpy(quantized.scales), bias, int8_kernel
        )
    return kernels.FactorUserScorer(table=table, users=table.prepare_users(torch.from_numpy(model.user_vectors)))


def item_item_scorer(model: ItemItemModel, neighbours: ItemNeighbours, int8: bool):
    """The model's history and prior with ``neighbours`` as the item-item matrix, fp32 or int8."""
    kernels = scoring_module()
    if int8:
        quantized = neighbours.quantized()
        values, scales = torch.from_numpy(quantized.values), torch.from_numpy(quantized.scales)
    else:
        values = torch.from_numpy(neighbours.weights)
        scales = torch.ones(len(neighbours.weights), dtype=torch.float32)
    table = kernels.ItemItemTable.build(
        torch.from_numpy(neighbours.columns), values, scales, torch.from_numpy(model.prior), CPU
    )
    return kernels.HistoryUserScorer(
        table=table,
        history_indptr=model.history.indptr.astype(np.int64),
        history_items=model.history.indices.astype(np.int32),
        history_weights=model.history_weights.astype(np.float32),
    )


def score_fn(scorer) -> ScoreFn:
    """A serving scorer as evaluation calls it: dense user indices -> numpy scores, no recent items."""
    no_items = np.empty(0, dtype=np.int64)

    def scores(users: np.ndarray) -> np.ndarray:
        return scorer.scores(users.tolist(), [no_items] * len(users)).numpy()

    return scores
