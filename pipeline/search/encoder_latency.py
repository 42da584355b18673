"""Query encode latency (``encode_latency`` of the search eval.json): torch fp32 vs ONNX Runtime fp32
vs ONNX Runtime int8, tokenisation included.

One timed call = ``encoder.encode(batch of query strings)``, the exact call ``model.py`` makes for
a dynamic batch (Triton's IPC is not included). Queries are the judged queries in a seeded
random order, so batches mix lengths as real traffic would. Variants alternate call by call so
that noise from other processes on the shared cores hits them alike; after untimed warm-up
calls the median and p90 of the repeats are reported, per batch size and thread count.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

log = logging.getLogger(__name__)

EncoderFactory = Callable[[int], object]  # intra-op threads -> object with .encode(texts)


def _batches(queries: Sequence[str], size: int, count: int) -> list[list[str]]:
    cycled = [queries[i % len(queries)] for i in range(size * count)]
    return [cycled[i * size : (i + 1) * size] for i in range(count)]


def measure_encode_latency(
    factories: dict[str, EncoderFactory],
    queries: Sequence[str],
    batch_sizes: Sequence[int],
    thread_counts: Sequence[int],
    warmup: int,
    repeats: int,
    seed: int,
) -> dict:
    order = np.random.default_rng(seed).permutation(len(queries))
    shuffled = [queries[i] for i in order]
    previous_threads = torch.get_num_threads()
    report: dict = {
        "what": "encoder.encode(batch) incl. tokenisation, inside one process; median / p90 in ms",
        "warmup": warmup,
        "repeats": repeats,
    }
    try:
        for threads in thread_counts:
            torch.set_num_threads(threads)
            encoders = {name: factory(threads) for name, factory in factories.items()}
            for size in batch_sizes:
                batches = _batches(shuffled, size, warmup + repeats)
                timings: dict[str, list[int]] = {name: [] for name in encoders}
                for step, batch in enumerate(batches):
                    for name, encoder in encoders.items():
                        started = time.perf_counter_ns()
                        encoder.encode(batch)
                        if step >= warmup:
                            timings[name].append(time.perf_counter_ns() - started)
                entry = {
                    name: {
                        "median_ms": round(float(np.median(values)) / 1e6, 3),
                        "p90_ms": round(float(np.percentile(values, 90)) / 1e6, 3),
                    }
                    for name, values in timings.items()
                }
                report[f"threads_{threads}_batch_{size}"] = entry
                log.info(
                    "encode latency, %d thread(s), batch %d: %s",
                    threads, size, ", ".join(f"{name} {value['median_ms']} ms" for name, value in entry.items()),
                )
    finally:
        torch.set_num_threads(previous_threads)
    return report
