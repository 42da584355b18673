"""Model rollout through the real gateway, Triton (explicit model control, repository API behind
its admin key) and Redis, under continuous load on loopback (issue 18):

- shadow -> canary 10 % -> promote, then a canary of the old version rolled back by the
  operator: no failed call; the canary split within 3 points of its setting; every answer from
  one of the two versions; the ledger's counts per version equal the calls the client saw, and
  the shadow calls are booked to the mirrored feature and tenant, marked shadow;
- a candidate that fails every call is rolled back by the gateway within the SLO window.

The load is configurable: TOLLGATE_TEST_ROLLOUT_RPS (calls per second, default 100) and
TOLLGATE_TEST_ROLLOUT_PHASE_S (seconds of load per phase, default 6; about 30 s in all).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import grpc
import pytest

from deploy.local.redis import delete_prefixed
from deploy.local.triton import TritonServer
from gateway.api import rollout_pb2, rollout_pb2_grpc
from gateway.api_keys import ALL_TENANTS, Role
from tests.e2e.conftest import GatewayLauncher, RunningGateway
from tests.e2e.rollout_load import Call, SteadyLoad
from tests.e2e.rollout_repository import BROKEN_CANDIDATE, GOOD_CANDIDATE, MODEL, SERVING, rollout_repository
from tests.support import e2e_log_path, wait_for

RATE_PER_S = float(os.environ.get("TOLLGATE_TEST_ROLLOUT_RPS", "100"))
PHASE_S = float(os.environ.get("TOLLGATE_TEST_ROLLOUT_PHASE_S", "6"))
ADMIN_KEY = "rollout-test-admin-key"
RECOMMENDATION_SERVICE = "tollgate.v1.RecommendationService"
SHADOW_SHARE, CANARY_SHARE = 0.5, 0.1
SPLIT_TOLERANCE = 0.03  # +-3 percentage points
SLO_WINDOW_S = 10.0
CALL_DEADLINE_S = 2.0
OPERATION_DEADLINE_S = 120.0
# Bound of a wait for the load to reach a number of calls: the phase, with room for a slow box.
PHASE_BOUND_S = 20 * PHASE_S
# Bound of the wait for the ledger's flush (every 0.2 s in the e2e gateways).
LEDGER_BOUND_S = 30.0


@pytest.fixture(scope="module")
def rollout_triton(model_repository, tmp_path_factory) -> Iterator[TritonServer]:
    """Triton on a versioned copy of the repository, the model-repository API behind an admin key."""
    repository = tmp_path_factory.mktemp("versioned-repository")
    rollout_repository(model_repository, repository)
    server = TritonServer(
        repository,
        models=[MODEL],
        log_path=e2e_log_path("triton-rollout"),
        extra_args=[f"--grpc-restricted-protocol=model-repository:admin-key={ADMIN_KEY}"],
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rollout_gateway(rollout_triton, redis_url, tmp_path_factory, access) -> Iterator[RunningGateway]:
    """A gateway with its own Redis prefix (the rollout state lives there: no other test's
    gateway may read it), quick SLO judgement and a short drain."""
    prefix = f"tollgate-test-rollout:{uuid.uuid4().hex[:12]}:"
    launcher = GatewayLauncher(rollout_triton.grpc_url, redis_url, prefix, tmp_path_factory, access)
    gateway = launcher.start(
        service=RECOMMENDATION_SERVICE,
        triton_admin_key=ADMIN_KEY,
        trace_sample_ratio=0.02,
        rollout_refresh_s=0.5,
        rollout_drain_s=1.0,
        rollout_slo_window_s=SLO_WINDOW_S,
        rollout_slo_min_calls=10,
        rollout_slo_max_error_rate=0.2,
        # Latency on 2 shared cores while Triton loads a version is no fault of the candidate's.
        rollout_slo_max_p99_ms=5000.0,
    )
    yield gateway
    launcher.stop_all()
    delete_prefixed(redis_url, prefix)


def operate(gateway: RunningGateway, method: str, **fields: object) -> rollout_pb2.RolloutStatus:
    """One ModelRollout call with the operator's key."""
    request_type = rollout_pb2.StartRolloutRequest if method in ("Shadow", "Canary") else rollout_pb2.RolloutRequest
    with grpc.insecure_channel(gateway.address) as channel:
        stub = rollout_pb2_grpc.ModelRolloutStub(channel)
        return getattr(stub, method)(
            request_type(model=MODEL, **fields),
            timeout=OPERATION_DEADLINE_S,
            metadata=gateway.metadata(ALL_TENANTS, Role.OPERATOR),
        )


