"""Redis result cache: keyed-hash keys, sealed entries, and failure-tolerant get/put.

- **Keys** hash every input that changes the answer with HMAC-SHA256 under the gateway's cache
  secret, so nothing stored in Redis lets someone recover a shopper id (short numbers, easily
  enumerated under a plain hash) without the secret.
- **Entries** are the answer's wire bytes behind a small header, sealed with an HMAC under a
  second key derived from the same secret and schema-checked when read (the header's bounds,
  and the items parsed by protobuf's C code): an entry written by anyone else, or one that is
  not a plausible answer from a known pool, is a miss (counted), never an error or a label. A
  hit answers with the stored bytes as they are.
- **Batches**: the lookups of one event-loop iteration go to Redis in one write over
  gateway/redis_pipe.py's single pipelined connection (one round trip for all of them, as one
  MGET would be); a store is written with them and nobody waits for its reply (a callback
  counts it), or, while the connection is not open yet, handed to a batch of its own.
- **Failures**: a cache that misbehaves never fails a request. Every Redis error or time-out is
  counted and treated as a miss (get) or skipped (put); after consecutive failures a circuit
  breaker skips the cache for a cool-down, then probes it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import struct
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from google.protobuf.message import DecodeError
from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError

from gateway.answers import ModelAnswer
from gateway.api import search_pb2
from gateway.circuit_breaker import CircuitBreaker
from gateway.health_metrics import HealthMetrics
from gateway.redis_pipe import RedisPipe
from gateway.tick_batcher import TickBatcher

log = logging.getLogger(__name__)

# Bumped whenever CachedAnswer's layout or the key/seal scheme changes, so old entries are never misread.
CACHE_SCHEMA = "v4"
MAC_BYTES = 32
# Plausibility bounds of a cached answer (a sealed entry is ours, but a bug must not become a label).
MAX_CACHED_ITEMS = 10_000
MAX_TEXT_CHARS = 1_024
MAX_COMPUTE_NS = 3_600 * 10**9
# A message whose field 1 is ``repeated Item`` (and nothing else set): parses the cached items.
_ITEMS = search_pb2.SearchResponse


class CacheSecret:
    """Two keys derived from one secret: one hashes the inputs into keys, one seals entries."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the cache secret needs at least 16 bytes")
        self._key_mac = hmac.new(secret, b"tollgate cache keys", hashlib.sha256).digest()
        self._seal_mac = hmac.new(secret, b"tollgate cache entries", hashlib.sha256).digest()

    def digest(self, inputs: Sequence[object]) -> str:
        body = json.dumps(list(inputs), separators=(",", ":")).encode()
        return hmac.digest(self._key_mac, body, "sha256").hex()[:32]

    def seal(self, key: str, payload: bytes) -> bytes:
        """MAC over the key too, so a valid entry cannot be copied under another key."""
        return self._mac(key, payload) + payload

    def unseal(self, key: str, raw: bytes) -> bytes | None:
        mac, payload = raw[:MAC_BYTES], raw[MAC_BYTES:]
        return payload if hmac.compare_digest(mac, self._mac(key, payload)) else None

    def _mac(self, key: str, payload: bytes) -> bytes:
        return hmac.digest(self._seal_mac, key.encode() + b"\0" + payload, "sha256")


class CacheKeys:
    """Builds the key of an answer: the model's identity (name, version, weights' build) plus a
    keyed hash of every input that changes the answer, in a fixed order."""

    def __init__(self, prefix: str, secret: CacheSecret) -> None:
        self._prefix = prefix
        self._secret = secret

    def key(self, rpc: str, model: str, version: str, build_id: str, inputs: Sequence[object]) -> str:
        return f"{self._prefix}{rpc.lower()}:{CACHE_SCHEMA}:{model}:{version}:{build_id}:{self._secret.digest(inputs)}"


_HEADER = struct.Struct("<QIH?H")  # compute_ns, item_count, len(version), personalized, len(pool)


@dataclass(frozen=True)
class CachedAnswer:
    """A model answer as cached, with where it ran and the compute it cost (to price what a hit avoids).

    Stored as bytes: a fixed header, the model version and pool, then the items exactly as they
    go on the wire, so a hit is answered with the stored bytes, never rebuilt item by item."""

    answer: ModelAnswer
    pool: str

    def to_bytes(self) -> bytes:
        answer = self.answer
        version, pool = answer.model_version.encode(), self.pool.encode()
        header = _HEADER.pack(answer.compute_ns, answer.item_count, len(version), answer.personalized, len(pool))
        return header + version + pool + answer.items_wire

    @classmethod
    def from_bytes(cls, raw: bytes, known_pools: Collection[str]) -> CachedAnswer:
        """Parses and checks an entry; ValueError for anything that is not a plausible answer."""
        try:
            compute_ns, count, version_len, personalized, pool_len = _HEADER.unpack_from(raw)
        except struct.error:
            raise ValueError("header") from None
        start = _HEADER.size + version_len + pool_len
        version = raw[_HEADER.size : _HEADER.size + version_len].decode()
        pool = raw[_HEADER.size + version_len : start].decode()
        if pool not in known_pools:
            raise ValueError("unknown pool")
        if not 0 <= compute_ns <= MAX_COMPUTE_NS:
            raise ValueError("compute_ns")
        if count > MAX_CACHED_ITEMS:
            raise ValueError("items")
        items = raw[start:]
        _check_items(items, count)
        return cls(ModelAnswer(items, count, compute_ns, version, personalized), pool)


