import asyncio
import hashlib
import json
import struct

import pytest

from gateway.answers import ModelAnswer, RankedItem
from gateway.api import common_pb2, search_pb2
from gateway.protobuf_wire import encode_ranked
from gateway.circuit_breaker import CircuitBreaker
from gateway.recommend_route import RecommendRoute
from gateway.result_cache import CachedAnswer, CacheKeys, CacheSecret, ResultCache
from gateway.search_route import SearchRoute
from gateway.triton_model import ModelState
from gateway.validation import RecommendQuery, SearchQuery
from tests.support import unreachable_address

STATE = ModelState(True, "ready", "1", "abc")
SECRET = CacheSecret(b"0123456789abcdef-test-secret")
KEYS = CacheKeys("t:", SECRET)
POOLS = ("cpu-local",)
ANSWER = CachedAnswer(
    ModelAnswer.of(
        (RankedItem("85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 0.5),),
        compute_ns=12345,
        model_version="1",
        personalized=True,
    ),
    pool="cpu-local",
)
QUERY = RecommendQuery(user_id="17850", k=10, feature="home_feed", exclude_item_ids=("a", "b"))


class NamedModel:
    def __init__(self, name):
        self.name = name


def key(query=QUERY, state=STATE):
    return RecommendRoute(NamedModel("recommender"), KEYS).cache_key(query, state)


def test_key_changes_with_every_input_that_changes_the_answer():
    base = key()
    assert key(RecommendQuery("17851", 10, "home_feed", ("a", "b"))) != base
    assert key(RecommendQuery("17850", 11, "home_feed", ("a", "b"))) != base
    assert key(RecommendQuery("17850", 10, "home_feed", ("a",))) != base
    assert key(state=ModelState(True, "ready", "2", "abc")) != base
    assert key(state=ModelState(True, "ready", "1", "abd")) != base
    assert base.startswith("t:recommend:")


def test_feature_does_not_split_the_cache():
    assert key(RecommendQuery("17850", 10, "cart_upsell", ("a", "b"))) == key()


def test_search_keys_differ_from_recommend_keys_and_follow_the_query():
    route = SearchRoute(NamedModel("product_search"), KEYS)
    base = route.cache_key(SearchQuery("red bag", 10, "search_box", ()), STATE)
    assert base.startswith("t:search:")
    assert route.cache_key(SearchQuery("red bag", 10, "search_autocomplete", ()), STATE) == base
    assert route.cache_key(SearchQuery("red bags", 10, "search_box", ()), STATE) != base
    assert route.cache_key(SearchQuery("red bag", 10, "search_box", ("x",)), STATE) != base


def test_keys_hide_the_shopper_id_behind_the_secret():
    """A plain hash of [user_id, k, excludes] is recovered by enumerating short customer ids;
    the keyed hash is not, and another secret gives other keys."""
    plain = hashlib.sha256(json.dumps(["17850", 10, ["a", "b"]], separators=(",", ":")).encode()).hexdigest()[:32]
    assert plain not in key()
    assert "17850" not in key()
    other = CacheKeys("t:", CacheSecret(b"another-secret-of-16-bytes"))
    assert RecommendRoute(NamedModel("recommender"), other).cache_key(QUERY, STATE) != key()


def test_cached_answer_round_trips_through_its_bytes():
    assert CachedAnswer.from_bytes(ANSWER.to_bytes(), POOLS) == ANSWER


def test_the_cached_items_are_the_response_bytes():
    """A hit answers with the stored bytes: they are exactly what protobuf makes of the items."""
    items = [common_pb2.Item(item_id="85123A", title="WHITE HANGING HEART T-LIGHT HOLDER", score=0.5)]
    assert ANSWER.answer.items_wire == search_pb2.SearchResponse(items=items).SerializeToString()


class DictClient:
    """Stands in for Redis in pure-logic tests (the e2e suite uses the real one)."""

    reply_timeout_s = None  # the cache bounds every lookup itself

    def __init__(self):
        self.data = {}
        self.round_trips = 0

    async def get(self, key):
        self.round_trips += 1
        return self.data.get(key)

    async def set_many(self, entries, ttl_s):
        self.round_trips += 1
        self.data.update(entries)

    def set_later(self, entries, ttl_s, on_reply):
        return False  # as RedisPipe before it is connected: stores go through set_many


def _cache(client, timeout_s=0.2, breaker=None):
    return ResultCache(client, 10, timeout_s, SECRET, POOLS, breaker or CircuitBreaker(3, 5.0))


async def test_a_sealed_entry_is_read_back():
    client = DictClient()
    cache = _cache(client)
    assert await cache.put("k", ANSWER)
    assert await cache.get("k") == ANSWER


async def test_a_store_later_is_written_with_its_iteration_and_counted_when_it_fails():
    client = DictClient()
    cache = _cache(client)
    assert cache.put_later("k", ANSWER)
    await asyncio.sleep(0.01)
    assert await cache.get("k") == ANSWER

    class Down(DictClient):
        async def set_many(self, entries, ttl_s):
            raise ConnectionError("down")

    breaker = CircuitBreaker(3, 5.0)
    failing = _cache(Down(), breaker=breaker)
    for _ in range(3):
        failing.put_later("k", ANSWER)
    await asyncio.sleep(0.01)
    assert not breaker.allow(), "three failed stores open the breaker, as awaited ones would"


async def test_stores_of_one_loop_iteration_share_one_round_trip():
    client = DictClient()
    cache = _cache(client)
    answers = [CachedAnswer(ModelAnswer.of((RankedItem(str(i), "T", 1.0),), i + 1, "1"), "cpu-local") for i in range(5)]
    assert all(await asyncio.gather(*(cache.put(f"k{i}", a) for i, a in enumerate(answers))))
    assert client.round_trips == 1, "one pipelined write for the five stores"
    found = await asyncio.gather(*(cache.get(f"k{i}") for i in range(6)))
    assert found == [*answers, None]


def _entry(
    compute_ns=12345, count=1, version=b"1", pool=b"cpu-local", items=None, personalized=True, extra=b""
) -> bytes:
    """A cache entry's payload laid out by hand, to forge implausible ones."""
    items = ANSWER.answer.items_wire if items is None else items
    header = struct.pack("<QIH?H", compute_ns, count, len(version), personalized, len(pool))
    return header + version + pool + items + extra


@pytest.mark.parametrize(
    "entry",
    [
        ANSWER.to_bytes(),  # a well-formed answer without our seal (written by someone else)
        b"\x00" * 40,
        b"",
    ],
)
async def test_an_unsealed_entry_is_a_miss(entry):
    client = DictClient()
    client.data["k"] = entry
    assert await _cache(client).get("k") is None


async def test_a_sealed_entry_moved_to_another_key_is_a_miss():
    client = DictClient()
    cache = _cache(client)
    await cache.put("k1", ANSWER)
    client.data["k2"] = client.data["k1"]
    assert await cache.get("k2") is None


@pytest.mark.parametrize(
    "payload",
    [
        _entry(pool=b"no-such-pool"),
        _entry(compute_ns=3_600 * 10**9 + 1),
        _entry(count=2),  # fewer items than the header says
        _entry(count=10_001, items=b""),
        _entry(items=b"<script>"),
        _entry(items=ANSWER.answer.items_wire[:-3]),  # truncated
        _entry(extra=b"\x12\x00"),  # a response's info field among the items
        _entry(items=encode_ranked([("x" * 2000, "t", 1.0)])),  # an implausibly long id
        _entry(version=b"\xff\xfe"),  # not UTF-8
        b"short",
    ],
)
async def test_an_implausible_entry_is_a_miss_even_when_sealed(payload):
    client = DictClient()
    client.data["k"] = SECRET.seal("k", payload)
    assert await _cache(client).get("k") is None


async def test_the_breaker_skips_a_failing_cache_then_probes_it():
    now = [0.0]
    calls = []

    class FailingClient:
        healthy = False
        reply_timeout_s = None

        async def get(self, key):
            calls.append(key)
            if not self.healthy:
                raise ConnectionError("down")
            return None

    client = FailingClient()
    cache = _cache(client, breaker=CircuitBreaker(3, 5.0, clock=lambda: now[0]))
    for _ in range(10):
        assert await cache.get("k") is None
    assert len(calls) == 3, "after 3 consecutive failures the cache is not called"
    now[0] = 5.0
    client.healthy = True
    assert await cache.get("k") is None
    assert await cache.get("k") is None
    assert len(calls) == 5, "one probe after the cool-down, then closed again"
async def test_an_unreachable_redis_is_a_miss_not_an_error(caplog):
    cache = ResultCache.from_url(
        f"redis://{unreachable_address()}/0", 10, 0.2, SECRET, POOLS, CircuitBreaker(1, 5.0)
    )
    answer = CachedAnswer(ModelAnswer.of((), 1, "1"), "cpu-local")
    with caplog.at_level("WARNING"):
        assert await cache.get("k") is None
        assert await cache.put("k", answer) is False
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, "one warning when the cache turns bad, not one per call"
    assert "skipping the cache" in warnings[0].getMessage()
    await cache.close()


async def test_a_slow_cache_operation_is_cut_at_its_budget():
    class SlowClient:
        reply_timeout_s = None

        async def get(self, key):
            await asyncio.sleep(5)

    cache = _cache(SlowClient(), timeout_s=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await cache.get("k") is None
    assert loop.time() - started < 1.0


def test_the_breaker_opens_only_after_its_threshold_and_reports_each_change():
    now = [0.0]
    breaker = CircuitBreaker(3, 5.0, clock=lambda: now[0])
    assert [breaker.failure(), breaker.failure()] == [False, False] and breaker.allow()
    breaker.success()  # a success in between resets the count
    assert [breaker.failure(), breaker.failure(), breaker.failure()] == [False, False, True], "opened on the 3rd"
    assert breaker.is_open and not breaker.allow()
    now[0] = 4.99
    assert not breaker.allow(), "still cooling down"
    now[0] = 5.0
    assert breaker.allow() and not breaker.allow(), "one probe at a time"
    assert breaker.failure() is False, "a failed probe re-opens, but is not a new opening"
    assert breaker.is_open and not breaker.allow()
    now[0] = 10.0
    assert breaker.allow()
    assert breaker.success() is True and not breaker.is_open and breaker.allow()
    assert breaker.success() is False, "closing is reported once"


async def test_the_redis_pipe_writes_the_commands_of_one_iteration_at_once_and_matches_replies_in_order():
    from gateway.redis_pipe import _Connection

    class Transport:
        writes = []

        def write(self, data):
            self.writes.append(data)

    connection = _Connection()
    connection.connection_made(Transport())
    futures = [connection.send(f"GET k{i}\r\n".encode(), 1)[0] for i in range(4)]
    assert Transport.writes == []
    await asyncio.sleep(0)
    assert len(Transport.writes) == 1 and Transport.writes[0].count(b"GET") == 4
    connection.data_received(b"$1\r\na\r\n$-1\r\n$1\r\nc\r\n")
    connection.data_received(b"-ERR boom\r\n")
    assert [f.result() for f in futures[:3]] == [b"a", None, b"c"]
    assert "boom" in str(futures[3].exception())
