"""`tollgate call`: what it prints for an answer and for a failure (the real calls: tests/e2e/test_readme_journeys.py)."""

import grpc
from typer.testing import CliRunner

from gateway.api import common_pb2
from gateway.call_cli import describe_answer, describe_failure
from gateway.cli import app
from tests.support import unreachable_address

INFO = common_pb2.ResponseInfo(
    request_id="a" * 32,
    model=common_pb2.ModelRef(name="recommender", version="1", build_id="b1"),
    placement=common_pb2.Placement(pool="cpu-local", device="cpu", location="private", reason="primary", attempts=1),
    cost=common_pb2.Cost(currency="USD", total=6.25e-05, compute=2e-06, gateway=6e-05, compute_ns=1_500_000),
)
ITEMS = [
    common_pb2.Item(item_id="85123A", title="WHITE HANGING HEART T-LIGHT HOLDER", score=0.91),
    common_pb2.Item(item_id="22423", title="REGENCY CAKESTAND 3 TIER", score=0.5),
]


def test_an_answer_shows_the_items_the_cost_and_the_ids():
    text = describe_answer(ITEMS, INFO, {"x-tollgate-request-id": "a" * 32, "x-tollgate-trace-id": "c" * 32})
    lines = text.splitlines()
    assert lines[0].split() == ["1", "85123A", "WHITE", "HANGING", "HEART", "T-LIGHT", "HOLDER", "0.910"]
    assert lines[1].split()[:2] == ["2", "22423"]
    assert "recommender v1, primary on cpu-local (cpu)" in text
    assert "cost        6.25e-05 USD" in text and "model time 1.50 ms" in text
    assert f"request id  {'a' * 32}" in text
    assert f"trace id    {'c' * 32}" in text
    assert text.endswith(f"tollgate trace {'c' * 32}"), "the trace id finds the spans"


def test_without_a_trace_id_the_request_id_finds_the_spans():
    text = describe_answer(ITEMS, INFO, {})
    assert "trace id" not in text
    assert text.endswith(f"tollgate trace {'a' * 32}")


def test_a_failure_shows_the_status_the_message_and_the_cost_when_settled():
    settled = describe_failure(
        grpc.StatusCode.DEADLINE_EXCEEDED,
        "model 'recommender' did not answer within 0.120s",
        {"x-tollgate-cost": "1.5e-05", "x-tollgate-currency": "USD", "x-tollgate-request-id": "d" * 32},
    )
    assert settled.splitlines()[0] == "DEADLINE_EXCEEDED: model 'recommender' did not answer within 0.120s"
    assert "cost        1.5e-05 USD" in settled and f"request id  {'d' * 32}" in settled
    refused = describe_failure(grpc.StatusCode.UNAUTHENTICATED, "unknown API key", {})
    assert refused == "UNAUTHENTICATED: unknown API key"
    own_deadline = describe_failure(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", {})
    assert "Choosing a deadline" in own_deadline, "the caller's own deadline, before the gateway could answer"


def test_no_key_and_no_gateway_are_errors_with_a_clear_message(monkeypatch):
    monkeypatch.delenv("TOLLGATE_API_KEY", raising=False)
    runner = CliRunner()
    no_key = runner.invoke(app, ["call", "recommend", "--user", "17850"])
    assert no_key.exit_code == 2
    assert "TOLLGATE_API_KEY" in no_key.output
    unreachable = runner.invoke(
        app, ["call", "search", "--query", "red bag", "--key", "tgk_x", "--address", unreachable_address(), "--deadline", "0.5"]
    )
    assert unreachable.exit_code == 1
    assert unreachable.output.startswith(("UNAVAILABLE: ", "DEADLINE_EXCEEDED: "))
