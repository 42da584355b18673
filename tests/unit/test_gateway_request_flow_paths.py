"""RequestFlow's paths not covered elsewhere: refusing calls while nothing can record them, the
deadline arithmetic on a scripted clock (margin, exact deadline), the cache operations a call
is billed for, what its spans say, and a bug (not a RequestError) still settled as INTERNAL."""

import asyncio
import random
from types import SimpleNamespace

import pytest

from costing.ledger import LedgerWriter, SqliteLedger
from costing.price_book import load_price_book
from gateway import telemetry_attributes as attr
from gateway.call_tracing import CallTracer
from gateway.errors import BackendUnavailable
from gateway.request_flow import Caller, RequestFlow, _deadline_passed
from gateway.router import Placement
from gateway.settings import Settings
from gateway.settlement import SettledRequestError, Settlement
from gateway.validation import validate_recommend
from tests.unit.test_gateway_request_flow import LIMITS, TENANTS, MemoryCache, ScriptedRoute

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def ledger(tmp_path):
    return SqliteLedger(tmp_path / "ledger.sqlite")


@pytest.fixture
def book():
    return load_price_book(Settings().price_book_path)


class Spans:
    def __init__(self):
        self.ended = []

    def record(self, span):
        self.ended.append(span)

    def named(self, name):
        return [s for s in self.ended if s.name == name]


def traced(spans: Spans):
    return CallTracer(spans, 1.0, random.Random(3)).begin(
        "/svc/Recommend", "svc", "Recommend", f"00-{TRACE_ID}-00f067aa0ba902b7-01", None
    )


def flow_with(ledger, book, **options):
    writer = LedgerWriter(ledger, flush_interval_s=60)
    options.setdefault("cache", None)
    return RequestFlow(settlement=Settlement(book, writer), default_deadline_s=1.5, **options), writer


async def call(flow, route, tenant="acme", time_remaining_s=None, call_trace=None, validate=None):
    caller = Caller(tenant, time_remaining_s, TENANTS.label(tenant, "home_feed"))
    validate = validate or (lambda: validate_recommend("17850", 3, "home_feed", [], LIMITS))
    if call_trace is None:
        return await flow.run(route, caller, validate)
    return await flow.run(route, caller, validate, call_trace)


class Clock:
    """time.perf_counter as gateway.request_flow sees it."""

    def __init__(self):
        self.now = 50.0


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr("gateway.request_flow.time", SimpleNamespace(perf_counter=lambda: clock.now))
    return clock


# --- refusing calls -------------------------------------------------------------------------------


def test_calls_are_refused_only_while_nothing_can_record_them(ledger, book):
    recording = [False]
    flow, _ = flow_with(ledger, book, accepting=lambda: recording[0])
    refusal = flow.refusal()
    assert refusal is not None and refusal.status == "UNAVAILABLE"
    assert refusal.message == (
        "the cost ledger and its journal cannot record calls: refusing them until they can; retry later"
    )
    recording[0] = True
    assert flow.refusal() is None
    assert flow_with(ledger, book)[0].refusal() is None, "no ledger state to consult: accepting"


# --- deadlines ------------------------------------------------------------------------------------


def test_the_model_gets_what_is_left_less_nothing_by_default(ledger, book, clock):
    """1.0 s deadline, 0.4 s already spent: the model gets 0.6 s (no margin unless configured)."""
    flow, _ = flow_with(ledger, book)
    caller = Caller("acme", 1.0, "home_feed")
    clock.now = 50.4
    assert flow._model_timeout_s(caller, 50.0) == pytest.approx(0.6)
    assert flow._model_timeout_s(Caller("acme", None, "home_feed"), 50.0) == 1.5, "no deadline: the default"


def test_the_margin_is_at_most_half_of_what_is_left(ledger, book, clock):
    """margin 0.8 s: with 1.0 s left, half of it (0.5 s) is the margin; with 3.0 s left, 0.8 s;
    with the deadline already past, no margin is added to what is already negative."""
    flow, _ = flow_with(ledger, book, deadline_margin_s=0.8)
    assert flow._model_timeout_s(Caller("acme", 1.0, "home_feed"), 50.0) == pytest.approx(0.5)
    assert flow._model_timeout_s(Caller("acme", 3.0, "home_feed"), 50.0) == pytest.approx(2.2)
    clock.now = 51.5
    assert flow._model_timeout_s(Caller("acme", 1.0, "home_feed"), 50.0) == pytest.approx(-0.5)


def test_an_answer_ready_exactly_at_the_deadline_is_too_late(clock):
    clock.now = 50.5
    assert _deadline_passed(Caller("acme", 0.5, "home_feed"), 50.0)
    assert not _deadline_passed(Caller("acme", 0.5001, "home_feed"), 50.0)
    assert not _deadline_passed(Caller("acme", None, "home_feed"), 0.0)


