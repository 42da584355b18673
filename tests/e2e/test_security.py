"""The attacks of the tenancy audit, each refused with the right status, through a real gateway,
real Triton, real Redis and a real ledger; TLS and mutual TLS with certificates made here."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
import time
import urllib.request
import uuid

import grpc
import pytest
import redis
import trustme

from tests.support import port_for_later_bind
from gateway.api import cost_pb2, cost_pb2_grpc, recommendation_pb2, recommendation_pb2_grpc
from gateway.api_keys import ALL_TENANTS, KeyFile, Role

pytestmark = pytest.mark.e2e
DEADLINE_S = 10.0


def _recommend(address, metadata, user_id="17850", feature="home_feed", credentials=None, k=5):
    channel = grpc.secure_channel(address, credentials) if credentials else grpc.insecure_channel(address)
    with channel:
        stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
        request = recommendation_pb2.RecommendRequest(user_id=user_id, k=k, feature=feature)
        return stub.Recommend.with_call(request, timeout=DEADLINE_S, metadata=metadata)


def _error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call(*args, **kwargs)
    return raised.value


def _report(address, metadata, by=("tenant",)):
    with grpc.insecure_channel(address) as channel:
        stub = cost_pb2_grpc.CostServiceStub(channel)
        return stub.CostReport(cost_pb2.CostReportRequest(by=list(by)), timeout=DEADLINE_S, metadata=metadata)


def _outcome(address, metadata, request_id, revenue=1.0):
    with grpc.insecure_channel(address) as channel:
        stub = cost_pb2_grpc.CostServiceStub(channel)
        request = cost_pb2.RecordOutcomeRequest(
            outcome_id=uuid.uuid4().hex, request_id=request_id, kind="purchase", revenue=revenue
        )
        return stub.RecordOutcome(request, timeout=DEADLINE_S, metadata=metadata)


def _ledger_rows(gateway) -> list[tuple[str, str, str]]:
    with sqlite3.connect(gateway.ledger_path) as db:
        return db.execute("SELECT request_id, tenant, status FROM cost_records").fetchall()


def _wait_for_rows(gateway, count: int, timeout_s: float = 10.0) -> list[tuple[str, str, str]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = _ledger_rows(gateway) if gateway.ledger_path.exists() else []
        if len(rows) >= count:
            return rows
        time.sleep(0.1)
    raise AssertionError(f"the ledger has {len(rows)} rows, expected {count}")


def test_a_tenant_named_in_metadata_bills_nobody(gateway):
    error = _error(_recommend, gateway.address, (("x-tenant-id", "shop-uk"),))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    _, call = _recommend(gateway.address, (("x-tenant-id", "globex"), *gateway.access.metadata("acme")))
    request_id = dict(call.trailing_metadata())["x-tollgate-request-id"]
    rows = {row[0]: row[1] for row in _wait_for_rows(gateway, 1)}
    assert rows[request_id] == "acme", "the tenant comes from the key, never from free-text metadata"


@pytest.mark.parametrize(
    ("metadata", "status"),
    [
        ((("authorization", "Bearer tgk_000000000000_" + "A" * 43),), grpc.StatusCode.UNAUTHENTICATED),
        ((("authorization", "Basic c2hvcDp1aw=="),), grpc.StatusCode.UNAUTHENTICATED),
        ((), grpc.StatusCode.UNAUTHENTICATED),
    ],
)
def test_a_missing_or_bad_key_is_unauthenticated(gateway, metadata, status):
    assert _error(_recommend, gateway.address, metadata).code() == status


def test_a_finance_key_cannot_call_the_models_nor_a_caller_key_read_costs(gateway):
    error = _error(_recommend, gateway.address, gateway.access.metadata("shop-uk", Role.FINANCE))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    error = _error(_report, gateway.address, gateway.access.metadata("shop-uk", Role.CALLER))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert _error(_report, gateway.address, ()).code() == grpc.StatusCode.UNAUTHENTICATED


def test_tenant_finance_sees_only_its_own_costs_and_global_finance_sees_all(gateway):
    for tenant in ("shop-uk", "shop-eu"):
        _recommend(gateway.address, gateway.access.metadata(tenant), user_id="12347")
    time.sleep(0.5)  # the ledger flushes every 0.2 s in the tests
    own = _report(gateway.address, gateway.access.metadata("shop-uk", Role.FINANCE))
    assert {row.group["tenant"] for row in own.rows if not row.is_total} == {"shop-uk"}
    everyone = _report(gateway.address, gateway.access.metadata(ALL_TENANTS, Role.FINANCE_GLOBAL))
    assert {"shop-uk", "shop-eu"} <= {row.group["tenant"] for row in everyone.rows if not row.is_total}


def test_outcomes_only_for_a_recorded_request_of_the_callers_tenant(gateway):
    _, call = _recommend(gateway.address, gateway.access.metadata("shop-uk"), user_id="12348")
    request_id = dict(call.trailing_metadata())["x-tollgate-request-id"]
    own = gateway.access.metadata("shop-uk")
    assert _outcome(gateway.address, own, request_id).created  # at once: the record may still be buffered
    error = _error(_outcome, gateway.address, gateway.access.metadata("shop-eu"), request_id)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    error = _error(_outcome, gateway.address, own, uuid.uuid4().hex)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    for revenue in (1.7e308, float("inf"), -1.0):
        error = _error(_outcome, gateway.address, own, request_id, revenue=revenue)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith("revenue:")


def test_nobody_can_spend_another_tenants_budget(gateway_factory):
    budgets = json.dumps([{"scope": "tenant", "name": "globex", "usd_per_month": 1e-4, "shed": True}])
    gateway = gateway_factory(budgets=budgets, budget_refresh_s=0.2)
    attacker = (("x-tenant-id", "globex"), ("x-tenant-id", "Globex"), *gateway.access.metadata("acme"))
    for n in range(40):
        _recommend(gateway.address, attacker, user_id=str(13000 + n), k=50)
    time.sleep(0.6)
    response, _ = _recommend(gateway.address, gateway.access.metadata("globex"), user_id="12350")
    assert len(response.items) == 5, "globex's budget is untouched by calls that named it"
    tenants = {row[1] for row in _wait_for_rows(gateway, 41)}
    assert tenants == {"acme", "globex"}


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_a_flood_of_garbage_tenants_and_features_leaves_metrics_and_memory_flat(gateway_factory):
    port = port_for_later_bind()
    gateway = gateway_factory(metrics_port=port)
    key = gateway.access.metadata("acme")

    def flood(start: int, count: int) -> None:
        with grpc.insecure_channel(gateway.address) as channel:
            stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
            for n in range(start, start + count):
                garbage = f"f{uuid.uuid4().hex}"[: 1 + n % 60]
                metadata = (("x-tenant-id", f"tenant-{n}-" + "x" * 2000), *key)
                request = recommendation_pb2.RecommendRequest(user_id="17850", k=1, feature=garbage)
                with pytest.raises(grpc.RpcError) as raised:
                    stub.Recommend(request, timeout=DEADLINE_S, metadata=metadata)
                assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    flood(0, 1_000)  # warm-up
    series_before, rss_before = len(_metrics(port).splitlines()), _rss_kib(gateway.process.pid)
    threads = [threading.Thread(target=flood, args=(1_000 + i * 2_250, 2_250)) for i in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    series_after, rss_after = len(_metrics(port).splitlines()), _rss_kib(gateway.process.pid)
    assert series_after == series_before, "10,000 distinct labels sent, not one new series"
    assert rss_after - rss_before < 8 * 1024, f"RSS grew {rss_after - rss_before} KiB over 9,000 garbage calls"


def test_shopper_ids_appear_in_no_span_log_metric_ledger_row_or_cache_key(gateway_factory, redis_url, cache_prefix):
    port = port_for_later_bind()
    gateway = gateway_factory(metrics_port=port, trace_sample_ratio=1.0)  # every call traced: spans to look in
    shopper = "14911"  # a real customer id of the dataset
    for _ in range(2):  # a miss, then a hit
        _recommend(gateway.address, gateway.access.metadata("shop-uk"), user_id=shopper)
    time.sleep(0.5)
    exposed = {
        "metrics": _metrics(port),
        "log": gateway.log_path.read_text(),
        "spans": gateway.trace_file.read_text() if gateway.trace_file.exists() else "",
        "ledger": "\n".join(map(str, sqlite3.connect(gateway.ledger_path).iterdump())),
    }
    client = redis.Redis.from_url(redis_url)
    keys = [key.decode() for key in client.scan_iter(f"{cache_prefix}*")]
    assert keys, "the answer was cached"
    exposed["cache keys"] = "\n".join(keys)
    assert exposed["spans"], "spans were written"
    for where, text in exposed.items():
        assert shopper not in text, f"the shopper id appears in the {where}"


def test_key_rotation_drops_no_call(gateway):
    keys = KeyFile(gateway.access.keys_file)
    stored, token = keys.create("shop-eu", Role.CALLER, "rotation test")
    time.sleep(2.5)  # the gateway re-reads the key file every 2 s
    current = [token]
    failures: list[grpc.StatusCode] = []
    stop = threading.Event()

    def call_continuously() -> None:
        while not stop.is_set():
            try:
                _recommend(gateway.address, (("authorization", f"Bearer {current[0]}"),), user_id="12352")
            except grpc.RpcError as error:
                failures.append(error.code())

    worker = threading.Thread(target=call_continuously)
    worker.start()
    time.sleep(0.5)
    new, new_token = keys.rotate(stored.key_id, grace=dt.timedelta(minutes=5))
    time.sleep(2.5)  # both keys work now
    current[0] = new_token
    time.sleep(0.5)
    keys.revoke(stored.key_id)
    time.sleep(2.5)
    stop.set()
    worker.join()
    assert failures == [], "no call failed across the rotation"
    error = _error(_recommend, gateway.address, (("authorization", f"Bearer {token}"),))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED, "the revoked key is refused without a restart"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """A CA, the gateway's server certificate and client certificates for two names."""
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    server.cert_chain_pems[0].write_to_path(directory / "server.pem")
    for blob in server.cert_chain_pems[1:]:
        blob.write_to_path(directory / "server.pem", append=True)
    server.private_key_pem.write_to_path(directory / "server.key")
    ca.cert_pem.write_to_path(directory / "ca.pem")
    clients = {}
    for name in ("shop-uk", "stranger"):
        cert = ca.issue_cert(f"{name}@clients.test", common_name=name)
        clients[name] = (cert.private_key_pem.bytes(), b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    return directory, ca.cert_pem.bytes(), clients


def _tls(ca: bytes, client: tuple[bytes, bytes] | None = None) -> grpc.ChannelCredentials:
    key, chain = client if client else (None, None)
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=chain)


