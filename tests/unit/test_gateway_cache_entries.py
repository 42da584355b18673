"""The result cache's keys, seals and entry checks worked out from their definition (HMAC-SHA256
under labelled sub-keys, a fixed header), each rejection's reason, and what the cache reports
(metrics, logs, return values) when Redis fails."""

import asyncio
import hashlib
import hmac
import logging
import struct

import pytest
from prometheus_client import CollectorRegistry
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.answers import ModelAnswer, RankedItem
from gateway.circuit_breaker import CircuitBreaker
from gateway.health_metrics import HealthMetrics
from gateway.result_cache import (
    MAX_CACHED_ITEMS,
    MAX_COMPUTE_NS,
    MAX_TEXT_CHARS,
    CachedAnswer,
    CacheKeys,
    CacheSecret,
    ResultCache,
)

RAW_SECRET = b"0123456789abcdef"  # exactly 16 bytes, the least allowed
SECRET = CacheSecret(RAW_SECRET)
POOLS = ("cpu-local",)
HEADER = struct.Struct("<QIH?H")


def sub_key(label: bytes) -> bytes:
    return hmac.new(RAW_SECRET, label, hashlib.sha256).digest()


def answer(items=(("85123A", "HEART", 0.5),), compute_ns=12345, version="1", personalized=True, pool="cpu-local"):
    ranked = tuple(RankedItem(*item) for item in items)
    return CachedAnswer(ModelAnswer.of(ranked, compute_ns, version, personalized), pool)


def entry(compute_ns=7, count=0, version=b"1", personalized=False, pool=b"cpu-local", items=b"") -> bytes:
    return HEADER.pack(compute_ns, count, len(version), personalized, len(pool)) + version + pool + items


class DictClient:
    reply_timeout_s = None  # the cache bounds every lookup itself

    def __init__(self):
        self.data: dict[str, bytes] = {}
        self.ttls: list[int] = []

    async def get(self, key):
        return self.data.get(key)

    async def set_many(self, entries, ttl_s):
        self.ttls.append(ttl_s)
        self.data.update(entries)

    def set_later(self, entries, ttl_s, on_reply):
        return False  # as RedisPipe before it is connected: stores go through set_many

    async def aclose(self):
        pass


class DownClient(DictClient):
    def __init__(self, error: Exception):
        super().__init__()
        self.error = error

    async def get(self, key):
        raise self.error

    async def set_many(self, entries, ttl_s):
        raise self.error


def cache(client, metrics=None, breaker=None, ttl_s=30, timeout_s=0.5):
    return ResultCache(client, ttl_s, timeout_s, SECRET, POOLS, breaker or CircuitBreaker(2, 60.0), metrics)


def sample(metrics: HealthMetrics, name: str, **labels) -> float:
    registry = metrics.registry if hasattr(metrics, "registry") else None
    assert registry is not None
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def new_metrics() -> HealthMetrics:
    registry = CollectorRegistry()
    metrics = HealthMetrics(registry)
    metrics.registry = registry
    return metrics


# --- secret, keys and seals ---------------------------------------------------------------------


def test_the_secret_needs_sixteen_bytes():
    CacheSecret(RAW_SECRET)
    with pytest.raises(ValueError, match="^the cache secret needs at least 16 bytes$"):
        CacheSecret(RAW_SECRET[:15])


def test_a_key_is_the_prefix_rpc_schema_model_version_build_and_the_keyed_hash_of_the_inputs():
    """digest = HMAC-SHA256(HMAC-SHA256(secret, "tollgate cache keys"), compact JSON)[:32 hex]."""
    body = b'["17850",10,["a","b"]]'
    digest = hmac.new(sub_key(b"tollgate cache keys"), body, hashlib.sha256).hexdigest()[:32]
    secret = CacheSecret(RAW_SECRET)  # built here, not at import: what is tested is this call
    assert secret.digest(["17850", 10, ["a", "b"]]) == digest
    mapping = hmac.new(sub_key(b"tollgate cache keys"), b'[{"k":1}]', hashlib.sha256).hexdigest()[:32]
    assert secret.digest([{"k": 1}]) == mapping, "compact separators for mappings too"
    keys = CacheKeys("tg:", secret)
    assert keys.key("Recommend", "recommender", "3", "build-9", ["17850", 10, ["a", "b"]]) == (
        f"tg:recommend:v4:recommender:3:build-9:{digest}"
    )


