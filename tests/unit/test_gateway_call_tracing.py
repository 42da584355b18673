"""Head sampling of calls: a caller's sampled traceparent is always recorded, an unsampled one
never; calls without one are recorded at the configured ratio; every call keeps a W3C trace id
and passes a traceparent on to Triton."""

import random

import pytest

from gateway.call_tracing import NO_TRACE, CallTracer, parse_traceparent

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


class Spans:
    """Records ended spans at once (the gateway's recorder exports them from a thread)."""

    def __init__(self):
        self.ended = []

    def record(self, span):
        self.ended.append(span)


@pytest.fixture
def exporter():
    return Spans()


def tracer_with(exporter, ratio):
    return CallTracer(exporter, ratio, random.Random(7))


def begin(tracer, traceparent=None):
    return tracer.begin("/tollgate.v1.RecommendationService/Recommend", "tollgate.v1.RecommendationService", "Recommend", traceparent, None)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"00-{TRACE_ID}-{PARENT_ID}-01", (TRACE_ID, PARENT_ID, True)),
        (f"00-{TRACE_ID}-{PARENT_ID}-00", (TRACE_ID, PARENT_ID, False)),
        (f"01-{TRACE_ID}-{PARENT_ID}-09-future", (TRACE_ID, PARENT_ID, True)),  # a later version's extra fields
        (f"00-{TRACE_ID}-{PARENT_ID}-01-extra", None),  # version 00 has exactly four fields
        (f"00-{'0' * 32}-{PARENT_ID}-01", None),
        (f"00-{TRACE_ID}-{'0' * 16}-01", None),
        (f"ff-{TRACE_ID}-{PARENT_ID}-01", None),
        (f"00-{TRACE_ID.upper()}-{PARENT_ID}-01", None),
        ("garbage", None),
        (None, None),
    ],
)
def test_traceparent_parsing_follows_w3c(header, expected):
    assert parse_traceparent(header) == expected


def test_a_callers_sampled_traceparent_is_always_recorded(exporter):
    call = begin(tracer_with(exporter, 0.0), f"00-{TRACE_ID}-{PARENT_ID}-01")
    assert call.span is not None and call.trace_id == TRACE_ID
    child = call.child("triton.infer")
    assert call.traceparent(child) == f"00-{TRACE_ID}-{child.span_id:016x}-01"
    child.end()
    call.finish("OK", {"tollgate.cost.total": 1.5})
    spans = {span.name: span for span in exporter.ended}
    server = spans["/tollgate.v1.RecommendationService/Recommend"]
    assert server.parent_id == int(PARENT_ID, 16) and server.parent_remote
    assert server.trace_id == int(TRACE_ID, 16)
    assert server.attributes["tollgate.cost.total"] == 1.5
    assert spans["triton.infer"].parent_id == server.span_id


def test_a_callers_unsampled_traceparent_is_never_recorded_but_passed_on(exporter):
    call = begin(tracer_with(exporter, 1.0), f"00-{TRACE_ID}-{PARENT_ID}-00")
    assert call.span is None and call.child("triton.infer") is None
    assert call.trace_id == TRACE_ID
    assert call.traceparent() == f"00-{TRACE_ID}-{PARENT_ID}-00"
    call.finish("OK", {"tollgate.cost.total": 1.0})
    assert exporter.ended == []


def test_calls_without_a_traceparent_are_recorded_at_the_ratio(exporter):
    tracer = tracer_with(exporter, 0.25)
    calls = [begin(tracer) for _ in range(4000)]
    recorded = sum(call.span is not None for call in calls)
    assert 800 < recorded < 1200
    assert len({call.trace_id for call in calls}) == 4000, "every call has a trace id of its own"
    assert all(len(call.trace_id) == 32 for call in calls)
    assert all(begin(tracer_with(exporter, 0.0)).span is None for _ in range(200))
    assert all(begin(tracer_with(exporter, 1.0)).span is not None for _ in range(200))


def test_an_unrecorded_root_passes_an_unsampled_traceparent_on(exporter):
    call = begin(tracer_with(exporter, 0.0))
    header = call.traceparent()
    assert parse_traceparent(header) == (call.trace_id, header[36:52], False)


def test_without_an_exporter_nothing_is_recorded_but_the_callers_trace_goes_on():
    call = CallTracer(None, 1.0).begin("/s/M", "s", "M", f"00-{TRACE_ID}-{PARENT_ID}-01", None)
    assert call.span is None and call.trace_id == TRACE_ID
    assert call.traceparent() == f"00-{TRACE_ID}-{PARENT_ID}-01", "still sampled for whoever is downstream"


def test_tracing_off_has_no_trace_id_and_passes_nothing_on():
    assert NO_TRACE.trace_id == "" and NO_TRACE.traceparent() is None and NO_TRACE.child("x") is None
