"""Implicit-feedback ALS (Hu, Koren & Volinsky, 2008) with the ``implicit`` library's CPU solver.

score(u, i) = <user_u, item_i>: the same serving shape as BPR (user vector x item table, no bias).
implicit takes the purchase matrix times ``alpha`` as the confidence of each purchase.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from pipeline.recommender.bpr import FactorModel

log = logging.getLogger(__name__)


def train_als(
    purchases: sp.csr_matrix,
    factors: int,
    regularization: float,
    alpha: float,
    iterations: int,
    seed: int,
    threads: int,
) -> tuple[FactorModel, float]:
    """The fitted factors and the fit's wall-clock seconds."""
    started = time.perf_counter()
    with threadpool_limits(1, user_api="blas"):  # implicit parallelises itself; BLAS threads only contend
        model = AlternatingLeastSquares(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            random_state=seed,
            num_threads=threads,
        )
        model.fit(purchases, show_progress=False)
    seconds = time.perf_counter() - started
    items = np.ascontiguousarray(model.item_factors, dtype=np.float32)
    return (
        FactorModel(
            user_vectors=np.ascontiguousarray(model.user_factors, dtype=np.float32),
            item_vectors=items,
            item_bias=np.zeros(len(items), dtype=np.float32),
        ),
        seconds,
    )