def test_a_seal_is_the_hmac_of_key_nul_payload_under_the_entries_sub_key():
    mac = hmac.new(sub_key(b"tollgate cache entries"), b"k1\0payload", hashlib.sha256).digest()
    secret = CacheSecret(RAW_SECRET)
    assert secret.seal("k1", b"payload") == mac + b"payload"
    assert secret.unseal("k1", mac + b"payload") == b"payload"
    assert secret.unseal("k2", mac + b"payload") is None


# --- entries -------------------------------------------------------------------------------------


def test_an_entry_is_the_header_then_version_pool_and_the_items_wire():
    cached = answer(compute_ns=99, version="12", personalized=True)
    raw = cached.to_bytes()
    assert raw[: HEADER.size] == HEADER.pack(99, 1, 2, True, 9)
    assert raw[HEADER.size : HEADER.size + 11] == b"12cpu-local"
    assert raw[HEADER.size + 11 :] == cached.answer.items_wire
    assert CachedAnswer.from_bytes(raw, POOLS) == cached


def test_compute_bounds_are_inclusive():
    assert CachedAnswer.from_bytes(entry(compute_ns=0), POOLS).answer.compute_ns == 0
    assert CachedAnswer.from_bytes(entry(compute_ns=MAX_COMPUTE_NS), POOLS).answer.compute_ns == MAX_COMPUTE_NS
    with pytest.raises(ValueError, match="^compute_ns$"):
        CachedAnswer.from_bytes(entry(compute_ns=MAX_COMPUTE_NS + 1), POOLS)


def test_item_texts_of_exactly_the_limit_are_accepted_one_more_is_not():
    at_limit = answer(items=(("i" * MAX_TEXT_CHARS, "t" * MAX_TEXT_CHARS, 1.0),))
    assert CachedAnswer.from_bytes(at_limit.to_bytes(), POOLS) == at_limit
    for item in (("i" * (MAX_TEXT_CHARS + 1), "t", 1.0), ("i", "t" * (MAX_TEXT_CHARS + 1), 1.0)):
        with pytest.raises(ValueError, match="^item text$"):
            CachedAnswer.from_bytes(answer(items=(item,)).to_bytes(), POOLS)


def test_the_most_items_an_entry_may_hold_is_accepted():
    many = answer(items=tuple((str(n), "", 0.0) for n in range(MAX_CACHED_ITEMS)))
    assert CachedAnswer.from_bytes(many.to_bytes(), POOLS).answer.item_count == MAX_CACHED_ITEMS
    with pytest.raises(ValueError, match="^items$"):
        CachedAnswer.from_bytes(entry(count=MAX_CACHED_ITEMS + 1), POOLS)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"short", "header"),
        (entry(pool=b"gpu-elsewhere"), "unknown pool"),
        (entry(count=1, items=b"\xff\xff"), "items do not parse"),
        (entry(count=2, items=answer().answer.items_wire), "items"),
    ],
)
def test_each_rejection_names_its_reason(raw, reason):
    with pytest.raises(ValueError) as raised:
        CachedAnswer.from_bytes(raw, POOLS)
    assert str(raised.value) == reason


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        (lambda key: b"\0" * 40, "bad seal"),
        (lambda key: SECRET.seal(key, entry(pool=b"nowhere")), "unknown pool"),
    ],
)
async def test_a_rejected_entry_is_a_counted_miss_logged_with_its_reason(stored, reason, caplog):
    client, metrics = DictClient(), new_metrics()
    client.data["k"] = stored("k")
    with caplog.at_level(logging.DEBUG, logger="gateway.result_cache"):
        assert await cache(client, metrics).get("k") is None
    assert sample(metrics, "tollgate_cache_rejected_entries_total") == 1
    assert caplog.messages == [f"cache entry rejected ({reason}); served as a miss"]


# --- put, put_later and failures ------------------------------------------------------------------


async def test_stores_carry_the_ttl_and_a_put_is_readable_back():
    client = DictClient()
    c = cache(client, ttl_s=30)
    assert await c.put("k", answer()) is True
    assert c.put_later("k2", answer(compute_ns=1)) is True
    await asyncio.sleep(0)  # the loop iteration that writes the later store
    await asyncio.sleep(0)
    assert client.ttls == [30, 30]
    assert await c.get("k2") == answer(compute_ns=1)