def _check_items(wire: bytes, count: int) -> None:
    """The items must parse as ``count`` Items, nothing else, with texts of plausible length."""
    try:
        parsed = _ITEMS.FromString(wire)
    except DecodeError:
        raise ValueError("items do not parse") from None
    if len(parsed.items) != count or parsed.HasField("info") or parsed.ByteSize() != len(wire):
        raise ValueError("items")
    for item in parsed.items:
        if len(item.item_id) > MAX_TEXT_CHARS or len(item.title) > MAX_TEXT_CHARS:
            raise ValueError("item text")


class CacheClient(Protocol):
    """What the cache needs of Redis (gateway/redis_pipe.py). ``reply_timeout_s``: the budget
    the client itself bounds ``get`` by (raising TimeoutError), or None: the cache bounds it."""

    reply_timeout_s: float | None

    async def get(self, key: str) -> bytes | None: ...

    async def set_many(self, entries: Sequence[tuple[str, bytes]], ttl_s: int) -> None: ...

    def set_later(
        self, entries: Sequence[tuple[str, bytes]], ttl_s: int, on_reply: Callable[[Exception | None], object]
    ) -> bool:
        """Sends the SETs without waiting, each reply to ``on_reply``; False when it cannot now."""
        ...

    async def aclose(self) -> None: ...


class ResultCache:
    """Get/put of sealed answers with a TTL, bounded by a per-operation time budget and a breaker."""

    def __init__(
        self,
        client: CacheClient,
        ttl_s: int,
        timeout_s: float,
        secret: CacheSecret,
        known_pools: Collection[str],
        breaker: CircuitBreaker,
        metrics: HealthMetrics | None = None,
    ) -> None:
        self._client = client
        self._metrics = metrics or HealthMetrics(CollectorRegistry())
        self._ttl_s = ttl_s
        self._timeout_s = timeout_s
        self._secret = secret
        self._known_pools = frozenset(known_pools)
        self._breaker = breaker
        bound = client.reply_timeout_s
        self._client_bounds_get = bound is not None and bound <= timeout_s
        self._stores: TickBatcher[tuple[str, bytes], None] = TickBatcher(self._set_many, self._stored_later)

    @classmethod
    def from_url(
        cls,
        url: str,
        ttl_s: int,
        timeout_s: float,
        secret: CacheSecret,
        known_pools: Collection[str],
        breaker: CircuitBreaker,
        metrics: HealthMetrics | None = None,
    ) -> ResultCache:
        return cls(RedisPipe(url, timeout_s, timeout_s), ttl_s, timeout_s, secret, known_pools, breaker, metrics)

    async def get(self, key: str) -> CachedAnswer | None:
        if not self._breaker.allow():
            return None
        try:
            if self._client_bounds_get:  # one timer per write for all the lookups in it
                raw = await self._client.get(key)
            else:
                async with asyncio.timeout(self._timeout_s):
                    raw = await self._client.get(key)
        except (RedisError, OSError, TimeoutError) as exc:
            self._report_failure("get", exc)
            return None
        self._report_success()
        if raw is None:
            return None
        payload = self._secret.unseal(key, raw)
        try:
            if payload is None:
                raise ValueError("bad seal")
            return CachedAnswer.from_bytes(payload, self._known_pools)
        except (ValueError, TypeError) as exc:
            self._metrics.cache_rejected.inc()
            log.debug("cache entry rejected (%s); served as a miss", exc)
            return None

    async def put(self, key: str, answer: CachedAnswer) -> bool:
        if not self._breaker.allow():
            return False
        try:
            entry = self._secret.seal(key, answer.to_bytes())
        except struct.error:  # a field out of the layout's range: such an answer is not cached
            log.warning("answer not cached: it does not fit the cache entry layout")
            return False
        try:
            await self._stores.submit((key, entry))
        except (RedisError, OSError, TimeoutError) as exc:
            self._report_failure("put", exc)
            return False
        self._report_success()
        return True

    def put_later(self, key: str, answer: CachedAnswer) -> bool:
        """Stores without making the call wait for Redis: the SET goes out with the other
        commands of this loop iteration, before the answer reaches its caller, and its reply is
        counted by a callback (no future, task or timer per store); a failure is counted (and
        trips the breaker) like any other. While the client cannot send now (not connected
        yet) the store goes through a batch that connects first. False when the entry is not
        even sent."""
        if not self._breaker.allow():
            return False
        try:
            entry = self._secret.seal(key, answer.to_bytes())
        except struct.error:
            log.warning("answer not cached: it does not fit the cache entry layout")
            return False
        if not self._client.set_later(((key, entry),), self._ttl_s, self._store_replied):
            self._stores.submit_nowait((key, entry))
        return True

    def _store_replied(self, error: Exception | None) -> None:
        self._stored_later(error, 1)

    def _stored_later(self, error: Exception | None, count: int) -> None:
        if error is None:
            self._report_success()
        elif isinstance(error, (RedisError, OSError, TimeoutError)):
            for _ in range(count):
                self._report_failure("put", error)
        else:
            log.error("cache store failed unexpectedly: %r", error)

    async def _set_many(self, entries: list[tuple[str, bytes]]) -> list[None]:
        """The SETs of the same loop iteration, pipelined in one write, within the budget."""
        async with asyncio.timeout(self._timeout_s):
            await self._client.set_many(entries, self._ttl_s)
        return [None] * len(entries)

    async def close(self) -> None:
        await self._client.aclose()

    def _report_failure(self, operation: str, exc: BaseException) -> None:
        """Counts every failure; logs when the breaker opens, not on every request."""
        self._metrics.cache_errors.labels(operation).inc()
        if self._breaker.failure():
            self._metrics.cache_skipped.set(1)
            log.warning("cache %s failed, skipping the cache for a cool-down: %s", operation, str(exc) or type(exc).__name__)

    def _report_success(self) -> None:
        if self._breaker.success():
            self._metrics.cache_skipped.set(0)
            log.info("cache is answering again; caching resumed")
