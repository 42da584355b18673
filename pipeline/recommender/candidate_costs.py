"""What each candidate costs to serve: the memory its scorer holds and its in-process compute per request."""

from __future__ import annotations

import numpy as np

from pipeline.recommender.bpr import FactorModel
from pipeline.recommender.candidates import Model, PopularityModel
from pipeline.recommender.compute_probe import median_request_us, request_call
from pipeline.recommender.config import RecommenderPipelineSettings
from pipeline.recommender.encoding import UserItemMatrix
from pipeline.recommender.item_item import ItemItemModel
from pipeline.recommender.pruning import ItemNeighbours
from pipeline.recommender.served_variants import dense_item_item_nbytes
from pipeline.recommender.serving_forms import factor_scorer, item_item_scorer


def fp32_scorer(model: Model) -> tuple[object | None, int]:
    """The serving kernel of a candidate as evaluated (fp32, unpruned) and the bytes its state takes.

    Item-item: whichever is smaller, the dense matrix or fixed-width rows of its non-zero links
    (an item-kNN with few neighbours).
    Popularity: no scorer (the fallback path), one float per item.
    """
    if isinstance(model, PopularityModel):
        return None, model.popularity.nbytes
    if isinstance(model, FactorModel):
        scorer = factor_scorer(model)
        return scorer, scorer.nbytes()
    assert isinstance(model, ItemItemModel)
    width = int(np.count_nonzero(model.weights, axis=1).max(initial=1))
    scorer = item_item_scorer(model, ItemNeighbours.from_matrix(model.weights, width), int8=False)
    return scorer, min(scorer.nbytes(), dense_item_item_nbytes(model))


def compute_us(
    scorer: object | None, popularity: np.ndarray, seen: UserItemMatrix, users: np.ndarray,
    config: RecommenderPipelineSettings,
) -> dict[str, float]:
    return median_request_us(request_call(scorer, popularity, seen, config.top_k), users, config)
