"""RequestFlow with an in-memory cache and a scripted model route (pure logic): every request is
settled once, priced by the price book and recorded in the ledger, whatever its outcome."""

import asyncio

import pytest

from costing.ledger import LedgerWriter, SqliteLedger
from costing.price_book import load_price_book
from costing.request_pricer import RequestPricer
from gateway.admission import Admission, TenantRate
from gateway.answers import ModelAnswer, RankedItem
from gateway.errors import BackendUnavailable, DeadlineExceeded
from gateway.request_flow import Caller, RequestFlow
from gateway.result_cache import CacheKeys, CacheSecret
from gateway.router import Placement
from gateway.settings import Settings
from gateway.settlement import SettledRequestError, Settlement
from gateway.tenants import INVALID_FEATURE, TenantConfig, TenantRegistry
from gateway.triton_model import ModelState
from gateway.validation import Limits, validate_recommend

COMPUTE_NS = 2_000_000
LIMITS = Limits(200, 10, 64)
KEYS = CacheKeys("test:", CacheSecret(b"request-flow-test-secret"))


class MemoryCache:
    def __init__(self):
        self.entries = {}

    async def get(self, key):
        return self.entries.get(key)

    async def put(self, key, answer):
        self.entries[key] = answer
        return True

    def put_later(self, key, answer):
        self.entries[key] = answer
        return True


class ScriptedModel:
    name = "recommender"
    pool_name = "cpu-local"
    rollout = None  # no rollout active

    def __init__(self, ready=True):
        reason = "ready" if ready else "Triton at 127.0.0.1:1 is unreachable"
        self.state = ModelState(ready, reason, "1", "b1" if ready else "")


class ScriptedRoute:
    rpc = "Recommend"

    def __init__(self, error=None, ready=True):
        self.model = ScriptedModel(ready)
        self.error = error
        self.calls = []
        self.timeouts = []
        self.metadata = []

    def cache_key(self, query, state):
        return KEYS.key(self.rpc, self.model.name, state.version, state.build_id, [query.user_id, query.k])

    async def answer(self, query, timeout_s, metadata=None, version=None):
        self.calls.append(query)
        self.timeouts.append(timeout_s)
        self.metadata.append(metadata)
        if self.error:
            raise self.error
        items = tuple(RankedItem(f"item{i}", f"TITLE {i}", 1.0 - i / 10) for i in range(query.k))
        answer = ModelAnswer.of(items, compute_ns=COMPUTE_NS, model_version="1", personalized=True)
        return answer, Placement("cpu-local", "cpu", "private", "primary", 1, "127.0.0.1:8001")


@pytest.fixture
def ledger(tmp_path):
    return SqliteLedger(tmp_path / "ledger.sqlite")


@pytest.fixture
def book():
    return load_price_book(Settings().price_book_path)


def make_flow(
    ledger, book, cache="memory", budget_check=None, commit_before_answer=False, durations=None, admission=None,
    deadline_margin_s=0.0,
    egress_path="",
):  # fmt: skip
    writer = LedgerWriter(ledger, flush_interval_s=60)
    observe = (lambda rpc, seconds: durations.append((rpc, seconds))) if durations is not None else None
    pricer = RequestPricer(book, replica="test-replica", egress_path=egress_path)
    flow = RequestFlow(
        cache=MemoryCache() if cache == "memory" else None,
        settlement=Settlement(
            book, writer, commit_before_answer=commit_before_answer, observe_duration=observe, pricer=pricer
        ),
        default_deadline_s=1.5,
        budget_check=budget_check,
        admission=admission,
        deadline_margin_s=deadline_margin_s,
    )
    return flow, writer


TENANTS = TenantRegistry([TenantConfig(id="acme", features=["home_feed", "cart_upsell"])])


async def recommend(flow, route, user_id="17850", k=3, feature="home_feed", tenant="acme", time_remaining_s=None):
    caller = Caller(tenant, time_remaining_s, TENANTS.label(tenant, feature))
    return await flow.run(route, caller, lambda: validate_recommend(user_id, k, feature, [], LIMITS))


