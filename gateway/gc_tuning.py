"""Garbage-collector settings of a serving process.

After start-up the heap holds ~80k long-lived objects (grpc, protobuf, pydantic, numpy ...)
that every full collection walked again: measured under load, 3 full collections of ~80 ms
each in ~6,000 calls, about 40 µs per call. Freezing them moves them out of the collector's
sight (``gc.freeze``); what calls allocate is still collected, and a larger first-generation
threshold makes the young collections fewer.
"""

from __future__ import annotations

import gc

# Allocations (net) between young-generation collections; CPython's default is 700.
YOUNG_THRESHOLD = 7_000


def freeze_startup_heap() -> None:
    """Collect once, then exclude everything alive from later collections."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
