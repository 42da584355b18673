"""The served model's own arrays in ``recommender.npz``, by shape (see ``ServingArtifacts``)."""

from __future__ import annotations

import numpy as np

from pipeline.recommender.bpr import FactorModel
from pipeline.recommender.item_item import ItemItemModel
from pipeline.recommender.pruning import ItemNeighbours
from pipeline.recommender.quantize import quantize_rows
from pipeline.recommender.serving_kernels import scoring_module


def item_item_arrays(model: ItemItemModel, prune_top_n: int) -> dict[str, np.ndarray]:
    neighbours = ItemNeighbours.from_matrix(model.weights, prune_top_n)
    quantized = neighbours.quantized()
    return {
        "neighbour_columns": neighbours.columns,
        "neighbour_weights_int8": quantized.values,
        "neighbour_scales": quantized.scales,
        "item_prior": model.prior.astype(np.float32),
        "history_weights": model.history_weights.astype(np.float32),
    }


def factor_arrays(model: FactorModel) -> dict[str, np.ndarray]:
    quantized = quantize_rows(model.item_vectors)
    return {
        "item_vectors_fp32": model.item_vectors.astype(np.float32),
        "item_vectors_int8": quantized.values,
        "item_scales": quantized.scales,
        "item_bias": model.item_bias.astype(np.float32),
        "user_vectors": model.user_vectors.astype(np.float32),
    }


def scorer_arrays(model: ItemItemModel | FactorModel, prune_top_n: int | None) -> tuple[str, dict[str, np.ndarray]]:
    """(scorer_kind, arrays) of a model to serve."""
    kernels = scoring_module()
    if isinstance(model, ItemItemModel):
        if prune_top_n is None:
            raise ValueError("an item-item model is served pruned")
        return kernels.ITEM_ITEM, item_item_arrays(model, prune_top_n)
    return kernels.FACTORS, factor_arrays(model)
