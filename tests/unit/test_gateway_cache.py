import asyncio
import hashlib
import json

import pytest

from gateway.answers import ModelAnswer, RankedItem
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
    ModelAnswer(
        items=(RankedItem("85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 0.5),),
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


def test_cached_answer_round_trips_through_json():
    assert CachedAnswer.from_json(ANSWER.to_json(), POOLS) == ANSWER


class DictClient:
    """Stands in for Redis in pure-logic tests (the e2e suite uses the real one)."""

    def __init__(self):
        self.data = {}

    async def get(self, key):
        return self.data.get(key)

    async def set(self, key, value, ex=None):
        self.data[key] = value


def _cache(client, timeout_s=0.2, breaker=None):
    return ResultCache(client, 10, timeout_s, SECRET, POOLS, breaker or CircuitBreaker(3, 5.0))


async def test_a_sealed_entry_is_read_back():
    client = DictClient()
    cache = _cache(client)
    assert await cache.put("k", ANSWER)
    assert await cache.get("k") == ANSWER


def _forged(**changes):
    data = json.loads(ANSWER.to_json())
    for path, value in changes.items():
        target = data
        *parents, leaf = path.split("__")
        for name in parents:
            target = target[name]
        target[leaf] = value
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    "entry",
    [
        _forged(),  # a well-formed answer without our seal (written by someone else)
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
        _forged(pool="no-such-pool"),
        _forged(answer__compute_ns=-1),
        _forged(answer__compute_ns=10**30),
        _forged(answer__compute_ns="12"),
        _forged(answer__items="<script>"),
        _forged(answer__model_version=["1"]),
        b"not json",
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
    answer = CachedAnswer(ModelAnswer((), 1, "1"), "cpu-local")
    with caplog.at_level("WARNING"):
        assert await cache.get("k") is None
        assert await cache.put("k", answer) is False
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, "one warning when the cache turns bad, not one per call"
    assert "skipping the cache" in warnings[0].getMessage()
    await cache.close()


async def test_a_slow_cache_operation_is_cut_at_its_budget():
    class SlowClient:
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
