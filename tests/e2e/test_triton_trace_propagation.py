"""The gateway's triton.infer span is the parent of Triton's own spans: the model call carries
its W3C traceparent, and a Triton run with ``--trace-config mode=opentelemetry`` (OTLP/HTTP
with JSON bodies, shared/notes/triton-access-and-traces.md) puts its request under it."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import grpc
import pytest

from deploy.local.triton import TritonServer
from gateway.api import recommendation_pb2, recommendation_pb2_grpc
from tests.e2e.conftest import TRITON_MODELS

pytestmark = pytest.mark.e2e


class _Receiver(BaseHTTPRequestHandler):
    spans: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        for resource in body.get("resourceSpans", []):
            for scope in resource.get("scopeSpans", []):
                _Receiver.spans.extend(scope.get("spans", []))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def otlp_http() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def traced_triton(model_repository: Path, otlp_http: str, tmp_path_factory) -> Iterator[TritonServer]:
    trace_args = ["mode=opentelemetry", f"opentelemetry,url={otlp_http}/v1/traces", "level=TIMESTAMPS", "rate=1", "count=-1"]
    server = TritonServer(
        model_repository,
        models=TRITON_MODELS,
        extra_args=[arg for value in trace_args for arg in ("--trace-config", value)],
        log_path=tmp_path_factory.mktemp("traced-triton") / "triton.log",
    )
    server.start(ready_timeout_s=120)
    try:
        yield server
    finally:
        server.stop()


def test_tritons_spans_are_children_of_the_gateways_triton_infer_span(traced_triton, gateway_factory, buyers):
    gateway = gateway_factory(triton_url=traced_triton.grpc_url, trace_sample_ratio=1.0)
    trace_id = secrets.token_hex(16)
    with grpc.insecure_channel(gateway.address) as channel:
        recommendation_pb2_grpc.RecommendationServiceStub(channel).Recommend(
            recommendation_pb2.RecommendRequest(
                user_id=buyers[0], k=4, feature="home_feed", exclude_item_ids=[secrets.token_hex(6)]
            ),
            timeout=10,
            metadata=(("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01"), *gateway.metadata()),
        )
    infer_span_id = _gateway_span(gateway.trace_file, trace_id, "triton.infer")["context"]["span_id"].removeprefix("0x")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        mine = [span for span in _Receiver.spans if span.get("traceId") == trace_id]
        if any(span.get("parentSpanId") == infer_span_id for span in mine):
            break
        time.sleep(0.2)
    mine = [span for span in _Receiver.spans if span.get("traceId") == trace_id]
    assert mine, "Triton exported no span of the caller's trace"
    assert any(span.get("parentSpanId") == infer_span_id for span in mine), (infer_span_id, mine)


def _gateway_span(trace_file: Path, trace_id: str, name: str, timeout_s: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if trace_file.exists():
            for line in trace_file.read_text().splitlines():
                span = json.loads(line)
                if span["name"] == name and span["context"]["trace_id"] == f"0x{trace_id}":
                    return span
        time.sleep(0.1)
    raise AssertionError(f"no {name} span of trace {trace_id} in {trace_file}")