async def test_a_call_the_caller_left_ends_its_span_as_cancelled(ledger, book):
    entered = asyncio.Event()

    class Hanging(ScriptedRoute):
        async def answer(self, query, timeout_s, metadata=None, version=None):
            entered.set()
            await asyncio.Event().wait()

    spans = Spans()
    flow, writer = flow_with(ledger, book)
    task = asyncio.create_task(call(flow, Hanging(), call_trace=traced(spans)))
    await asyncio.wait_for(entered.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await writer.close()
    (server,) = spans.named("/svc/Recommend")
    assert server.attributes["rpc.grpc.status_code"] == 1, "CANCELLED"
    assert [r.status for r in ledger.records()] == ["CANCELLED"]


async def test_an_answer_after_the_deadline_says_so(ledger, book):
    class Slow(ScriptedRoute):
        async def answer(self, query, timeout_s, metadata=None, version=None):
            result = await super().answer(query, timeout_s, metadata)
            await asyncio.sleep(0.02)  # the work of a model slower than the 10 ms deadline
            return result

    spans = Spans()
    flow, writer = flow_with(ledger, book)
    with pytest.raises(SettledRequestError) as late:
        await call(flow, Slow(), time_remaining_s=0.01, call_trace=traced(spans))
    await writer.close()
    assert (late.value.status, late.value.message) == (
        "DEADLINE_EXCEEDED", "the answer was ready after the caller's deadline"
    )
    (server,) = spans.named("/svc/Recommend")
    assert server.attributes["rpc.grpc.status_code"] == 4, "DEADLINE_EXCEEDED, on the call's own span"


# --- what a call is billed for and what its spans say ---------------------------------------------


async def test_a_miss_makes_two_cache_operations_and_a_hit_one(ledger, book):
    route = ScriptedRoute()
    flow, writer = flow_with(ledger, book, cache=MemoryCache())
    miss = await call(flow, route)
    hit = await call(flow, route)
    await writer.close()
    ops = {r.request_id: r.cache_ops for r in ledger.records()}
    assert (ops[miss.info.request_id], ops[hit.info.request_id]) == (2, 1)
    assert len(miss.info.request_id) == 32 and int(miss.info.request_id, 16) >= 0


async def test_the_spans_of_a_miss_then_a_hit(ledger, book):
    spans = Spans()
    route = ScriptedRoute()
    flow, writer = flow_with(ledger, book, cache=MemoryCache())
    await call(flow, route, call_trace=traced(spans))
    await call(flow, route, call_trace=traced(spans))
    await writer.close()
    lookups = spans.named("cache.lookup")
    assert [s.attributes[attr.CACHE_HIT] for s in lookups] == [False, True]
    assert len(spans.named("cache.store")) == 1, "only the miss stores"
    (infer,) = spans.named("triton.infer")
    assert infer.attributes[attr.MODEL_NAME] == "recommender"
    assert len(spans.named("/svc/Recommend")) == 2, "both server spans are ended by the settlement"


async def test_without_a_trace_the_model_call_carries_no_metadata(ledger, book):
    route = ScriptedRoute()
    flow, writer = flow_with(ledger, book)
    await call(flow, route)
    await writer.close()
    assert route.metadata == [None]


@pytest.mark.parametrize(
    ("endpoint", "address", "port"),
    [
        ("[::1]:8001", "::1", 8001),
        ("triton.internal:9001", "triton.internal", 9001),
        ("X-triton-X:9001", "X-triton-X", 9001),
        ("unix-socket", "unix-socket", None),
    ],
)
async def test_the_infer_span_names_the_server_that_answered(ledger, book, endpoint, address, port):
    class Route(ScriptedRoute):
        async def answer(self, query, timeout_s, metadata=None, version=None):
            answer, _ = await super().answer(query, timeout_s, metadata)
            return answer, Placement("cpu-local", "cpu", "private", "primary", 1, endpoint)

    spans = Spans()
    flow, writer = flow_with(ledger, book)
    await call(flow, Route(), call_trace=traced(spans))
    await writer.close()
    (infer,) = spans.named("triton.infer")
    assert infer.attributes["server.address"] == address
    assert infer.attributes.get("server.port") == port


@pytest.mark.parametrize(("error", "status"), [(BackendUnavailable("down"), "UNAVAILABLE"), (KeyError("bug"), "KeyError")])
async def test_a_failed_model_call_marks_its_span_and_the_server_span_with_the_status(ledger, book, error, status):
    spans = Spans()
    flow, writer = flow_with(ledger, book)
    with pytest.raises((SettledRequestError, KeyError)):
        await call(flow, ScriptedRoute(error=error), call_trace=traced(spans))
    await writer.close()
    (infer,) = spans.named("triton.infer")
    assert infer.status_message == status
    (server,) = spans.named("/svc/Recommend")
    expected_grpc = {"UNAVAILABLE": 14, "KeyError": 13}[status]
    assert server.attributes["rpc.grpc.status_code"] == expected_grpc


async def test_a_bug_in_the_route_is_still_settled_as_internal_for_its_tenant(ledger, book):
    flow, writer = flow_with(ledger, book)
    with pytest.raises(KeyError):
        await call(flow, ScriptedRoute(error=KeyError("bug")))
    await writer.close()
    (record,) = ledger.records()
    assert (record.status, record.tenant, record.rpc, len(record.request_id)) == ("INTERNAL", "acme", "Recommend", 32)


async def test_a_budget_check_is_asked_about_the_callers_feature_and_tenant(ledger, book):
    asked = []

    class Decision:
        shed, message = False, ""

    def check(feature, tenant):
        asked.append((feature, tenant))
        return Decision()

    flow, writer = flow_with(ledger, book, budget_check=check)
    await call(flow, ScriptedRoute())
    await writer.close()
    assert asked == [("home_feed", "acme")]
