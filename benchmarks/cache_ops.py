"""CPU per cache operation of the gateway's cache client, in this process, against the real Redis.

``python -m benchmarks cache-ops`` drives gateway.result_cache.ResultCache over
gateway/redis_pipe.py's connection as a hit does (a lookup) and as a miss does (a lookup, then a
store without waiting), at several concurrencies, and reads this process's CPU time per call
(Redis is another process, not counted). Each is timed two ways, in alternating blocks so the
neighbours' noise hits both alike:

- now: the lookups of one write share one reply timer, and a store's SET joins the loop
  iteration's write with its reply going to a callback (what the gateway does);
- before: every lookup under an ``asyncio.timeout`` of its own, and every store handed to a
  batch sent by a task of its own, awaited with a time budget (what the gateway did before,
  and still does for a store while the connection is not open yet).

Keys carry a run-unique prefix and are deleted afterwards. An end-to-end figure on a shared
2-core machine moves by more than these microseconds; this one does not.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvloop

from deploy.local.redis import delete_prefixed, ensure_redis
from gateway.answers import ModelAnswer, RankedItem
from gateway.circuit_breaker import CircuitBreaker
from gateway.redis_pipe import RedisPipe, ReplyCallback
from gateway.result_cache import CachedAnswer, CacheSecret, ResultCache

LOOKUP_BEFORE, LOOKUP = "lookup, before", "lookup, now"
MISS_BEFORE, MISS = "lookup + store, before", "lookup + store, now"
TIMEOUT_S = 1.0  # the cache's time budget (never reached here)
# A recommendation of 10 items, as the bench's misses store.
ANSWER = CachedAnswer(
    ModelAnswer.of([RankedItem(f"item-{i}", f"A PRODUCT TITLE {i}", 1.0 / (i + 1)) for i in range(10)], 400_000, "1"),
    "cpu-local",
)
BREAKER_FAILURES, BREAKER_COOLDOWN_S = 1_000_000, 1.0  # never opens during the run


class _TaskStores(RedisPipe):
    """The connection as before: stores never take the callback path, so they go through the batch task."""

    def set_later(self, entries: Sequence[tuple[str, bytes]], ttl_s: int, on_reply: ReplyCallback) -> bool:
        return False


async def _measure(
    cache: ResultCache, prefix: str, kind: str, concurrency: int, ops: int, block: int
) -> float:
    """CPU µs per operation of ``ops`` operations by ``concurrency`` concurrent callers."""

    async def one(i: int) -> None:
        await cache.get(f"{prefix}{block}:{i}")
        if kind in (MISS_BEFORE, MISS):
            cache.put_later(f"{prefix}{block}:{i}", ANSWER)

    async def caller(first: int) -> None:
        for i in range(first, ops, concurrency):
            await one(i)

    started = time.process_time()
    await asyncio.gather(*(caller(c) for c in range(concurrency)))
    await asyncio.sleep(0.05)  # the last stores' replies are read (and their CPU counted)
    return (time.process_time() - started) / ops * 1e6


async def _run(url: str, prefix: str, concurrencies: Sequence[int], ops: int, repetitions: int) -> dict[str, Any]:
    secret = CacheSecret(uuid.uuid4().bytes * 2)

    def cache_over(pipe: RedisPipe) -> ResultCache:
        breaker = CircuitBreaker(BREAKER_FAILURES, BREAKER_COOLDOWN_S)
        return ResultCache(pipe, 60, TIMEOUT_S, secret, ["cpu-local"], breaker)

    caches = {
        LOOKUP_BEFORE: cache_over(RedisPipe(url, TIMEOUT_S)),  # no reply timeout: asyncio.timeout per lookup
        LOOKUP: cache_over(RedisPipe(url, TIMEOUT_S, TIMEOUT_S)),
        MISS_BEFORE: cache_over(_TaskStores(url, TIMEOUT_S)),
        MISS: cache_over(RedisPipe(url, TIMEOUT_S, TIMEOUT_S)),
    }
    for cache in caches.values():
        await cache.get(f"{prefix}connect")
    figures: dict[str, dict[str, list[float]]] = {str(c): {kind: [] for kind in caches} for c in concurrencies}
    block = 0
    for repetition in range(repetitions):
        for concurrency in concurrencies:
            kinds = list(caches) if repetition % 2 == 0 else list(reversed(caches))
            for kind in kinds:
                block += 1
                us = await _measure(caches[kind], prefix, kind, concurrency, ops, block)
                figures[str(concurrency)][kind].append(us)
    for cache in caches.values():
        await cache.close()
    return figures


def run_cache_ops(
    redis_url: str, log_dir: Path, concurrencies: Sequence[int], ops: int, repetitions: int
) -> dict[str, Any]:
    """Starts Redis if none answers on ``redis_url``; returns CPU µs per operation, every block."""
    prefix = f"tollgate-bench:{uuid.uuid4().hex[:12]}:cache-ops:"
    handle = ensure_redis(redis_url, log_dir)
    try:
        figures = uvloop.run(_run(redis_url, prefix, concurrencies, ops, repetitions))
    finally:
        delete_prefixed(redis_url, prefix)
        handle.stop()
    return {
        "ops_per_block": ops,
        "repetitions": repetitions,
        "cpu_us_per_op": figures,
        "median_us": {c: {k: round(statistics.median(v), 1) for k, v in kinds.items()} for c, kinds in figures.items()},
    }