async def test_a_miss_is_priced_on_the_model_compute_and_a_hit_on_what_it_used(ledger, book):
    route = ScriptedRoute()
    flow, writer = make_flow(ledger, book)
    miss = await recommend(flow, route)
    hit = await recommend(flow, route, feature="cart_upsell")
    await writer.close()

    assert len(route.calls) == 1, "the repeat is served from the cache"
    assert not miss.info.cache_hit and hit.info.cache_hit
    assert miss.info.cost.compute_ns == COMPUTE_NS and hit.info.cost.compute_ns == 0
    expected_compute = COMPUTE_NS / 3.6e12 * book.pool("cpu-local").usd_per_unit_hour
    assert miss.info.cost.compute == pytest.approx(expected_compute)
    assert hit.info.cost.avoided == pytest.approx(expected_compute)
    assert 0 < hit.info.cost.total < miss.info.cost.total
    assert hit.answer.items_wire == miss.answer.items_wire
    # A hit is served by the cache pool; the pool of the cached answer is what it avoided.
    assert (hit.info.pool, hit.info.device, hit.info.model_version) == ("cache", "redis", "1")
    assert (miss.info.route_reason, miss.info.attempts, miss.info.location) == ("primary", 1, "private")
    assert (hit.info.route_reason, hit.info.attempts) == ("", 0), "a hit was not routed"

    records = {r.request_id: r for r in ledger.records()}
    assert records.keys() == {miss.info.request_id, hit.info.request_id}
    assert records[hit.info.request_id].feature == "cart_upsell"
    assert records[hit.info.request_id].tenant == "acme"
    assert records[hit.info.request_id].rpc == "Recommend"
    assert sum(r.cost_total for r in records.values()) == pytest.approx(miss.info.cost.total + hit.info.cost.total)


async def test_the_callers_deadline_bounds_the_model_call(ledger, book):
    route = ScriptedRoute()
    flow, _ = make_flow(ledger, book)
    await recommend(flow, route, time_remaining_s=0.25)
    await recommend(flow, route, user_id="other")
    assert route.timeouts[0] == pytest.approx(0.25, abs=0.01), "what is left of the deadline"
    assert route.timeouts[1] == 1.5, "the default without one"


async def test_the_model_call_ends_a_margin_before_the_callers_deadline(ledger, book):
    """So the gateway, not the caller's own deadline, ends a call the model is too slow for."""
    route = ScriptedRoute()
    flow, _ = make_flow(ledger, book, deadline_margin_s=0.03)
    await recommend(flow, route, time_remaining_s=1.0)
    await recommend(flow, route, user_id="short", time_remaining_s=0.02)
    await recommend(flow, route, user_id="none")
    assert route.timeouts[0] == pytest.approx(0.97, abs=0.01)
    assert route.timeouts[1] == pytest.approx(0.01, abs=0.005), "at most half the time left"
    assert route.timeouts[2] == 1.5, "no deadline: the default, whole"


async def test_without_a_cache_every_call_reaches_the_model_and_makes_no_cache_op(ledger, book):
    route = ScriptedRoute()
    flow, _ = make_flow(ledger, book, cache=None)
    first = await recommend(flow, route)
    second = await recommend(flow, route)
    assert len(route.calls) == 2
    assert not first.info.cache_hit and not second.info.cache_hit
    assert first.info.cost.cache == 0 and second.info.cost.compute > 0


@pytest.mark.parametrize(
    ("overrides", "route", "status", "feature"),
    [
        ({"k": 0}, ScriptedRoute(), "INVALID_ARGUMENT", "home_feed"),
        ({"feature": "Not A Label"}, ScriptedRoute(), "INVALID_ARGUMENT", INVALID_FEATURE),
        ({}, ScriptedRoute(ready=False), "UNAVAILABLE", "home_feed"),
        ({}, ScriptedRoute(error=BackendUnavailable("Triton down")), "UNAVAILABLE", "home_feed"),
        ({}, ScriptedRoute(error=DeadlineExceeded("too slow")), "DEADLINE_EXCEEDED", "home_feed"),
    ],
)
async def test_failed_requests_are_settled_and_recorded(ledger, book, overrides, route, status, feature):
    flow, writer = make_flow(ledger, book)
    with pytest.raises(SettledRequestError) as raised:
        await recommend(flow, route, **overrides)
    await writer.close()

    error = raised.value
    assert error.status == status
    assert error.info.cost.total > 0, "even a rejected request used gateway CPU; never a silent zero"
    [record] = ledger.records()
    assert (record.request_id, record.status, record.feature) == (error.info.request_id, status, feature)
    assert record.cost_total == pytest.approx(error.info.cost.total)


async def test_an_unready_pool_is_named_in_the_error(ledger, book):
    flow, _ = make_flow(ledger, book)
    with pytest.raises(SettledRequestError) as raised:
        await recommend(flow, ScriptedRoute(ready=False))
    assert "127.0.0.1:1" in raised.value.message


