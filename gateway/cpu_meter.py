"""Per-request CPU time of the gateway's own code.

Under asyncio many requests share one thread, so a request's CPU time is summed over the
synchronous sections it runs inside ``with meter:`` (validation, cache keys, answer shaping,
pricing); awaits are never inside a section, so other requests' work is not counted. gRPC's
own (de)serialisation in C is not included.
"""

from __future__ import annotations

import time
from types import TracebackType


class CpuMeter:
    """Accumulates thread CPU nanoseconds over the sections run inside ``with meter:``."""

    __slots__ = ("ns", "_started")

    def __init__(self) -> None:
        self.ns = 0
        self._started = 0

    def __enter__(self) -> CpuMeter:
        self._started = time.thread_time_ns()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.ns += time.thread_time_ns() - self._started
