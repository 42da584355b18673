"""In-process compute per request of each candidate, with the serving kernels of recommender_scoring.py.

One timed call is what ``execute()`` computes for a single request of a known user: score the
catalogue, drop the user's purchases, take the top-k (popularity: copy the fallback scores
instead of scoring). Triton's IPC and (de)serialisation are not in it; the served model is also
measured through Triton (COMPUTE_NS), see deploy/local/recommender_compute.py. Single thread,
as a CPU model instance runs; the median over ``bench_repeats`` users drawn at random.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from pipeline.recommender.config import RecommenderPipelineSettings
from pipeline.recommender.encoding import UserItemMatrix
from pipeline.recommender.serving_kernels import scoring_module

NO_ITEMS = np.empty(0, dtype=np.int64)


def request_call(scorer, popularity: np.ndarray, seen: UserItemMatrix, k: int) -> Callable[[int], object]:
    """One single-user request; ``scorer`` None means the popularity fallback."""
    kernels = scoring_module()
    fallback = torch.from_numpy(popularity)

    def call(user: int) -> object:
        scores = scorer.scores([user], [NO_ITEMS]) if scorer is not None else fallback.expand(1, -1).clone()
        rows, cols = kernels.exclusion_coordinates([seen.row(user).astype(np.int64)])
        return kernels.top_k_excluding(scores, rows, cols, [k])

    return call


def median_request_us(
    call: Callable[[int], object], users: np.ndarray, config: RecommenderPipelineSettings
) -> dict[str, float]:
    previous = torch.get_num_threads()
    torch.set_num_threads(config.serving_threads)
    try:
        for user in users[: config.bench_warmup]:
            call(int(user))
        timings = []
        for user in users:
            started = time.perf_counter_ns()
            call(int(user))
            timings.append(time.perf_counter_ns() - started)
    finally:
        torch.set_num_threads(previous)
    return {
        "median_us": round(float(np.median(timings)) / 1e3, 1),
        "p90_us": round(float(np.percentile(timings, 90)) / 1e3, 1),
    }


def probe_users(seen: UserItemMatrix, config: RecommenderPipelineSettings) -> np.ndarray:
    """``bench_repeats`` users with at least one purchase, drawn with the build's seed."""
    buyers = np.flatnonzero(np.diff(seen.indptr) > 0)
    return np.random.default_rng(config.seed).choice(buyers, size=config.bench_repeats, replace=True)