def test_tls_serves_encrypted_calls_and_refuses_plaintext(gateway_factory, certificates):
    directory, ca, _ = certificates
    gateway = gateway_factory(
        tls_cert_file=directory / "server.pem", tls_key_file=directory / "server.key", tls=_tls(ca)
    )
    response, _ = _recommend(gateway.address, gateway.access.metadata("acme"), credentials=_tls(ca))
    assert len(response.items) == 5
    error = _error(_recommend, gateway.address, gateway.access.metadata("acme"))
    assert error.code() == grpc.StatusCode.UNAVAILABLE, "a plaintext client gets no answer"


def test_mutual_tls_takes_the_tenant_from_the_client_certificate(gateway_factory, certificates):
    directory, ca, clients = certificates
    gateway = gateway_factory(
        tls_cert_file=directory / "server.pem",
        tls_key_file=directory / "server.key",
        tls_client_ca_file=directory / "ca.pem",
        tls=_tls(ca, clients["stranger"]),
    )
    _, call = _recommend(gateway.address, (("x-tenant-id", "globex"),), credentials=_tls(ca, clients["shop-uk"]))
    request_id = dict(call.trailing_metadata())["x-tollgate-request-id"]
    assert dict((row[0], row[1]) for row in _wait_for_rows(gateway, 1))[request_id] == "shop-uk"
    error = _error(_recommend, gateway.address, (), credentials=_tls(ca, clients["stranger"]))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    # An API key still works over mutual TLS, and the key's tenant wins over the certificate's.
    _, call = _recommend(gateway.address, gateway.access.metadata("acme"), credentials=_tls(ca, clients["shop-uk"]))
    assert dict((row[0], row[1]) for row in _wait_for_rows(gateway, 2))[
        dict(call.trailing_metadata())["x-tollgate-request-id"]
    ] == "acme"
    error = _error(_recommend, gateway.address, gateway.access.metadata("acme"), credentials=_tls(ca))
    assert error.code() == grpc.StatusCode.UNAVAILABLE, "no client certificate: the handshake fails"


def test_reflection_can_be_switched_off_and_health_stays_open(gateway_factory):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    gateway = gateway_factory(reflection_enabled=False)
    with grpc.insecure_channel(gateway.address) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=DEADLINE_S)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=DEADLINE_S))
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
