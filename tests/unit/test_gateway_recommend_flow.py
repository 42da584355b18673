"""RecommendFlow with an in-memory cache and model (pure logic): every request is settled once,
priced by the price book and recorded in the ledger, whatever its outcome."""

import pytest

from costing.ledger import LedgerWriter, SqliteLedger
from costing.price_book import load_price_book
from gateway.errors import BackendUnavailable, DeadlineExceeded
from gateway.recommend_flow import INVALID_FEATURE, RecommendCall, RecommendFlow, SettledRequestError
from gateway.settings import Settings
from gateway.triton_recommender import ModelAnswer, PoolState, RankedItem
from gateway.validation import Limits

COMPUTE_NS = 2_000_000


class MemoryCache:
    def __init__(self):
        self.entries = {}

    async def get(self, key):
        return self.entries.get(key)

    async def put(self, key, answer):
        self.entries[key] = answer
        return True


class ScriptedModel:
    model_name = "recommender"
    pool_name = "cpu-local"

    def __init__(self, error=None, ready=True):
        self.error = error
        self.calls = []
        self.timeouts = []
        self.state = PoolState(ready, "ready" if ready else "Triton at 127.0.0.1:1 is unreachable", "1", "b1" if ready else "")

    async def recommend(self, query, timeout_s):
        self.calls.append(query)
        self.timeouts.append(timeout_s)
        if self.error:
            raise self.error
        items = tuple(RankedItem(f"item{i}", f"TITLE {i}", 1.0 - i / 10) for i in range(query.k))
        return ModelAnswer(items=items, personalized=True, compute_ns=COMPUTE_NS, model_version="1")


@pytest.fixture
def ledger(tmp_path):
    return SqliteLedger(tmp_path / "ledger.sqlite")


def make_flow(model, ledger):
    settings = Settings()
    book = load_price_book(settings.price_book_path)
    flow = RecommendFlow(
        backend=model,
        cache=MemoryCache(),
        price_book=book,
        ledger=LedgerWriter(ledger, flush_interval_s=60),
        limits=Limits(200, 10, 64),
        cache_prefix="test:",
        default_deadline_s=1.5,
    )
    return flow, book


def call(**overrides):
    fields = dict(user_id="17850", k=3, feature="home_feed", exclude_item_ids=[], tenant="acme", time_remaining_s=None)
    fields.update(overrides)
    return RecommendCall(**fields)


async def test_a_miss_is_priced_on_the_model_compute_and_a_hit_on_what_it_used(ledger):
    model = ScriptedModel()
    flow, book = make_flow(model, ledger)
    miss = await flow.recommend(call())
    hit = await flow.recommend(call(feature="cart_upsell"))
    await flow._ledger.close()

    assert len(model.calls) == 1, "the repeat is served from the cache"
    assert not miss.info.cache_hit and hit.info.cache_hit
    assert miss.info.cost.compute_ns == COMPUTE_NS and hit.info.cost.compute_ns == 0
    expected_compute = COMPUTE_NS / 3.6e12 * book.pool("cpu-local").usd_per_unit_hour
    assert miss.info.cost.compute == pytest.approx(expected_compute)
    assert hit.info.cost.avoided == pytest.approx(expected_compute)
    assert 0 < hit.info.cost.total < miss.info.cost.total
    assert hit.items == miss.items
    assert (hit.info.pool, hit.info.device, hit.info.model_version) == ("cpu-local", "cpu", "1")

    records = {r.request_id: r for r in ledger.records()}
    assert records.keys() == {miss.info.request_id, hit.info.request_id}
    assert records[hit.info.request_id].feature == "cart_upsell"
    assert records[hit.info.request_id].tenant == "acme"
    assert sum(r.cost_total for r in records.values()) == pytest.approx(miss.info.cost.total + hit.info.cost.total)


async def test_the_callers_deadline_bounds_the_model_call(ledger):
    model = ScriptedModel()
    flow, _ = make_flow(model, ledger)
    await flow.recommend(call(time_remaining_s=0.25))
    await flow.recommend(call(user_id="other"))
    assert model.timeouts == [0.25, 1.5]


@pytest.mark.parametrize(
    ("overrides", "model", "status", "feature"),
    [
        ({"k": 0}, ScriptedModel(), "INVALID_ARGUMENT", "home_feed"),
        ({"feature": "Not A Label"}, ScriptedModel(), "INVALID_ARGUMENT", INVALID_FEATURE),
        ({}, ScriptedModel(ready=False), "UNAVAILABLE", "home_feed"),
        ({}, ScriptedModel(error=BackendUnavailable("Triton down")), "UNAVAILABLE", "home_feed"),
        ({}, ScriptedModel(error=DeadlineExceeded("too slow")), "DEADLINE_EXCEEDED", "home_feed"),
    ],
)
async def test_failed_requests_are_settled_and_recorded(ledger, overrides, model, status, feature):
    flow, _ = make_flow(model, ledger)
    with pytest.raises(SettledRequestError) as raised:
        await flow.recommend(call(**overrides))
    await flow._ledger.close()

    error = raised.value
    assert error.status == status
    assert error.info.cost.total > 0, "even a rejected request used gateway CPU; never a silent zero"
    [record] = ledger.records()
    assert (record.request_id, record.status, record.feature) == (error.info.request_id, status, feature)
    assert record.cost_total == pytest.approx(error.info.cost.total)


async def test_an_unready_pool_is_named_in_the_error(ledger):
    flow, _ = make_flow(ScriptedModel(ready=False), ledger)
    with pytest.raises(SettledRequestError) as raised:
        await flow.recommend(call())
    assert "127.0.0.1:1" in raised.value.message


async def test_without_a_cache_every_call_reaches_the_model_and_makes_no_cache_op(ledger):
    model = ScriptedModel()
    flow, _ = make_flow(model, ledger)
    flow._cache = None
    first = await flow.recommend(call())
    second = await flow.recommend(call())
    assert len(model.calls) == 2
    assert not first.info.cache_hit and not second.info.cache_hit
    assert first.info.cost.cache == 0 and second.info.cost.compute > 0
