"""4. Quantization: int8 vs fp32 serving speed and cost per 1,000 requests, beside the pipeline's quality figures.

- Query encoder (where the ≥ 2× goal applies): both precisions served by a real Triton from a
  bench model repository (``benchmarks.encoder_repo``: the same ``model.py``, only the ONNX
  graph differs), driven by the same load generator with the judged search queries.
- Recommender: int8 is a *memory* lever at this catalogue size; its kernels are timed in-process
  (the served int8 kernel vs fp32, one thread, as a CPU instance runs them).
- Quality: recall@10 of both precisions from the pipelines' ``eval.json`` (not re-measured here).
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import kernels
from benchmarks.encoder_repo import FP32_MODEL, INT8_MODEL, build_encoder_repository
from benchmarks.inprocess import one_thread, time_in_blocks
from benchmarks.pricing import compute_cost_per_1k
from benchmarks.results_table import RATIO, Section
from benchmarks.runner import errors_of, values
from benchmarks.sections import Context
from benchmarks.stats import spread
from benchmarks.workloads import search_mix
from deploy.local.triton import TritonServer

INT8, FP32 = "int8", "fp32"
SEARCH_EVAL = Path("product_search") / "1" / "artifacts" / "eval.json"
RECOMMENDER_EVAL = Path("recommender") / "1" / "artifacts" / "eval.json"
RECOMMENDER_BATCHES = (1, 64)


def run(ctx: Context) -> Section:
    section = Section("quantization", "4. Quantization — int8 vs fp32 (CPU)")
    _encoder_through_triton(ctx, section)
    _encoder_quality(ctx, section)
    _recommender_in_process(ctx, section)
    return section


def _encoder_through_triton(ctx: Context, section: Section) -> None:
    repository = ctx.run_dir / "encoder_repo"
    served = ctx.local_settings.model_repository
    build_encoder_repository(served, repository, ctx.local_settings.run_dir / "bench" / "cache")
    calls = search_mix(served, 600, ctx.seed)
    log_path = ctx.run_dir / "logs" / "triton-encoders.log"
    top = max(ctx.profile.concurrencies)
    with TritonServer(repository, models=(INT8_MODEL, FP32_MODEL), log_path=log_path).start() as server:
        base = {"target": "triton.encoder", "address": server.grpc_url, "calls": calls}
        variants = {INT8: {**base, "model": INT8_MODEL}, FP32: {**base, "model": FP32_MODEL}}
        alone = ctx.runner.side_by_side({name: {**spec, "concurrency": 1} for name, spec in variants.items()})
        loaded = ctx.runner.side_by_side({name: {**spec, "concurrency": top} for name, spec in variants.items()})
    section.add_row(
        "query encoder through Triton: p50 latency, one request in flight",
        "ms",
        (INT8, values(alone[INT8], "latency", "p50_ms")),
        (FP32, values(alone[FP32], "latency", "p50_ms")),
        RATIO,
    )
    section.add_row(
        f"query encoder through Triton: throughput, C={top}",
        "rps",
        (INT8, values(loaded[INT8], "throughput_rps")),
        (FP32, values(loaded[FP32], "throughput_rps")),
        RATIO,
        figure="encoder_int8_over_fp32_throughput",
    )
    compute_us = {name: [r["extras_mean"]["compute_ns"] / 1e3 for r in loaded[name]] for name in (INT8, FP32)}
    section.add_row(
        f"query encoder COMPUTE_NS per request (model-measured CPU), C={top}",
        "µs",
        (INT8, compute_us[INT8]),
        (FP32, compute_us[FP32]),
        RATIO,
    )
    pool = ctx.settings.pool_name
    cost = {name: [compute_cost_per_1k(ctx.book, pool, us * 1e3) for us in compute_us[name]] for name in (INT8, FP32)}
    section.add_row(
        f"query encoder compute cost per 1,000 requests, C={top}", "USD", (INT8, cost[INT8]), (FP32, cost[FP32]), RATIO
    )
    section.details["encoder_errors"] = {"alone": errors_of(alone), "loaded": errors_of(loaded)}


def _encoder_quality(ctx: Context, section: Section) -> None:
    quality = json.loads((ctx.local_settings.model_repository / SEARCH_EVAL).read_text())["quality"]
    int8, fp32 = quality["semantic_int8"]["recall_at_10"], quality["semantic_fp32"]["recall_at_10"]
    section.add_row(
        "search recall@10 on the judged queries (pipeline eval.json)", "", (INT8, [int8]), (FP32, [fp32]), RATIO
    )
    section.figures["encoder_int8_recall_at_10_relative_loss_pct"] = spread([relative_loss_pct(int8, fp32)])


def _recommender_in_process(ctx: Context, section: Section) -> None:
    if not kernels.serves_factor_model(ctx.local_settings.model_repository):
        section.notes.append(
            "Recommender: the served model is item-item (EASE), not a factor table; its int8 vs fp32 quality, "
            "memory and compute per request are in the recommender's eval.json (make models prints them)."
        )
        return
    tables = kernels.RecommenderTables.load(ctx.local_settings.model_repository)
    profile = ctx.profile
    for batch in RECOMMENDER_BATCHES:
        calls, table_bytes = kernels.recommender_calls(tables, tables.item_vectors, tables.item_bias, batch, ctx.seed)
        with one_thread():
            timings = time_in_blocks(calls, profile.repetitions, max(1, profile.scaling_repeats // profile.repetitions))
        wall_us = {name: [v / 1e3 for v in timings[name].block_medians("wall_ns")] for name in (INT8, FP32)}
        section.add_row(
            f"recommender score + exclude + top-10, batch {batch}, in-process (wall per call)",
            "µs",
            (INT8, wall_us[INT8]),
            (FP32, wall_us[FP32]),
            RATIO,
        )
        if batch == max(RECOMMENDER_BATCHES):
            cost = {
                name: [
                    compute_cost_per_1k(ctx.book, ctx.settings.pool_name, ns / batch)
                    for ns in timings[name].block_medians("cpu_ns")
                ]
                for name in (INT8, FP32)
            }
            section.add_row(
                f"recommender compute cost per 1,000 requests, batch {batch}, in-process",
                "USD",
                (INT8, cost[INT8]),
                (FP32, cost[FP32]),
                RATIO,
            )
            section.details["recommender_table_bytes"] = table_bytes
    evaluation = json.loads((ctx.local_settings.model_repository / RECOMMENDER_EVAL).read_text())
    int8, fp32 = evaluation["model_int8"]["recall_at_10"], evaluation["model_fp32"]["recall_at_10"]
    section.add_row(
        "recommender recall@10 on the time-based hold-out (pipeline eval.json)",
        "",
        (INT8, [int8]),
        (FP32, [fp32]),
        RATIO,
    )
    table_bytes = section.details["recommender_table_bytes"]
    section.notes.append(
        f"Recommender: int8 ({kernels.served_int8_kernel()}) is a memory lever, not a speed lever, at "
        f"{len(tables.item_vectors):,} items: table {table_bytes[FP32] / 1e3:.0f} kB fp32 vs "
        f"{table_bytes[INT8] / 1e3:.0f} kB int8; recall@10 loss {relative_loss_pct(int8, fp32):.2f} % relative. "
        "The ≥ 2× goal is evaluated on the query encoder."
    )


def relative_loss_pct(candidate: float, reference: float) -> float:
    """How much lower ``candidate`` is than ``reference``, in % of the reference (negative: higher)."""
    return (reference - candidate) / reference * 100 if reference else float("nan")