async def test_the_response_bytes_are_priced_as_egress_on_misses_and_hits(ledger, book):
    route = ScriptedRoute()
    flow, writer = make_flow(ledger, book, egress_path="internet")
    miss = await recommend(flow, route, k=5)
    hit = await recommend(flow, route, k=5)
    await writer.close()
    size = len(miss.answer.items_wire)
    assert size > 5 * len("TITLE 0")
    for done in (miss, hit):
        assert done.info.cost.egress_pico == size * 90  # $0.09/GB on the internet path = 90 pico-$ a byte
    records = {r.request_id: r for r in ledger.records()}
    assert {r.response_bytes for r in records.values()} == {size}
    assert {(r.egress_path, r.replica) for r in records.values()} == {("internet", "test-replica")}
    assert records[miss.info.request_id].cost_egress_pico == miss.info.cost.egress_pico
    assert records[miss.info.request_id].route_reason == "primary"


class SpentBudget:
    shed = True
    message = "monthly budget of feature 'home_feed' is spent: 51 of 50 USD"


class OpenBudget:
    shed = False
    message = ""


async def test_a_spent_budget_sheds_its_feature_with_resource_exhausted_and_still_records_it(ledger, book):
    route = ScriptedRoute()
    flow, writer = make_flow(ledger, book, budget_check=lambda f, t: SpentBudget() if f == "home_feed" else OpenBudget())
    with pytest.raises(SettledRequestError) as shed:
        await recommend(flow, route, feature="home_feed")
    served = await recommend(flow, route, feature="cart_upsell")
    await writer.close()
    assert shed.value.status == "RESOURCE_EXHAUSTED" and "home_feed" in shed.value.message
    assert len(route.calls) == 1 and served.info.cost.compute > 0
    statuses = {r.feature: r.status for r in ledger.records()}
    assert statuses == {"home_feed": "RESOURCE_EXHAUSTED", "cart_upsell": "OK"}


async def test_commit_before_answer_writes_the_record_before_the_caller_gets_it(ledger, book):
    route = ScriptedRoute()
    durations = []
    flow, writer = make_flow(ledger, book, commit_before_answer=True, durations=durations)
    done = await recommend(flow, route)
    assert [r.request_id for r in ledger.records()] == [done.info.request_id], "written before the answer"
    with pytest.raises(SettledRequestError) as failed:
        await recommend(flow, route, k=0)
    assert ledger.count() == 2 and failed.value.info.request_id in {r.request_id for r in ledger.records()}
    assert [rpc for rpc, _ in durations] == ["Recommend", "Recommend"] and all(s > 0 for _, s in durations)
    await writer.close()


async def test_without_commit_before_answer_records_wait_for_the_flush(ledger, book):
    flow, writer = make_flow(ledger, book)
    await recommend(flow, ScriptedRoute())
    assert ledger.count() == 0 and writer.pending == 1
    await writer.close()
    assert ledger.count() == 1


class HangingRoute(ScriptedRoute):
    """A model that never answers: the call ends only by cancellation."""

    async def answer(self, query, timeout_s, metadata=None, version=None):
        self.calls.append(query)
        await asyncio.Event().wait()


@pytest.mark.parametrize(("time_remaining_s", "status"), [(None, "CANCELLED"), (0.05, "DEADLINE_EXCEEDED")])
async def test_a_call_cancelled_in_flight_is_recorded_with_its_true_status(ledger, book, time_remaining_s, status):
    """gRPC cancels the handler both when the caller leaves and when its deadline runs out."""
    flow, writer = make_flow(ledger, book, cache=None)
    task = asyncio.create_task(recommend(flow, HangingRoute(), time_remaining_s=time_remaining_s))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await writer.close()
    [record] = ledger.records()
    assert record.status == status


async def test_over_the_concurrency_limit_a_call_is_refused_at_once_and_recorded(ledger, book):
    admission = Admission(max_in_flight=1, rates={})
    flow, writer = make_flow(ledger, book, cache=None, admission=admission)
    first = asyncio.create_task(recommend(flow, HangingRoute()))
    await asyncio.sleep(0.05)
    with pytest.raises(SettledRequestError) as refused:
        await recommend(flow, ScriptedRoute())
    assert refused.value.status == "RESOURCE_EXHAUSTED" and "concurrent" in refused.value.message
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert admission.in_flight == 0, "a cancelled call leaves its slot"
    await recommend(flow, ScriptedRoute())
    await writer.close()
    assert sorted(r.status for r in ledger.records()) == ["CANCELLED", "OK", "RESOURCE_EXHAUSTED"]


