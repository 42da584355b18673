"""5. Scaling: latency and cost per request vs catalogue size (in-process) and vs concurrency (through the stack).

Catalogue size: the real catalogue, then larger ones extended with *synthetic* items
(``benchmarks.synthetic``: perturbed copies of real item vectors, labelled as such), scored
with the served kernels on one thread (``benchmarks.kernels``). Cost per request is the
process CPU time per request priced for the CPU pool (what COMPUTE_NS would bill).

Concurrency: section 1's runs (Recommend through the gateway and directly), read again as
latency and cost per 1,000 requests at each concurrency.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks import kernels, synthetic
from benchmarks.inprocess import one_thread, time_in_blocks
from benchmarks.pricing import compute_cost_per_1k
from benchmarks.results_table import RATIO, Section
from benchmarks.runner import values
from benchmarks.sections import Context
from benchmarks.stats import spread

RECOMMENDER_BATCHES = (1, 64)
INDEX_BATCHES = (1, 32)
MAX_SECONDS_PER_MEASUREMENT = 12.0
INT8, FP32, INT8_GEMM = "int8", "fp32", "int8-gemm"


def run(ctx: Context) -> Section:
    section = Section(
        "scaling", "5. Scaling — catalogue size (in-process, synthetic beyond the real catalogue) and concurrency"
    )
    _catalogue_sizes(ctx, section)
    _concurrency(ctx, section)
    return section


def _per_block(ctx: Context, n_items: int) -> int:
    """Fewer timed calls on the big catalogues (each call is ~100x longer at 400k items)."""
    per_block = max(1, ctx.profile.scaling_repeats // ctx.profile.repetitions)
    return max(3, per_block // max(1, n_items // 40_000)) if n_items > 40_000 else per_block


def _catalogue_sizes(ctx: Context, section: Section) -> None:
    factors = kernels.serves_factor_model(ctx.local_settings.model_repository)
    tables = kernels.RecommenderTables.load(ctx.local_settings.model_repository) if factors else None
    index = kernels.load_index(ctx.local_settings.model_repository)
    pool = ctx.settings.pool_name
    memory: dict[str, Any] = {}
    timings_ms: dict[str, Any] = {}
    for n_items in ctx.profile.scaling_sizes:
        name = synthetic.label(n_items, len(index))
        per_block = _per_block(ctx, n_items)
        if tables is not None:
            _recommender_size(ctx, section, tables, n_items, name, per_block, memory, timings_ms)
        catalogue = synthetic.extend_rows(index, n_items, ctx.seed + 2, unit_rows=True)
        for batch in INDEX_BATCHES:
            queries = _queries(index, batch, ctx.seed)
            with one_thread():
                timings = time_in_blocks(
                    {FP32: kernels.index_call(catalogue, queries)},
                    ctx.profile.repetitions,
                    per_block,
                    MAX_SECONDS_PER_MEASUREMENT,
                )[FP32]
            wall = [v / 1e6 for v in timings.block_medians("wall_ns")]
            timings_ms[f"product_index_{n_items}_batch_{batch}"] = spread(wall)
            if batch == 1:
                section.add_row(
                    f"product index (exact top-10, fp32), {name}, batch 1: latency per call", "ms", (FP32, wall)
                )
            else:
                section.add_row(
                    f"product index, {name}, batch {batch}: compute cost per 1,000 requests",
                    "USD",
                    (FP32, [compute_cost_per_1k(ctx.book, pool, v / batch) for v in timings.block_medians("cpu_ns")]),
                )
        memory[f"product_index_{n_items}"] = int(catalogue.nbytes)
        del catalogue
    section.details["table_bytes"] = memory
    section.details["latency_ms"] = timings_ms
    section.notes.append(
        "Synthetic items are perturbed copies of real item vectors (Gaussian noise of 0.1 × each dimension's spread; "
        "index rows re-normalised): realistic scoring and top-k cost, meaningless rankings. One thread, as served. "
        f"int8 = the served CPU kernel ({kernels.served_int8_kernel()}: the table is made float in every call); "
        "int8-gemm = FBGEMM's int8 GEMM (recommender_scoring.Int8GemmItemTable). Product-index queries are catalogue "
        "title embeddings (lightly perturbed) standing in for encoded queries."
    )


def _recommender_size(
    ctx: Context,
    section: Section,
    tables: kernels.RecommenderTables,
    n_items: int,
    name: str,
    per_block: int,
    memory: dict[str, Any],
    timings_ms: dict[str, Any],
) -> None:
    """The served factor kernels on a catalogue of ``n_items`` (synthetic beyond the real one)."""
    pool = ctx.settings.pool_name
    vectors = synthetic.extend_rows(tables.item_vectors, n_items, ctx.seed)
    bias = synthetic.extend_rows(tables.item_bias, n_items, ctx.seed + 1)
    for batch in RECOMMENDER_BATCHES:
        calls, table_bytes = kernels.recommender_calls(tables, vectors, bias, batch, ctx.seed, (INT8_GEMM,))
        with one_thread():
            timings = time_in_blocks(calls, ctx.profile.repetitions, per_block, MAX_SECONDS_PER_MEASUREMENT)
        wall_ms = {k: [v / 1e6 for v in t.block_medians("wall_ns")] for k, t in timings.items()}
        cost = {
            k: [compute_cost_per_1k(ctx.book, pool, v / batch) for v in t.block_medians("cpu_ns")]
            for k, t in timings.items()
        }
        timings_ms[f"recommender_{n_items}_batch_{batch}"] = {k: spread(v) for k, v in wall_ms.items()}
        if batch == 1:
            section.add_row(
                f"recommender, {name}, batch 1: latency per call",
                "ms",
                (INT8, wall_ms[INT8]),
                (FP32, wall_ms[FP32]),
                RATIO,
            )
        else:
            for kernel in (INT8, INT8_GEMM):
                if kernel in cost:
                    section.add_row(
                        f"recommender, {name}, batch {batch}: compute cost per 1,000 requests, {kernel} vs fp32",
                        "USD",
                        (kernel, cost[kernel]),
                        (FP32, cost[FP32]),
                        RATIO,
                    )
        memory[f"recommender_{n_items}"] = table_bytes


def _queries(index: np.ndarray, batch: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = index[rng.choice(len(index), size=batch, replace=batch > len(index))]
    noisy = rows + rng.standard_normal(rows.shape, dtype=np.float32) * np.float32(0.02)
    return (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)


def _concurrency(ctx: Context, section: Section) -> None:
    by_concurrency = ctx.shared.get("recommend_by_concurrency")
    if not by_concurrency:
        section.notes.append("Concurrency scaling needs section 1 (gateway); it was not run.")
        return
    pool = ctx.settings.pool_name
    for concurrency, results in sorted(by_concurrency.items()):
        gateway, direct = results["gateway"], results["direct Triton"]
        section.add_row(
            f"Recommend through the gateway, C={concurrency}: p50 / p99 latency",
            "ms",
            ("p99", values(gateway, "latency", "p99_ms")),
            ("p50", values(gateway, "latency", "p50_ms")),
        )
        section.add_row(
            f"Recommend, C={concurrency}: cost per 1,000 requests (gateway: all-in; direct: compute)",
            "USD",
            ("gateway", [r["extras_mean"]["cost_total"] * 1000 for r in gateway]),
            ("direct Triton", [compute_cost_per_1k(ctx.book, pool, r["extras_mean"]["compute_ns"]) for r in direct]),
            RATIO,
        )
