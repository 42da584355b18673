"""Faults and abuse, through a real gateway, Triton, Redis and SQLite ledger: no answered call
without a durable record, no tenant able to hurt another, no fault turning into UNKNOWN.
Every load here is bounded in calls and time, and stays on loopback."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
import urllib.request

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.api import cost_pb2, cost_pb2_grpc, recommendation_pb2, recommendation_pb2_grpc
from tests.support import port_for_later_bind, wait_for

pytestmark = pytest.mark.e2e
DEADLINE_S = 10.0


def _recommend(gateway, user_id="17850", tenant="shop-uk", timeout=DEADLINE_S, k=5):
    with grpc.insecure_channel(gateway.address) as channel:
        stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
        request = recommendation_pb2.RecommendRequest(user_id=user_id, k=k, feature="home_feed")
        response, call = stub.Recommend.with_call(request, timeout=timeout, metadata=gateway.metadata(tenant))
        return response, dict(call.trailing_metadata())


def _status(gateway, **kwargs) -> str:
    try:
        _recommend(gateway, **kwargs)
        return "OK"
    except grpc.RpcError as error:
        return error.code().name


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        lines = response.read().decode().splitlines()
    return sum(float(line.split()[-1]) for line in lines if line.startswith(name + " ") or line.startswith(name + "{"))


def _health(gateway) -> int:
    with grpc.insecure_channel(gateway.address) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status


def _rows(path) -> dict[str, str]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT request_id, status FROM cost_records").fetchall())


def test_a_full_ledger_disk_loses_no_answered_record(gateway_factory, tmp_path):
    """The SQLite file is capped (as a full disk would): records go to the journal, the gateway
    keeps answering, stops cleanly, and the next gateway replays every record."""
    ledger_path = tmp_path / "ledger.sqlite"
    journal = tmp_path / "journal" / "ledger-journal.jsonl"
    metrics_port = port_for_later_bind()
    full = gateway_factory(
        ledger_path=ledger_path,
        ledger_url=f"sqlite:///{ledger_path}?max_pages=40",
        ledger_journal_path=journal,
        metrics_port=metrics_port,
        reconciliation_enabled=False,
    )
    answered = [_recommend(full, user_id=str(12346 + n % 500), k=50)[1]["x-tollgate-request-id"] for n in range(400)]
    wait_for(lambda: _metric(metrics_port, "tollgate_ledger_state") == 1, 10, "the writer turned to its journal")
    assert journal.exists()
    assert full.stop() == 0
    log = full.log_path.read_text()
    assert "Traceback" not in log, "SIGTERM drains without a traceback"
    assert len(_rows(ledger_path)) < len(answered), "the capped file could not hold them all"

    replayer = gateway_factory(ledger_path=ledger_path, ledger_journal_path=journal, reconciliation_enabled=False)
    wait_for(lambda: not journal.exists(), 10, "the journal was replayed")
    replayer.stop()
    rows = _rows(ledger_path)
    assert set(answered) <= rows.keys(), f"{len(set(answered) - rows.keys())} answered records lost"


def test_with_neither_ledger_nor_journal_the_gateway_fails_closed(gateway_factory, tmp_path):
    ledger_path = tmp_path / "ledger.sqlite"
    metrics_port = port_for_later_bind()
    gateway = gateway_factory(
        ledger_path=ledger_path,
        ledger_url=f"sqlite:///{ledger_path}?max_pages=40",
        ledger_journal_path="/dev/full/ledger-journal.jsonl",  # ENOTDIR: no journal either
        metrics_port=metrics_port,
        reconciliation_enabled=False,
    )
    statuses = [_status(gateway, user_id=str(12346 + n), k=50) for n in range(400)]
    refused = wait_for(lambda: _status(gateway) == "UNAVAILABLE", 10, "calls are refused")
    assert refused and "UNAVAILABLE" not in statuses[:5]
    assert _metric(metrics_port, "tollgate_ledger_state") == 2
    wait_for(lambda: _health(gateway) == health_pb2.HealthCheckResponse.NOT_SERVING, 10, "health says NOT_SERVING")
    with pytest.raises(grpc.RpcError) as raised:
        _recommend(gateway)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE and "cost ledger" in raised.value.details()
    assert gateway.stop() == 0 and "Traceback" not in gateway.log_path.read_text()


def test_fail_open_keeps_serving_when_nothing_can_record(gateway_factory, tmp_path):
    ledger_path = tmp_path / "ledger.sqlite"
    gateway = gateway_factory(
        ledger_path=ledger_path,
        ledger_url=f"sqlite:///{ledger_path}?max_pages=40",
        ledger_journal_path="/dev/full/ledger-journal.jsonl",
        ledger_fail_open=True,
        reconciliation_enabled=False,
    )
    statuses = {_status(gateway, user_id=str(12346 + n), k=50) for n in range(400)}
    assert statuses == {"OK"}


def test_a_locked_ledger_is_unavailable_within_the_callers_deadline(gateway_factory, tmp_path):
    """Another process holds the SQLite ledger's write lock: RecordOutcome must write, and the
    gateway answers UNAVAILABLE itself (the caller's own deadline would be DEADLINE_EXCEEDED),
    with no database text."""
    ledger_path = tmp_path / "ledger.sqlite"
    gateway = gateway_factory(ledger_path=ledger_path, reconciliation_enabled=False)
    request_id = _recommend(gateway)[1]["x-tollgate-request-id"]
    wait_for(lambda: request_id in _rows(ledger_path), 10, "the request is in the ledger")
    locker = sqlite3.connect(ledger_path, timeout=0)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        with grpc.insecure_channel(gateway.address) as channel:
            stub = cost_pb2_grpc.CostServiceStub(channel)
            with pytest.raises(grpc.RpcError) as raised:
                stub.RecordOutcome(
                    cost_pb2.RecordOutcomeRequest(outcome_id="o-1", request_id=request_id, kind="click"),
                    timeout=1.5,
                    metadata=gateway.metadata(),
                )
    finally:
        locker.rollback()
        locker.close()
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE, raised.value.details()
    assert "sqlite" not in raised.value.details().lower() and "locked" not in raised.value.details()


def test_a_flood_of_expiring_deadlines_ejects_nothing_and_spares_other_tenants(gateway_factory):
    gateway = gateway_factory(cache_enabled=False)
    other: list[str] = []
    stop = threading.Event()

    def neighbour() -> None:
        while not stop.is_set():
            other.append(_status(gateway, tenant="shop-eu", user_id="12347"))
            time.sleep(0.05)  # the neighbour's pace, not a wait for anything

    thread = threading.Thread(target=neighbour)
    thread.start()
    flood = [_status(gateway, user_id=str(13000 + n), timeout=0.001) for n in range(300)]
    stop.set()
    thread.join()
    assert set(flood) <= {"DEADLINE_EXCEEDED", "OK"}
    assert other and set(other) == {"OK"}, f"the other tenant saw {sorted(set(other))}"
    assert "ejected" not in gateway.log_path.read_text()


def test_calls_whose_deadline_ran_out_are_recorded_with_their_true_status(gateway_factory):
    gateway = gateway_factory(cache_enabled=False)
    statuses = [_status(gateway, user_id=str(13400 + n), timeout=0.002) for n in range(100)]
    expired = statuses.count("DEADLINE_EXCEEDED")
    assert expired > 0, "some calls must have expired for this test to mean anything"
    gateway.stop()
    recorded = list(_rows(gateway.ledger_path).values())
    assert set(recorded) <= {"OK", "DEADLINE_EXCEEDED", "CANCELLED"}, "never INTERNAL or UNKNOWN"
    assert recorded.count("DEADLINE_EXCEEDED") > 0


def test_poisoned_cache_entries_are_misses_never_errors_or_labels(gateway_factory, redis_url, cache_prefix):
    metrics_port = port_for_later_bind()
    gateway = gateway_factory(metrics_port=metrics_port)
    first, _ = _recommend(gateway, user_id="12349")
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{cache_prefix}*"))
    assert keys
    poison = {
        "answer": {"items": [{"item_id": "x", "title": "<script>alert(1)</script>", "score": 1.0}],
                   "compute_ns": 10**15, "model_version": "1", "personalized": True},
        "pool": "no-such-pool",
    }  # fmt: skip
    for key in keys:
        client.set(key, json.dumps(poison))
    again, trailing = _recommend(gateway, user_id="12349")
    assert trailing["x-tollgate-cache"] == "miss" and not again.info.cache_hit
    assert [item.item_id for item in again.items] == [item.item_id for item in first.items]
    assert all("<script>" not in item.title for item in again.items)
    assert again.info.cost.avoided == 0
    assert _metric(metrics_port, "tollgate_cache_rejected_entries_total") >= 1


def test_a_tenant_over_its_rate_is_refused_at_once_and_others_are_not(gateway_factory, access):
    tenants = [
        {**tenant.model_dump(), **({"rate_per_s": 1, "burst": 3} if tenant.id == "acme" else {})}
        for tenant in access.tenants
    ]
    gateway = gateway_factory(tenants=json.dumps(tenants))
    statuses = [_status(gateway, tenant="acme", user_id=str(12350 + n)) for n in range(8)]
    # Refused at once, not queued: a queued call would have waited for a token and been OK.
    assert statuses[:3] == ["OK"] * 3 and statuses.count("RESOURCE_EXHAUSTED") >= 4
    assert {_status(gateway, tenant="globex", user_id=str(12360 + n)) for n in range(5)} == {"OK"}


def test_over_the_gateways_concurrency_limit_calls_are_refused_at_once(gateway_factory):
    gateway = gateway_factory(max_concurrent_calls=2, cache_enabled=False)

    async def burst() -> list[str]:
        async with grpc.aio.insecure_channel(gateway.address) as channel:
            stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)

            async def one(n: int) -> str:
                request = recommendation_pb2.RecommendRequest(user_id=str(14000 + n), k=200, feature="home_feed")
                try:
                    await stub.Recommend(request, timeout=DEADLINE_S, metadata=gateway.metadata())
                    return "OK"
                except grpc.aio.AioRpcError as error:
                    return error.code().name

            return await asyncio.gather(*(one(n) for n in range(40)))

    statuses = asyncio.run(burst())
    assert set(statuses) <= {"OK", "RESOURCE_EXHAUSTED"}
    assert statuses.count("RESOURCE_EXHAUSTED") > 0 and statuses.count("OK") >= 2
    gateway.stop()
    recorded = list(_rows(gateway.ledger_path).values())
    assert recorded.count("RESOURCE_EXHAUSTED") == statuses.count("RESOURCE_EXHAUSTED"), "refusals are recorded too"


def test_a_caller_that_cancels_is_recorded_as_cancelled(gateway_factory):
    gateway = gateway_factory(cache_enabled=False)
    with grpc.insecure_channel(gateway.address) as channel:
        stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
        futures = []
        for n in range(30):
            request = recommendation_pb2.RecommendRequest(user_id=str(15000 + n), k=200, feature="home_feed")
            futures.append(stub.Recommend.future(request, timeout=DEADLINE_S, metadata=gateway.metadata()))
        for future in futures:
            future.cancel()
    gateway.stop()
    recorded = list(_rows(gateway.ledger_path).values())
    assert set(recorded) <= {"OK", "CANCELLED"}, "a call the caller left is CANCELLED, never INTERNAL"