def ledger_rows(gateway: RunningGateway, feature: str) -> list[sqlite3.Row]:
    with sqlite3.connect(gateway.ledger_path) as db:
        db.row_factory = sqlite3.Row
        return db.execute(
            "SELECT request_id, tenant, feature, model_version, traffic, status FROM cost_records WHERE feature = ?",
            (feature,),
        ).fetchall()


def run_phase(load: SteadyLoad, since: float, calls: float) -> None:
    wait_for(lambda: load.completed_since(since) >= calls, PHASE_BOUND_S, f"{calls:.0f} calls of the phase")


def between(calls: list[Call], start: float, end: float) -> list[Call]:
    """Calls that started at or after ``start`` and ended before ``end``."""
    return [call for call in calls if call.started >= start and call.ended < end]


def share_of(calls: list[Call], version: str) -> float:
    return sum(call.version == version for call in calls) / len(calls)


def test_shadow_canary_promote_and_a_forced_rollback_lose_no_call(rollout_gateway, buyers, record_property):
    gateway = rollout_gateway
    serving = operate(gateway, "Status").serving_version
    candidate = GOOD_CANDIDATE if serving == SERVING else SERVING
    phase_calls = RATE_PER_S * PHASE_S
    load = SteadyLoad(gateway.address, gateway.metadata("shop-uk"), buyers, RATE_PER_S, "home_feed", CALL_DEADLINE_S)
    load.start()
    try:
        started = time.monotonic()
        run_phase(load, started, phase_calls / 2)

        shadow_sent = time.monotonic()
        shadow = operate(gateway, "Shadow", candidate=candidate, share=SHADOW_SHARE)
        shadow_on = time.monotonic()
        assert (shadow.mode, shadow.candidate_version, shadow.share) == ("shadow", candidate, SHADOW_SHARE)
        run_phase(load, shadow_on, phase_calls)
        shadowed = operate(gateway, "Status")

        canary_sent = time.monotonic()
        canary = operate(gateway, "Canary", share=CANARY_SHARE)
        canary_on = time.monotonic()
        assert (canary.mode, canary.candidate_version) == ("canary", candidate)
        run_phase(load, canary_on, phase_calls)

        promote_sent = time.monotonic()
        promoted = operate(gateway, "Promote")
        promoted_on = time.monotonic()
        assert (promoted.serving_version, promoted.mode) == (candidate, "none")
        run_phase(load, promoted_on, phase_calls / 2)

        # The old version comes back as a canary (Triton loads it under load), then the operator rolls it back.
        second_sent = time.monotonic()
        second = operate(gateway, "Canary", candidate=serving, share=CANARY_SHARE)
        second_on = time.monotonic()
        assert (second.serving_version, second.candidate_version, second.mode) == (candidate, serving, "canary")
        run_phase(load, second_on, phase_calls / 2)

        rollback_sent = time.monotonic()
        rolled_back = operate(gateway, "Rollback")
        rolled_back_on = time.monotonic()
        assert (rolled_back.serving_version, rolled_back.mode, rolled_back.candidate_version) == (candidate, "none", "")
        assert [v.version for v in rolled_back.versions] == [candidate], "the rolled-back version is unloaded"
        run_phase(load, rolled_back_on, phase_calls / 2)
    finally:
        calls = load.stop()

    statuses = Counter(call.status for call in calls)
    assert statuses == {"OK": len(calls)} and load.not_sent == 0, f"failed calls: {statuses}, not sent {load.not_sent}"
    assert {call.version for call in calls} == {serving, candidate}
    assert all(call.version == serving for call in between(calls, started, shadow_sent)), "before the rollout"
    assert all(call.version == serving for call in between(calls, shadow_on, canary_sent)), "shadow answers go to nobody"

    in_canary = between(calls, canary_on, promote_sent)
    assert abs(share_of(in_canary, candidate) - CANARY_SHARE) <= SPLIT_TOLERANCE, f"canary split of {len(in_canary)} calls"
    assert all(call.version == candidate for call in between(calls, promoted_on, second_sent)), "after promote"
    in_second = between(calls, second_on, rollback_sent)
    assert abs(share_of(in_second, serving) - CANARY_SHARE) <= SPLIT_TOLERANCE, f"second canary of {len(in_second)} calls"
    assert all(call.version == candidate for call in between(calls, rolled_back_on, float("inf"))), "after the rollback"

    # The ledger: one row per call the client saw, of the version that answered it.
    by_request = {call.request_id: call for call in calls}
    wait_for(
        lambda: {row["request_id"] for row in ledger_rows(gateway, "home_feed")} >= by_request.keys(),
        LEDGER_BOUND_S,
        "every call's cost record",
    )
    rows = ledger_rows(gateway, "home_feed")
    answered = [row for row in rows if row["traffic"] != "shadow"]
    assert Counter(row["model_version"] for row in answered) == Counter(call.version for call in calls)
    assert all(row["model_version"] == by_request[row["request_id"]].version for row in answered)
    # A candidate's answer during a canary is a canary row, never a serving one (nor its cache entry).
    canary_rows = {row["request_id"] for row in answered if row["traffic"] == "canary"}
    for phase, canary_version in ((in_canary, candidate), (in_second, serving)):
        assert {c.request_id for c in phase if c.version == canary_version} <= canary_rows
        assert not {c.request_id for c in phase if c.version != canary_version} & canary_rows

    # Shadow calls: real spend of the mirrored feature and tenant, of the candidate, half the shadow phase's calls.
    shadow_rows = [row for row in rows if row["traffic"] == "shadow"]
    assert {(row["tenant"], row["model_version"], row["status"]) for row in shadow_rows} == {("shop-uk", candidate, "OK")}
    in_shadow = [call for call in calls if shadow_on <= call.started < canary_sent]
    # Mirrors skipped (the pools were busy: callers first) are counted, not made.
    mirrored = len(shadow_rows) + shadowed.shadow_skipped
    assert shadow_rows and abs(mirrored / len(in_shadow) - SHADOW_SHARE) <= SPLIT_TOLERANCE
    assert shadowed.shadow_compared > 0 and shadowed.shadow_mean_overlap == 1.0, "a copy of the model answers alike"
    seconds = calls[-1].ended - calls[0].started
    record_property("calls", len(calls))
    record_property("calls_per_s", round(len(calls) / seconds, 1))
    record_property("canary_share", f"{share_of(in_canary, candidate):.4f} of {len(in_canary)}")
    record_property("shadow_share", f"{mirrored / len(in_shadow):.4f} of {len(in_shadow)}, {shadowed.shadow_skipped} skipped")
    record_property("operation_s", {
        "shadow": round(shadow_on - shadow_sent, 2), "canary": round(canary_on - canary_sent, 2),
        "promote": round(promoted_on - promote_sent, 2), "canary_with_load": round(second_on - second_sent, 2),
        "rollback": round(rolled_back_on - rollback_sent, 2),
    })  # fmt: skip


