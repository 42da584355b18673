import asyncio

from gateway.answers import ModelAnswer, RankedItem
from gateway.recommend_route import RecommendRoute
from gateway.result_cache import CachedAnswer, ResultCache
from gateway.search_route import SearchRoute
from gateway.triton_model import ModelState
from gateway.validation import RecommendQuery, SearchQuery
from tests.support import unreachable_address

STATE = ModelState(True, "ready", "1", "abc")
QUERY = RecommendQuery(user_id="17850", k=10, feature="home_feed", exclude_item_ids=("a", "b"))


class NamedModel:
    def __init__(self, name):
        self.name = name


def key(query=QUERY, state=STATE):
    return RecommendRoute(NamedModel("recommender"), "t:").cache_key(query, state)


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
    route = SearchRoute(NamedModel("product_search"), "t:")
    base = route.cache_key(SearchQuery("red bag", 10, "search_box", ()), STATE)
    assert base.startswith("t:search:")
    assert route.cache_key(SearchQuery("red bag", 10, "search_autocomplete", ()), STATE) == base
    assert route.cache_key(SearchQuery("red bags", 10, "search_box", ()), STATE) != base
    assert route.cache_key(SearchQuery("red bag", 10, "search_box", ("x",)), STATE) != base


def test_cached_answer_round_trips_through_json():
    answer = CachedAnswer(
        ModelAnswer(
            items=(RankedItem("85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 0.5),),
            compute_ns=12345,
            model_version="1",
            personalized=True,
        ),
        pool="cpu-local",
    )
    assert CachedAnswer.from_json(answer.to_json()) == answer


async def test_an_unreachable_redis_is_a_miss_not_an_error(caplog):
    cache = ResultCache.from_url(f"redis://{unreachable_address()}/0", ttl_s=10, timeout_s=0.2)
    answer = CachedAnswer(ModelAnswer((), 1, "1"), "cpu-local")
    with caplog.at_level("WARNING"):
        assert await cache.get("k") is None
        assert await cache.put("k", answer) is False
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, "one warning when the cache turns bad, not one per call"
    assert "serving uncached" in warnings[0].getMessage()
    await cache.close()


async def test_a_slow_cache_operation_is_cut_at_its_budget():
    class SlowClient:
        async def get(self, key):
            await asyncio.sleep(5)

    cache = ResultCache(SlowClient(), ttl_s=10, timeout_s=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await cache.get("k") is None
    assert loop.time() - started < 1.0
