"""Spans leave the gateway over real OTLP/gRPC: a collector stand-in on loopback receives them."""

from __future__ import annotations

import secrets
import time
from concurrent import futures

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from gateway import telemetry_attributes as attr
from gateway.api import recommendation_pb2, recommendation_pb2_grpc

pytestmark = pytest.mark.e2e


class OtlpReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Keeps every span it is sent, as a collector's OTLP receiver would take them."""

    def __init__(self) -> None:
        self.spans = []

    def Export(self, request, context):
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def otlp_receiver():
    receiver = OtlpReceiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")  # bound once, here: the port it got is handed on
    server.start()
    yield receiver, f"http://127.0.0.1:{port}"
    server.stop(grace=None)


def test_an_otlp_endpoint_gets_the_cost_bearing_span_of_the_callers_trace(
    otlp_receiver, gateway_factory, cache_prefix, buyers, triton_server
):
    receiver, endpoint = otlp_receiver
    # A cache of its own: a miss whatever ran before, so the trace holds the triton.infer span.
    gateway = gateway_factory(trace_exporter="auto", otlp_endpoint=endpoint, cache_prefix=f"{cache_prefix}otlp:")
    trace_id = secrets.token_hex(16)
    with grpc.insecure_channel(gateway.address) as channel:
        response = recommendation_pb2_grpc.RecommendationServiceStub(channel).Recommend(
            recommendation_pb2.RecommendRequest(user_id=buyers[0], k=5, feature="home_feed"),
            timeout=10,
            metadata=(("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01"), *gateway.metadata()),
        )
    deadline = time.monotonic() + 10
    mine = []
    while time.monotonic() < deadline and not any(s.name.endswith("/Recommend") for s in mine):
        time.sleep(0.1)
        mine = [span for span in receiver.spans if span.trace_id.hex() == trace_id]
    rpc_span = next(span for span in mine if span.name.endswith("/Recommend"))
    attributes = {a.key: a.value for a in rpc_span.attributes}
    assert attributes[attr.COST_TOTAL].double_value == pytest.approx(response.info.cost.total)
    assert attributes[attr.REQUEST_ID].string_value == response.info.request_id
    assert {"cache.lookup", "triton.infer"} <= {span.name for span in mine}
    infer = next(span for span in mine if span.name == "triton.infer")
    infer_attributes = {a.key: a.value for a in infer.attributes}
    host, port = triton_server.grpc_url.rsplit(":", 1)
    assert infer_attributes["server.address"].string_value == host
    assert infer_attributes["server.port"].int_value == int(port)
    assert infer_attributes[attr.POOL].string_value == "cpu-local"
    assert infer.parent_span_id == rpc_span.span_id