def test_a_candidate_failing_at_run_time_is_rolled_back_within_the_slo_window(rollout_gateway, buyers, record_property):
    gateway = rollout_gateway
    serving = operate(gateway, "Status").serving_version
    canary = operate(gateway, "Canary", candidate=BROKEN_CANDIDATE, share=0.5)
    canary_on = time.monotonic()
    assert (canary.mode, canary.candidate_version) == ("canary", BROKEN_CANDIDATE)
    load = SteadyLoad(gateway.address, gateway.metadata("shop-eu"), buyers, RATE_PER_S, "cart_upsell", CALL_DEADLINE_S)
    load.start()
    try:
        status = wait_for(
            lambda: (s := operate(gateway, "Status")).mode == "none" and s, SLO_WINDOW_S, "the automatic roll back"
        )
        rolled_back_on = time.monotonic()
        run_phase(load, rolled_back_on, RATE_PER_S * PHASE_S / 2)
    finally:
        calls = load.stop()

    assert status.serving_version == serving and status.candidate_version == ""
    assert status.note.startswith(f"rolled back version {BROKEN_CANDIDATE} (error_rate:"), status.note
    assert "rolled back version 3 (error_rate" in gateway.log_path.read_text()
    failed = [call for call in calls if call.status != "OK"]
    assert failed and {call.status for call in failed} == {"INTERNAL"}, "the broken candidate's calls fail"
    assert all(call.started < rolled_back_on for call in failed), "no call fails after the roll back"
    assert all(call.version == serving for call in calls if call.status == "OK")
    rows = wait_for(
        lambda: (r := ledger_rows(gateway, "cart_upsell")) and len(r) >= len(calls) and r, LEDGER_BOUND_S, "the cost records"
    )
    canary_rows = [row for row in rows if row["traffic"] == "canary"]
    assert Counter((row["model_version"], row["status"]) for row in canary_rows) == {(BROKEN_CANDIDATE, "INTERNAL"): len(failed)}
    record_property("failed_calls_before_rollback", len(failed))
    record_property("rollback_seen_after_s", round(rolled_back_on - canary_on, 2))


