"""Ensemble vs client-composed search through a real Triton on this machine.

``python -m benchmarks search-serving`` (needs the built search models: ``make models``).

Starts its own ``tritonserver`` (explicit model control: only the three search models) on free
ports, then sends the judged queries one at a time with tritonclient's gRPC aio client:

- ``ensemble``: one call to ``product_search`` (QUERY + K -> products);
- ``composed``: ``query_encoder`` (QUERY -> EMBEDDING), then ``product_index`` (EMBEDDING + K ->
  products), the embedding travelling through the client.

After untimed warm-up calls of both, each query is timed on both paths, alternating which goes
first, so that drift and noise on the shared cores hit both alike. Latency is client wall time
per query (p50/p99/mean); COMPUTE_NS sums are what the models measured inside ``execute()``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import numpy as np
import tritonclient.grpc.aio as grpcclient
from rich.table import Table

from deploy.local.settings import LocalStackSettings
from deploy.local.triton import TritonServer
from pipeline.search import triton_io
from pipeline.search.config import SearchPipelineSettings
from pipeline.search.layout import SearchPaths

log = logging.getLogger(__name__)
REPORT_FILE = "search-serving-bench.json"


async def _ensemble(client, model: str, query: str, k: int) -> tuple[int, int, int]:
    started = time.perf_counter_ns()
    result = await client.infer(model, **triton_io.ensemble_request(query, k))
    elapsed = time.perf_counter_ns() - started
    return elapsed, int(result.as_numpy("ENCODER_COMPUTE_NS")[0, 0]), int(result.as_numpy("INDEX_COMPUTE_NS")[0, 0])


async def _composed(client, encoder: str, index: str, query: str, k: int) -> tuple[int, int, int]:
    started = time.perf_counter_ns()
    encoded = await client.infer(encoder, **triton_io.encoder_request(query))
    result = await client.infer(index, **triton_io.index_request(encoded.as_numpy("EMBEDDING"), k))
    elapsed = time.perf_counter_ns() - started
    return elapsed, int(encoded.as_numpy("COMPUTE_NS")[0, 0]), int(result.as_numpy("COMPUTE_NS")[0, 0])


def _summary(samples: list[tuple[int, int, int]]) -> dict:
    latency_ms = np.array([sample[0] for sample in samples]) / 1e6
    return {
        "p50_ms": round(float(np.percentile(latency_ms, 50)), 3),
        "p99_ms": round(float(np.percentile(latency_ms, 99)), 3),
        "mean_ms": round(float(latency_ms.mean()), 3),
        "encoder_compute_ns_sum": int(sum(sample[1] for sample in samples)),
        "index_compute_ns_sum": int(sum(sample[2] for sample in samples)),
        "encoder_compute_us_mean": round(sum(sample[1] for sample in samples) / len(samples) / 1e3, 1),
        "index_compute_us_mean": round(sum(sample[2] for sample in samples) / len(samples) / 1e3, 1),
    }


async def _measure(url: str, config: SearchPipelineSettings, queries: list[str], n: int, warmup: int, k: int) -> dict:
    client = grpcclient.InferenceServerClient(url)
    try:
        paths = {
            "ensemble": lambda query: _ensemble(client, config.ensemble_model_name, query, k),
            "composed": lambda query: _composed(client, config.encoder_model_name, config.index_model_name, query, k),
        }
        for step in range(warmup):
            for call in paths.values():
                await call(queries[step % len(queries)])
        samples: dict[str, list[tuple[int, int, int]]] = {name: [] for name in paths}
        for step in range(n):
            order = list(paths) if step % 2 == 0 else list(reversed(paths))
            for name in order:
                samples[name].append(await paths[name](queries[step % len(queries)]))
        return {name: _summary(values) for name, values in samples.items()}
    finally:
        await client.close()


def run_serving_bench(settings: LocalStackSettings, n_queries: int = 200, warmup: int = 20, k: int = 10) -> tuple[dict, Path]:
    """Times the built search models of ``settings.model_repository``; writes the report into ``settings.run_dir``."""
    config = SearchPipelineSettings()
    paths = SearchPaths.in_repository(Path(settings.model_repository), config)
    queries = [entry["query"] for entry in json.loads(paths.judged_file.read_text())]
    models = (config.encoder_model_name, config.index_model_name, config.ensemble_model_name)
    log_path = Path(settings.run_dir) / "logs" / "search-bench-triton.log"
    with TritonServer(settings.model_repository, models=models, log_path=log_path) as server:
        figures = asyncio.run(_measure(server.grpc_url, config, queries, n_queries, warmup, k))
    report = {
        "what": "client wall time per query, sequential (one request in flight), gRPC aio on loopback, "
        "client and server on the same 2 shared cores; COMPUTE_NS as reported by the models",
        "queries": n_queries,
        "warmup_per_path": warmup,
        "k": k,
        "distinct_query_texts": min(len(queries), n_queries),
        "build_id": json.loads(paths.manifest_file.read_text()).get("build_id"),
        "encoder_threads": config.encoder_threads,
        **figures,
    }
    target = Path(settings.run_dir) / REPORT_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2) + "\n")
    log.info("serving bench: %s", report)
    return report, target


def serving_table(report: dict) -> Table:
    table = Table(title=f"search through Triton: {report['queries']} sequential queries, k={report['k']}")
    for column in ("path", "p50 ms", "p99 ms", "mean ms", "encoder COMPUTE_NS sum", "index COMPUTE_NS sum"):
        table.add_column(column, justify="right" if column != "path" else "left")
    for name in ("ensemble", "composed"):
        entry = report[name]
        table.add_row(
            name,
            f"{entry['p50_ms']:.2f}",
            f"{entry['p99_ms']:.2f}",
            f"{entry['mean_ms']:.2f}",
            f"{entry['encoder_compute_ns_sum']:,}",
            f"{entry['index_compute_ns_sum']:,}",
        )
    return table
