"""Cost accounting through the running gateway: the CostReport and RecordOutcome RPCs, the
reconciled windows behind the fully loaded cost, the Prometheus endpoint against the ledger,
budgets that alert and shed, and the liveness probe. Real gateway, Triton, Redis and gRPC."""

from __future__ import annotations

import json
import math
import time
import urllib.request

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from costing.ledger import SqliteLedger
from gateway.api import cost_pb2, cost_pb2_grpc, recommendation_pb2, recommendation_pb2_grpc, search_pb2, search_pb2_grpc
from gateway.api_keys import ALL_TENANTS, Role
from tests.support import port_for_later_bind, unreachable_address

pytestmark = pytest.mark.e2e

DEADLINE_S = 10.0
WINDOW_S = 2.0
GRACE_S = 0.6  # above two ledger flush intervals (0.2 s in the e2e gateways)
FEATURES = ("home_feed", "cart_upsell")


def _recommend(gateway, channel, user_id: str, feature: str, tenant: str = "shop-uk"):
    stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
    request = recommendation_pb2.RecommendRequest(user_id=user_id, k=5, feature=feature)
    return stub.Recommend(request, timeout=DEADLINE_S, metadata=gateway.metadata(tenant))


def _report(gateway, channel, by, **fields) -> list[cost_pb2.CostReportRow]:
    """Every row of the report (all pages), read with the global-finance key."""
    stub = cost_pb2_grpc.CostServiceStub(channel)
    rows, token = [], fields.pop("page_token", "")
    while True:
        request = cost_pb2.CostReportRequest(by=by, page_token=token, **fields)
        response = stub.CostReport(request, timeout=DEADLINE_S, metadata=gateway.metadata(ALL_TENANTS, Role.FINANCE_GLOBAL))
        rows += response.rows
        if not response.next_page_token:
            return rows
        token = response.next_page_token


def _scrape(port: int) -> dict[str, float]:
    """Sample name -> value summed over all label sets."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    return sums


def _sleep_past_window_boundary() -> None:
    """Until just after the next window boundary: the reconciler's first window starts there."""
    time.sleep(math.ceil(time.time() / WINDOW_S) * WINDOW_S - time.time() + 0.1)


def _wait_for_windows_until(ledger_path, moment: float, timeout_s: float) -> None:
    """Until the windows up to ``moment`` (epoch seconds) are reconciled and stored."""
    last_start = math.floor(moment / WINDOW_S) * WINDOW_S
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        bookings = SqliteLedger(ledger_path).bookings()
        starts = [booking.window_start.timestamp() for booking in bookings if booking.kind == "window"]
        if starts and max(starts) >= last_start:
            return
        time.sleep(0.3)
    raise AssertionError(f"the window starting {last_start} not reconciled in {ledger_path} after {timeout_s} s")


@pytest.fixture(scope="module")
def accounted(module_gateway_factory):
    """A gateway with short reconciliation windows and a metrics port, after real traffic."""
    metrics_port = port_for_later_bind()
    gateway = module_gateway_factory(
        metrics_port=metrics_port, reconciliation_window_s=WINDOW_S, reconciliation_grace_s=GRACE_S,
        egress_path="internet",  # answers priced as if sent over the internet: egress is not free
    )  # fmt: skip
    responses = []
    _sleep_past_window_boundary()
    with grpc.insecure_channel(gateway.address) as channel:
        for i in range(30):
            responses.append(_recommend(gateway, channel, str(12350 + i % 12), FEATURES[i % 2]))
        search = search_pb2_grpc.SearchServiceStub(channel)
        request = search_pb2.SearchRequest(query="red teapot", k=5, feature="search_box")
        responses.append(search.Search(request, timeout=DEADLINE_S, metadata=gateway.metadata()))
    _wait_for_windows_until(gateway.ledger_path, time.time(), timeout_s=3 * WINDOW_S + GRACE_S + 10)
    return gateway, metrics_port, responses


def test_cost_report_over_grpc_shows_every_request_and_the_fully_loaded_cost(accounted):
    gateway, _, responses = accounted
    with grpc.insecure_channel(gateway.address) as channel:
        rows = _report(gateway, channel, ["feature"])
    groups = {row.group["feature"]: row for row in rows if not row.is_total}
    total = next(row for row in rows if row.is_total)
    # Windows without traffic carry their idle and fixed costs as "__unallocated__".
    assert set(groups) - {"__unallocated__"} == {*FEATURES, "search_box"}
    assert total.requests == len(responses)
    assert total.direct == pytest.approx(sum(r.info.cost.total for r in responses), rel=1e-9)
    assert total.egress > 0 and total.cache_hits > 0, "repeat users hit the cache"
    reconciled = [row for feature, row in groups.items() if row.reconciled and feature != "__unallocated__"]
    assert len(reconciled) == 3, "the traffic's windows were reconciled and allocated to every feature"
    for row in reconciled:
        assert row.cost_basis == "fully_loaded"
        assert row.fully_loaded == pytest.approx(row.direct + row.overhead + row.idle + row.storage + row.operations)
        assert row.fully_loaded > row.direct