def rollout_error(gateway: RunningGateway, method: str, metadata=None, **fields: object) -> grpc.RpcError:
    request_type = rollout_pb2.StartRolloutRequest if method in ("Shadow", "Canary") else rollout_pb2.RolloutRequest
    fields.setdefault("model", MODEL)
    with grpc.insecure_channel(gateway.address) as channel, pytest.raises(grpc.RpcError) as refused:
        getattr(rollout_pb2_grpc.ModelRolloutStub(channel), method)(
            request_type(**fields), timeout=OPERATION_DEADLINE_S,
            metadata=metadata or gateway.metadata(ALL_TENANTS, Role.OPERATOR),
        )  # fmt: skip
    return refused.value


def test_rollout_operations_are_for_operators_and_refuse_what_does_not_apply(rollout_gateway):
    gateway = rollout_gateway
    assert operate(gateway, "Status").mode == "none"
    caller = rollout_error(gateway, "Status", metadata=gateway.metadata("shop-uk", Role.CALLER))
    assert caller.code() == grpc.StatusCode.PERMISSION_DENIED and "operator" in caller.details()
    unknown = rollout_error(gateway, "Status", model="no-such-model")
    assert unknown.code() == grpc.StatusCode.NOT_FOUND and "no-such-model" in unknown.details()
    share = rollout_error(gateway, "Canary", candidate=GOOD_CANDIDATE, share=1.5)
    assert share.code() == grpc.StatusCode.INVALID_ARGUMENT and share.details().startswith("share:")
    missing_share = rollout_error(gateway, "Shadow", candidate=GOOD_CANDIDATE)
    assert missing_share.code() == grpc.StatusCode.INVALID_ARGUMENT and missing_share.details().startswith("share:")
    promote = rollout_error(gateway, "Promote")
    assert promote.code() == grpc.StatusCode.FAILED_PRECONDITION and "no candidate" in promote.details()
    rollback = rollout_error(gateway, "Rollback")
    assert rollback.code() == grpc.StatusCode.FAILED_PRECONDITION
    absent = rollout_error(gateway, "Canary", candidate="9", share=0.1)
    assert absent.code() == grpc.StatusCode.NOT_FOUND and "version 9" in absent.details()
    assert operate(gateway, "Status").mode == "none", "a refused operation changes nothing"


def test_the_cli_prints_the_rollout(rollout_gateway):
    gateway = rollout_gateway
    serving = operate(gateway, "Status").serving_version
    token = gateway.metadata(ALL_TENANTS, Role.OPERATOR)[0][1].removeprefix("Bearer ")
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "models", "status", MODEL, "--address", gateway.address],
        env={**os.environ, "TOLLGATE_API_KEY": token}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"serving    version {serving}" in result.stdout and "candidate  none" in result.stdout
    refused = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "models", "promote", MODEL, "--address", gateway.address],
        env={**os.environ, "TOLLGATE_API_KEY": token}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode == 1 and refused.stderr.startswith("FAILED_PRECONDITION:")
