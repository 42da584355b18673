"""Redis result cache: keys, stored answers and failure-tolerant get/put.

A cache that misbehaves must never fail a request: every Redis error or time-out is logged,
counted, and treated as a miss (get) or skipped (put).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import redis.asyncio as aioredis
from opentelemetry import metrics
from redis.exceptions import RedisError

from gateway.answers import ModelAnswer, RankedItem

log = logging.getLogger(__name__)
_meter = metrics.get_meter(__name__)
cache_errors = _meter.create_counter(
    "tollgate.cache.errors", description="Cache operations that failed and were bypassed"
)

# Bumped whenever CachedAnswer's layout changes, so old entries are never misread.
CACHE_SCHEMA = "v2"


def cache_key(prefix: str, rpc: str, model: str, version: str, build_id: str, inputs: Sequence[object]) -> str:
    """The key of an answer: the model's identity (name, version, weights' build) plus a hash of
    every input that changes the answer, in a fixed order."""
    digest = hashlib.sha256(json.dumps(list(inputs), separators=(",", ":")).encode()).hexdigest()[:32]
    return f"{prefix}{rpc.lower()}:{CACHE_SCHEMA}:{model}:{version}:{build_id}:{digest}"


@dataclass(frozen=True)
class CachedAnswer:
    """A model answer as cached, with where it ran and the compute it cost (to price what a hit avoids)."""

    answer: ModelAnswer
    pool: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> CachedAnswer:
        data = json.loads(raw)
        answer = data["answer"]
        answer["items"] = tuple(RankedItem(**item) for item in answer["items"])
        return cls(answer=ModelAnswer(**answer), pool=data["pool"])


class ResultCache:
    """Get/put of cached answers with a TTL, bounded by a per-operation time budget."""

    def __init__(self, client: aioredis.Redis, ttl_s: int, timeout_s: float) -> None:
        self._client = client
        self._ttl_s = ttl_s
        self._timeout_s = timeout_s
        self._degraded = False

    @classmethod
    def from_url(cls, url: str, ttl_s: int, timeout_s: float) -> ResultCache:
        client = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry_on_timeout=False
        )
        return cls(client, ttl_s, timeout_s)

    async def get(self, key: str) -> CachedAnswer | None:
        try:
            raw = await asyncio.wait_for(self._client.get(key), self._timeout_s)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._report_failure("get", exc)
            return None
        self._report_success()
        if raw is None:
            return None
        try:
            return CachedAnswer.from_json(raw)
        except (ValueError, TypeError, KeyError) as exc:
            self._report_failure("decode", exc)
            return None

    async def put(self, key: str, answer: CachedAnswer) -> bool:
        try:
            await asyncio.wait_for(self._client.set(key, answer.to_json(), ex=self._ttl_s), self._timeout_s)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._report_failure("put", exc)
            return False
        self._report_success()
        return True

    async def close(self) -> None:
        await self._client.aclose()

    def _report_failure(self, operation: str, exc: BaseException) -> None:
        """Counts every failure; logs a warning when the cache turns bad, not on every request."""
        cache_errors.add(1, {"operation": operation})
        level = logging.DEBUG if self._degraded else logging.WARNING
        log.log(level, "cache %s failed, serving uncached: %s", operation, str(exc) or type(exc).__name__)
        self._degraded = True

    def _report_success(self) -> None:
        if self._degraded:
            log.info("cache is answering again; caching resumed")
            self._degraded = False
