"""Timing of model kernels inside this process, the way a Triton CPU instance runs them (one thread).

Variants are timed in alternating blocks of consecutive calls, each block after untimed
warm-up calls, so that the neighbours' noise on the shared cores hits every variant alike; a
block's median is one repetition. Wall time and process CPU time are both recorded: CPU time is
what a CPU instance bills (``COMPUTE_NS`` is process CPU time inside ``execute()``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from threadpoolctl import threadpool_limits

WARMUP_PER_BLOCK = 3


@dataclass
class Timings:
    wall_ns: list[int] = field(default_factory=list)
    cpu_ns: list[int] = field(default_factory=list)
    block_ends: list[int] = field(default_factory=list)  # index after the last call of each block

    def block_medians(self, which: str = "wall_ns") -> list[float]:
        values = getattr(self, which)
        starts = [0, *self.block_ends[:-1]]
        return [
            float(np.median(values[start:end]))
            for start, end in zip(starts, self.block_ends, strict=True)
            if end > start
        ]


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch and BLAS on one thread, as the served models are configured (num_threads / blas_threads 1)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(previous)


def time_in_blocks(
    calls: Mapping[str, Callable[[], object]], blocks: int, per_block: int, max_seconds: float = 30.0
) -> dict[str, Timings]:
    """``blocks`` rounds; each round times ``per_block`` consecutive calls of every variant in turn.
    Stops early (after a complete round) once ``max_seconds`` have passed."""
    timings = {name: Timings() for name in calls}
    stop_at = time.perf_counter() + max_seconds
    for block in range(blocks):
        names = list(calls) if block % 2 == 0 else list(reversed(list(calls)))
        for name in names:
            call, record = calls[name], timings[name]
            for _ in range(WARMUP_PER_BLOCK):
                call()
            for _ in range(per_block):
                wall, cpu = time.perf_counter_ns(), time.process_time_ns()
                call()
                record.cpu_ns.append(time.process_time_ns() - cpu)
                record.wall_ns.append(time.perf_counter_ns() - wall)
            record.block_ends.append(len(record.wall_ns))
        if time.perf_counter() > stop_at:
            break
    return timings
