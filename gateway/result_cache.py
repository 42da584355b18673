"""Redis result cache: keyed-hash keys, sealed entries, and failure-tolerant get/put.

- **Keys** hash every input that changes the answer with HMAC-SHA256 under the gateway's cache
  secret, so nothing stored in Redis lets someone recover a shopper id (short numbers, easily
  enumerated under a plain hash) without the secret.
- **Entries** are sealed with an HMAC under a second key derived from the same secret and
  schema-checked when read: an entry written by anyone else, or one that does not parse into a
  plausible answer from a known pool, is a miss (counted), never an error or a label.
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
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError

from gateway.answers import ModelAnswer, RankedItem
from gateway.circuit_breaker import CircuitBreaker
from gateway.health_metrics import HealthMetrics

log = logging.getLogger(__name__)

# Bumped whenever CachedAnswer's layout or the key/seal scheme changes, so old entries are never misread.
CACHE_SCHEMA = "v3"
MAC_BYTES = 32
# Plausibility bounds of a cached answer (a sealed entry is ours, but a bug must not become a label).
MAX_CACHED_ITEMS = 10_000
MAX_TEXT_CHARS = 1_024
MAX_COMPUTE_NS = 3_600 * 10**9


class CacheSecret:
    """Two keys derived from one secret: one hashes the inputs into keys, one seals entries."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the cache secret needs at least 16 bytes")
        self._key_mac = hmac.new(secret, b"tollgate cache keys", hashlib.sha256).digest()
        self._seal_mac = hmac.new(secret, b"tollgate cache entries", hashlib.sha256).digest()

    def digest(self, inputs: Sequence[object]) -> str:
        body = json.dumps(list(inputs), separators=(",", ":")).encode()
        return hmac.new(self._key_mac, body, hashlib.sha256).hexdigest()[:32]

    def seal(self, key: str, payload: bytes) -> bytes:
        """MAC over the key too, so a valid entry cannot be copied under another key."""
        return self._mac(key, payload) + payload

    def unseal(self, key: str, raw: bytes) -> bytes | None:
        mac, payload = raw[:MAC_BYTES], raw[MAC_BYTES:]
        return payload if hmac.compare_digest(mac, self._mac(key, payload)) else None

    def _mac(self, key: str, payload: bytes) -> bytes:
        return hmac.new(self._seal_mac, key.encode() + b"\0" + payload, hashlib.sha256).digest()


class CacheKeys:
    """Builds the key of an answer: the model's identity (name, version, weights' build) plus a
    keyed hash of every input that changes the answer, in a fixed order."""

    def __init__(self, prefix: str, secret: CacheSecret) -> None:
        self._prefix = prefix
        self._secret = secret

    def key(self, rpc: str, model: str, version: str, build_id: str, inputs: Sequence[object]) -> str:
        return f"{self._prefix}{rpc.lower()}:{CACHE_SCHEMA}:{model}:{version}:{build_id}:{self._secret.digest(inputs)}"


@dataclass(frozen=True)
class CachedAnswer:
    """A model answer as cached, with where it ran and the compute it cost (to price what a hit avoids)."""

    answer: ModelAnswer
    pool: str

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes, known_pools: Collection[str]) -> CachedAnswer:
        """Parses and checks an entry; ValueError for anything that is not a plausible answer."""
        data = json.loads(raw)
        pool, answer = data["pool"], data["answer"]
        if pool not in known_pools:
            raise ValueError("unknown pool")
        items = answer["items"]
        if not isinstance(items, list) or len(items) > MAX_CACHED_ITEMS:
            raise ValueError("items")
        ranked = tuple(_item(item) for item in items)
        compute_ns, version, personalized = answer["compute_ns"], answer["model_version"], answer["personalized"]
        if type(compute_ns) is not int or not 0 <= compute_ns <= MAX_COMPUTE_NS:
            raise ValueError("compute_ns")
        if not _text(version) or type(personalized) is not bool:
            raise ValueError("model_version or personalized")
        return cls(ModelAnswer(ranked, compute_ns, version, personalized), pool)


def _text(value: object) -> bool:
    return isinstance(value, str) and len(value) <= MAX_TEXT_CHARS


def _item(item: dict[str, object]) -> RankedItem:
    item_id, title, score = item["item_id"], item["title"], item["score"]
    if not (_text(item_id) and _text(title) and type(score) in (int, float)):
        raise ValueError("item")
    return RankedItem(item_id, title, float(score))  # type: ignore[arg-type]


class ResultCache:
    """Get/put of sealed answers with a TTL, bounded by a per-operation time budget and a breaker."""

    def __init__(
        self,
        client: aioredis.Redis,
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
        client = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry_on_timeout=False
        )
        return cls(client, ttl_s, timeout_s, secret, known_pools, breaker, metrics)

    async def get(self, key: str) -> CachedAnswer | None:
        if not self._breaker.allow():
            return None
        try:
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
            return CachedAnswer.from_json(payload, self._known_pools)
        except (ValueError, TypeError, KeyError) as exc:
            self._metrics.cache_rejected.inc()
            log.debug("cache entry rejected (%s); served as a miss", exc)
            return None

    async def put(self, key: str, answer: CachedAnswer) -> bool:
        if not self._breaker.allow():
            return False
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._client.set(key, self._secret.seal(key, answer.to_json()), ex=self._ttl_s)
        except (RedisError, OSError, TimeoutError) as exc:
            self._report_failure("put", exc)
            return False
        self._report_success()
        return True

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
