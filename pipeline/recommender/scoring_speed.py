"""fp32 vs int8 scoring speed (``speed`` of the recommender eval.json): the exact kernels of model.py,
on the serving model's real vectors.

One timed call = gather the batch's user rows, score them against the whole catalogue, drop
their seen items and take the top-k, which is what ``execute()`` computes for a dynamic batch (Triton's IPC and the
tensor (de)serialisation are not included). fp32 and int8 are timed in alternating blocks of
consecutive calls, so that noise from other processes on the shared cores hits both alike
while each block runs with its own table in cache; the median and p90 of the repeats are
reported. Each block of consecutive calls of one variant starts with untimed warm-up calls.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import torch

from pipeline.recommender.bpr import FactorModel
from pipeline.recommender.config import RecommenderPipelineSettings
from pipeline.recommender.encoding import UserItemMatrix
from pipeline.recommender.quantize import QuantizedTable
from pipeline.recommender.serving_kernels import scoring_module

log = logging.getLogger(__name__)


def _time_in_blocks(
    calls: dict[str, Callable[[], object]], warmup: int, repeats: int, blocks: int
) -> dict[str, list[int]]:
    """Times each call ``repeats`` times, in ``blocks`` alternating runs of consecutive calls.

    Consecutive calls keep a variant's table in cache, as in serving (one table per process);
    alternating the blocks spreads the noise of other processes over all variants.
    """
    timings: dict[str, list[int]] = {name: [] for name in calls}
    per_block = max(1, repeats // blocks)
    while min(len(values) for values in timings.values()) < repeats:
        for name, call in calls.items():
            for _ in range(warmup):
                call()
            for _ in range(min(per_block, repeats - len(timings[name]))):
                started = time.perf_counter_ns()
                call()
                timings[name].append(time.perf_counter_ns() - started)
    return timings


def measure_scoring_speed(
    model: FactorModel, quantized: QuantizedTable, seen: UserItemMatrix, config: RecommenderPipelineSettings
) -> dict:
    kernels = scoring_module()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.serving_threads)
    try:
        bias = torch.from_numpy(model.item_bias)
        values, scales = torch.from_numpy(quantized.values), torch.from_numpy(quantized.scales)
        fp32 = kernels.FloatItemTable.build(torch.from_numpy(model.item_vectors), bias, torch.float32, "cpu")
        tables = {"fp32": fp32}
        for kernel in ("int8-gemm", "int8-dequantize"):
            table = kernels.int8_item_table(values, scales, bias, kernel)
            tables[table.kernel] = table  # a missing FBGEMM falls back; keyed by what really ran
        user_vectors = torch.from_numpy(model.user_vectors)
        prepared_users = {name: table.prepare_users(user_vectors) for name, table in tables.items()}
        rng = np.random.default_rng(config.seed)
        report: dict = {
            "threads": config.serving_threads,
            "served_cpu_kernel": config.cpu_int8_kernel,
            "n_items": int(model.item_vectors.shape[0]),
            "dim": int(model.item_vectors.shape[1]),
            "k": config.top_k,
            "repeats": config.bench_repeats,
            "warmup_per_block": config.bench_warmup,
            "blocks": config.bench_blocks,
            "what": "score + seen-item exclusion + top-k for a batch of users, inside the model process",
        }
        for batch_size in config.bench_batch_sizes:
            n_users = model.user_vectors.shape[0]
            users = rng.choice(n_users, size=batch_size, replace=batch_size > n_users)
            rows, cols = kernels.exclusion_coordinates([seen.row(u) for u in users])
            ks = [config.top_k] * batch_size

            index = torch.from_numpy(users)

            def call(name: str) -> Callable[[], object]:
                table, prepared = tables[name], prepared_users[name]
                return lambda: kernels.top_k_excluding(table.scores(prepared[index]), rows, cols, ks)

            timings = _time_in_blocks(
                {name: call(name) for name in tables},
                config.bench_warmup,
                config.bench_repeats,
                config.bench_blocks,
            )
            entry = {}
            for name, values in timings.items():
                entry[f"{name}_median_us"] = round(float(np.median(values)) / 1e3, 1)
                entry[f"{name}_p90_us"] = round(float(np.percentile(values, 90)) / 1e3, 1)
            for name in tables:
                if name != "fp32":
                    entry[f"{name}_over_fp32_median"] = round(entry[f"{name}_median_us"] / entry["fp32_median_us"], 3)
            report[f"batch_{batch_size}"] = entry
            log.info("scoring speed, batch %d: %s", batch_size, entry)
        return report
    finally:
        torch.set_num_threads(previous_threads)