def test_cost_report_filters_by_time_and_refuses_bad_arguments(accounted):
    gateway, _, _ = accounted
    future = Timestamp(seconds=int(time.time()) + 3600)
    year_10000 = Timestamp(seconds=253402300800)
    with grpc.insecure_channel(gateway.address) as channel:
        later = _report(gateway, channel, ["feature"], since=future)
        assert [row.requests for row in later if row.is_total] in ([], [0])
        for by, times, field in (
            (["colour"], {}, "by"),
            (["feature"], {"since": future, "until": Timestamp(seconds=1)}, "until"),
            (["feature"], {"since": year_10000}, "since"),
            (["feature"], {"page_size": 5000}, "page_size"),
            (["feature"], {"page_token": "bm90LWEtdG9rZW4="}, "page_token"),
        ):
            with pytest.raises(grpc.RpcError) as raised:
                _report(gateway, channel, by, **times)
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert raised.value.details().startswith(f"{field}:"), raised.value.details()


def test_the_report_comes_in_bounded_pages_that_add_up_to_the_whole(accounted):
    gateway, _, _ = accounted
    with grpc.insecure_channel(gateway.address) as channel:
        whole = _report(gateway, channel, ["feature", "tenant", "model"])
        paged = _report(gateway, channel, ["feature", "tenant", "model"], page_size=2)
        stub = cost_pb2_grpc.CostServiceStub(channel)
        first = stub.CostReport(
            cost_pb2.CostReportRequest(by=["feature", "tenant", "model"], page_size=2),
            timeout=DEADLINE_S, metadata=gateway.metadata(ALL_TENANTS, Role.FINANCE_GLOBAL),
        )  # fmt: skip
    assert len(first.rows) == 2 and first.next_page_token
    assert len(whole) > 2
    assert [(dict(r.group), r.requests, r.is_total) for r in paged] == [(dict(r.group), r.requests, r.is_total) for r in whole]


def test_outcomes_join_their_requests_in_the_report(accounted):
    gateway, _, responses = accounted
    purchase = next(r for r in responses if isinstance(r, recommendation_pb2.RecommendResponse))
    with grpc.insecure_channel(gateway.address) as channel:
        stub = cost_pb2_grpc.CostServiceStub(channel)
        request = cost_pb2.RecordOutcomeRequest(
            outcome_id=f"order-{purchase.info.request_id}", request_id=purchase.info.request_id, kind="purchase", revenue=42.5
        )
        key = gateway.metadata()
        assert stub.RecordOutcome(request, timeout=DEADLINE_S, metadata=key).created
        assert not stub.RecordOutcome(request, timeout=DEADLINE_S, metadata=key).created, "a retry is stored once"
        for field, bad in (("kind", {"kind": "like"}), ("revenue", {"revenue": -1.0}), ("currency", {"currency": "EUR"}),
                           ("outcome_id", {"outcome_id": ""})):
            with pytest.raises(grpc.RpcError) as raised:
                stub.RecordOutcome(cost_pb2.RecordOutcomeRequest(
                    **{"outcome_id": "o-bad", "request_id": purchase.info.request_id, "kind": "click", **bad}
                ), timeout=DEADLINE_S, metadata=key)  # fmt: skip
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert raised.value.details().startswith(f"{field}:"), raised.value.details()
        rows = _report(gateway, channel, ["feature"])
    ledger_feature = {r.request_id: r.feature for r in SqliteLedger(gateway.ledger_path).records()}
    row = next(row for row in rows if row.group.get("feature") == ledger_feature[purchase.info.request_id])
    assert (row.conversions, row.revenue) == (1, 42.5)
    assert row.cost_per_conversion > 0 and row.return_on_cost > 0


def test_the_metrics_endpoint_counts_what_the_ledger_holds(accounted):
    gateway, metrics_port, responses = accounted
    time.sleep(0.5)  # a flush interval, so the ledger has every record
    metrics = _scrape(metrics_port)
    ledger = SqliteLedger(gateway.ledger_path)
    assert metrics["tollgate_requests_total"] == ledger.count() == len(responses)
    assert metrics["tollgate_cost_usd_total"] == pytest.approx(ledger.total_cost(), rel=1e-9)
    assert metrics["tollgate_request_duration_seconds_count"] == len(responses)
    assert "tollgate_reconciliation_difference_ratio" in metrics


def test_liveness_is_serving_while_the_process_runs(gateway_factory):
    gateway = gateway_factory(triton_url=unreachable_address(), require_serving=False)
    with grpc.insecure_channel(gateway.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        check = lambda service: health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status  # noqa: E731
        assert check("liveness") == health_pb2.HealthCheckResponse.SERVING, "alive without Triton"
        assert check("") == health_pb2.HealthCheckResponse.NOT_SERVING, "but not ready"


def test_a_spent_budget_alerts_and_sheds_its_feature_only(gateway_factory):
    metrics_port = port_for_later_bind()
    budgets = [{"scope": "feature", "name": "home_feed", "usd_per_month": 1e-12, "shed": True}]
    gateway = gateway_factory(metrics_port=metrics_port, budgets=json.dumps(budgets))
    with grpc.insecure_channel(gateway.address) as channel:
        _recommend(gateway, channel, "12350", "home_feed")  # spends the (tiny) budget
        with pytest.raises(grpc.RpcError) as shed:
            _recommend(gateway, channel, "12351", "home_feed")
        served = _recommend(gateway, channel, "12351", "cart_upsell")
    assert shed.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "home_feed" in shed.value.details() and "budget" in shed.value.details()
    assert float(dict(shed.value.trailing_metadata())["x-tollgate-cost"]) > 0, "a shed call still reports its cost"
    assert served.items
    metrics = _scrape(metrics_port)
    assert metrics["tollgate_budget_alerts_total"] >= 2, "80 % and 100 % crossed"
    assert metrics["tollgate_budget_used_ratio"] > 1
    assert "budget" in gateway.log_path.read_text()