@pytest.mark.parametrize(
    "unfit", [answer(compute_ns=2**64), answer(pool="p" * 70_000), answer(version="v" * 70_000)]
)
async def test_an_answer_that_does_not_fit_the_layout_is_not_cached(unfit, caplog):
    client = DictClient()
    c = cache(client)
    with caplog.at_level(logging.WARNING, logger="gateway.result_cache"):
        assert await c.put("k", unfit) is False
        assert c.put_later("k", unfit) is False
    assert client.data == {}
    assert caplog.messages == ["answer not cached: it does not fit the cache entry layout"] * 2


async def test_failures_are_counted_by_operation_and_the_breaker_opening_is_logged_once(caplog):
    metrics = new_metrics()
    c = cache(DownClient(RedisConnectionError("redis went away")), metrics, breaker=CircuitBreaker(2, 60.0))
    with caplog.at_level(logging.INFO, logger="gateway.result_cache"):
        assert await c.get("k") is None
        assert await c.put("k", answer()) is False
        assert await c.get("k") is None, "open: skipped"
        assert await c.put("k", answer()) is False, "open: skipped"
        assert c.put_later("k", answer()) is False, "open: not even sent"
    assert sample(metrics, "tollgate_cache_errors_total", operation="get") == 1
    assert sample(metrics, "tollgate_cache_errors_total", operation="put") == 1
    assert sample(metrics, "tollgate_cache_circuit_open") == 1
    assert caplog.messages == ["cache put failed, skipping the cache for a cool-down: redis went away"]


async def test_an_error_without_text_is_logged_by_its_type():
    metrics = new_metrics()
    c = cache(DownClient(TimeoutError()), metrics, breaker=CircuitBreaker(1, 60.0))
    logger = logging.getLogger("gateway.result_cache")
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger.addHandler(handler)
    try:
        assert await c.get("k") is None
    finally:
        logger.removeHandler(handler)
    assert seen == ["cache get failed, skipping the cache for a cool-down: TimeoutError"]


async def test_the_breaker_closing_resets_the_gauge_and_says_so(caplog):
    now = [0.0]
    metrics = new_metrics()
    client = DownClient(RedisConnectionError("down"))
    c = cache(client, metrics, breaker=CircuitBreaker(1, 5.0, clock=lambda: now[0]))
    assert await c.get("k") is None
    assert sample(metrics, "tollgate_cache_circuit_open") == 1
    now[0] = 5.0
    healthy = DictClient()
    client.get = healthy.get
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gateway.result_cache"):
        assert await c.get("k") is None
    assert sample(metrics, "tollgate_cache_circuit_open") == 0
    assert caplog.messages == ["cache is answering again; caching resumed"]


async def test_each_failed_later_store_counts_once_and_a_bug_is_logged_not_counted(caplog):
    metrics = new_metrics()
    c = cache(DownClient(RedisConnectionError("down")), metrics, breaker=CircuitBreaker(100, 60.0))
    for n in range(3):
        assert c.put_later(f"k{n}", answer())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert sample(metrics, "tollgate_cache_errors_total", operation="put") == 3

    opening = cache(DownClient(RedisConnectionError("redis went away")), new_metrics(), breaker=CircuitBreaker(1, 60.0))
    with caplog.at_level(logging.WARNING, logger="gateway.result_cache"):
        opening.put_later("k", answer())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    assert caplog.messages == ["cache put failed, skipping the cache for a cool-down: redis went away"]
    caplog.clear()

    broken = new_metrics()
    b = cache(DownClient(KeyError("bug")), broken)
    with caplog.at_level(logging.ERROR, logger="gateway.result_cache"):
        b.put_later("k", answer())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    assert sample(broken, "tollgate_cache_errors_total", operation="put") == 0
    assert caplog.messages == ["cache store failed unexpectedly: KeyError('bug')"]


async def test_a_store_that_hangs_is_cut_at_the_budget_and_counted():
    class Hanging(DictClient):
        async def set_many(self, entries, ttl_s):
            await asyncio.Event().wait()

    metrics = new_metrics()
    c = cache(Hanging(), metrics, timeout_s=0.01)
    # Bounded here too, so that a cache that never cuts the store fails this test instead of hanging it.
    assert await asyncio.wait_for(c.put("k", answer()), 5.0) is False
    assert sample(metrics, "tollgate_cache_errors_total", operation="put") == 1


async def test_from_url_reports_into_the_given_metrics():
    metrics = new_metrics()
    c = ResultCache.from_url("redis://127.0.0.1:1/0", 30, 0.5, SECRET, POOLS, CircuitBreaker(5, 60.0), metrics)
    assert await c.get("k") is None
    assert sample(metrics, "tollgate_cache_errors_total", operation="get") == 1
    await c.close()