async def test_a_tenant_over_its_rate_is_refused_and_others_are_not(ledger, book):
    now = [0.0]
    admission = Admission(None, {"acme": TenantRate(per_second=1.0, burst=2.0)}, clock=lambda: now[0])
    flow, writer = make_flow(ledger, book, admission=admission)
    route = ScriptedRoute()
    await recommend(flow, route)
    await recommend(flow, route)
    with pytest.raises(SettledRequestError) as refused:
        await recommend(flow, route)
    assert refused.value.status == "RESOURCE_EXHAUSTED" and "acme" in refused.value.message
    await recommend(flow, route, tenant="globex")  # no rate set: not limited
    now[0] = 1.0
    await recommend(flow, route)  # one token back after a second
    await writer.close()
    assert [r.status for r in ledger.records()].count("RESOURCE_EXHAUSTED") == 1


class SlowRoute(ScriptedRoute):
    """Answers, but only after ``delay_s``."""

    def __init__(self, delay_s):
        super().__init__()
        self.delay_s = delay_s

    async def answer(self, query, timeout_s, metadata=None, version=None):
        await asyncio.sleep(self.delay_s)
        return await super().answer(query, timeout_s, metadata, version)


async def test_an_answer_ready_after_the_callers_deadline_is_recorded_as_deadline_exceeded(ledger, book):
    flow, writer = make_flow(ledger, book, cache=None)
    with pytest.raises(SettledRequestError) as late:
        await recommend(flow, SlowRoute(0.05), time_remaining_s=0.02)
    on_time = await recommend(flow, SlowRoute(0.0), time_remaining_s=5.0)
    await writer.close()
    assert late.value.status == "DEADLINE_EXCEEDED"
    assert late.value.info.cost.compute > 0, "it still pays for the compute it used"
    assert {r.request_id: r.status for r in ledger.records()} == {
        late.value.info.request_id: "DEADLINE_EXCEEDED", on_time.info.request_id: "OK"
    }


async def test_cost_is_recorded_exactly_whatever_the_sampling_and_sampled_spans_carry_it(ledger, book):
    """Every call is priced, recorded and counted; only the recorded ones get spans, whose cost
    attributes are the recorded cost; the model call carries the traceparent of its span."""
    import random

    from costing.metrics import CostMetrics
    from gateway import telemetry_attributes as attr
    from gateway.call_tracing import CallTracer

    class Spans:
        ended = []

        def record(self, span):
            self.ended.append(span)

    exporter = Spans()
    metrics = CostMetrics()
    writer = LedgerWriter(ledger, flush_interval_s=60, observers=(metrics.observe,))
    flow = RequestFlow(cache=None, settlement=Settlement(book, writer), default_deadline_s=1.5)
    route = ScriptedRoute()
    tracer = CallTracer(exporter, 0.0, random.Random(1))
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    answers = []
    for sampled in [False] * 10 + [True] * 5:
        header = f"00-{trace_id}-00f067aa0ba902b7-01" if sampled else None
        call_trace = tracer.begin("/svc/Recommend", "svc", "Recommend", header, None)
        caller = Caller("acme", None, TENANTS.label("acme", "home_feed"))
        answers.append(await flow.run(route, caller, lambda: validate_recommend("17850", 3, "home_feed", [], LIMITS), call_trace))
    await writer.close()

    records = {r.request_id: r for r in ledger.records()}
    assert records.keys() == {done.info.request_id for done in answers}, "no call is left unrecorded"
    for done in answers:
        assert records[done.info.request_id].cost_total == done.info.cost.total
    assert metrics.total(metrics.cost) == pytest.approx(sum(r.cost_total for r in records.values()))
    spans = exporter.ended
    servers = [s for s in spans if s.name == "/svc/Recommend"]
    infers = [s for s in spans if s.name == "triton.infer"]
    assert len(servers) == 5 and len(infers) == 5, "only the 5 sampled calls are recorded"
    for span in servers:
        request_id = span.attributes[attr.REQUEST_ID]
        assert span.attributes[attr.COST_TOTAL] == records[request_id].cost_total
        assert span.attributes[attr.COMPUTE_NS] == COMPUTE_NS
    for span in infers:
        assert span.attributes["server.address"] == "127.0.0.1" and span.attributes["server.port"] == 8001
        assert span.attributes[attr.POOL] == "cpu-local"
    sent = [dict(metadata or ())["traceparent"] for metadata in route.metadata]
    assert all(header.endswith("-00") for header in sent[:10]), "unsampled: passed on as not sampled"
    assert {header.split("-")[2] for header in sent[10:]} == {f"{s.span_id:016x}" for s in infers}
