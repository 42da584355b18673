"""Recommend end to end: real gateway process, real Triton, real Redis, real gRPC on loopback."""

from __future__ import annotations

import asyncio
import json
import secrets
import time

import grpc
import pytest
import tritonclient.grpc.aio as triton_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from costing.ledger import SqliteLedger
from gateway import telemetry_attributes as attr
from gateway.api import recommendation_pb2, recommendation_pb2_grpc
from tests.support import triton_requests_and_rows, unreachable_address

pytestmark = pytest.mark.e2e

DEADLINE_S = 10.0


def recommend(gateway, *, metadata=(), tenant="shop-uk", timeout=DEADLINE_S, **fields):
    """A Recommend call authenticated with ``tenant``'s caller key, plus ``metadata``."""
    fields.setdefault("k", 10)
    fields.setdefault("feature", "home_feed")
    metadata = (*metadata, *gateway.metadata(tenant))
    with grpc.insecure_channel(gateway.address) as channel:
        stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
        response, call = stub.Recommend.with_call(
            recommendation_pb2.RecommendRequest(**fields), timeout=timeout, metadata=metadata
        )
        return response, dict(call.trailing_metadata())


def recommend_error(gateway, timeout=DEADLINE_S, **fields) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        recommend(gateway, timeout=timeout, **fields)
    return raised.value


def test_recommend_returns_k_catalog_items_with_titles_and_cost(gateway, catalog, buyers):
    user = buyers[0]
    response, trailing = recommend(gateway, user_id=user, k=10, tenant="acme")
    assert len(response.items) == 10
    assert all(item.item_id in catalog and item.title == catalog[item.item_id] for item in response.items)
    scores = [item.score for item in response.items]
    assert scores == sorted(scores, reverse=True)
    assert response.personalized
    info = response.info
    assert (info.model.name, info.placement.pool, info.placement.device) == ("recommender", "cpu-local", "cpu")
    assert info.model.version and info.model.build_id
    assert not info.cache_hit
    assert info.cost.currency == "USD" and info.cost.compute_ns > 0
    assert info.cost.egress == 0, "priced on the default path: same zone, free (tests/e2e/test_cost_origin_charges.py prices others)"
    assert info.cost.total == pytest.approx(info.cost.compute + info.cost.gateway + info.cost.cache + info.cost.egress)
    assert float(trailing["x-tollgate-cost"]) == info.cost.total
    assert trailing["x-tollgate-request-id"] == info.request_id
    assert int(trailing["x-tollgate-compute-ns"]) == info.cost.compute_ns


def test_no_excluded_or_already_bought_item_is_recommended(gateway, buyers, bought_by):
    user = buyers[1]
    first, _ = recommend(gateway, user_id=user, k=20)
    excluded = [item.item_id for item in first.items[:5]]
    second, _ = recommend(gateway, user_id=user, k=20, exclude_item_ids=excluded)
    returned = {item.item_id for item in second.items}
    assert len(second.items) == 20
    assert not returned & set(excluded)
    assert not returned & bought_by[user]
    assert not {item.item_id for item in first.items} & bought_by[user]


def test_a_repeated_call_is_a_cache_hit_that_costs_less(gateway, buyers):
    request = dict(user_id=buyers[2], k=7, exclude_item_ids=["85123A"])
    miss, _ = recommend(gateway, **request)
    hit, trailing = recommend(gateway, **request)
    assert not miss.info.cache_hit and hit.info.cache_hit
    assert trailing["x-tollgate-cache"] == "hit"
    assert [i.item_id for i in hit.items] == [i.item_id for i in miss.items]
    assert 0 < hit.info.cost.total < miss.info.cost.total
    assert hit.info.cost.compute_ns == 0
    assert hit.info.cost.avoided == pytest.approx(miss.info.cost.compute)


def test_an_unknown_user_gets_popular_items(gateway):
    response, _ = recommend(gateway, user_id="visitor-never-seen", k=5)
    assert len(response.items) == 5
    assert not response.personalized


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"user_id": ""}, "user_id"),
        ({"user_id": "17850", "k": 0}, "k"),
        ({"user_id": "17850", "k": 201}, "k"),
        ({"user_id": "17850", "feature": "Home Feed"}, "feature"),
        ({"user_id": "17850", "feature": ""}, "feature"),
        ({"user_id": "17850", "exclude_item_ids": ["x"] * 1001}, "exclude_item_ids"),
        ({"user_id": "u" * 65}, "user_id"),
    ],
)
def test_bad_input_is_invalid_argument_naming_the_field(gateway, fields, field):
    error = recommend_error(gateway, **fields)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(f"{field}:")
    trailing = dict(error.trailing_metadata())
    assert float(trailing["x-tollgate-cost"]) > 0, "a rejected call is still recorded with what it used"


def test_health_and_reflection_are_served(gateway):
    with grpc.insecure_channel(gateway.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "tollgate.v1.RecommendationService"):
            status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
            assert status == health_pb2.HealthCheckResponse.SERVING
        database = ProtoReflectionDescriptorDatabase(channel)
        assert "tollgate.v1.RecommendationService" in database.get_services()
        method = database.FindFileContainingSymbol("tollgate.v1.RecommendationService")
        assert method.package == "tollgate.v1"


def test_the_span_carries_cost_and_attribution_under_the_callers_trace(gateway, buyers):
    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    response, _ = recommend(gateway,
        user_id=buyers[3],
        feature="cart_upsell",
        metadata=(("traceparent", traceparent),),
        tenant="globex",
    )
    spans = _wait_for_spans(gateway.trace_file, f"0x{trace_id}", count=4)
    names = {span["name"] for span in spans}
    assert {"/tollgate.v1.RecommendationService/Recommend", "cache.lookup", "triton.infer", "cache.store"} <= names
    [rpc_span] = [span for span in spans if span["name"].endswith("/Recommend")]
    attributes = rpc_span["attributes"]
    assert attributes[attr.COST_TOTAL] == pytest.approx(response.info.cost.total)
    assert attributes[attr.REQUEST_ID] == response.info.request_id
    assert attributes[attr.FEATURE] == "cart_upsell"
    assert attributes[attr.TENANT] == "globex"
    assert attributes[attr.MODEL_NAME] == "recommender"
    assert attributes[attr.MODEL_VERSION] == response.info.model.version
    assert attributes[attr.POOL] == "cpu-local" and attributes[attr.DEVICE] == "cpu"
    assert attributes[attr.CACHE_HIT] is False
    assert attributes[attr.COMPUTE_NS] == response.info.cost.compute_ns


def _wait_for_spans(trace_file, trace_id, count, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if trace_file.exists():
            spans = [json.loads(line) for line in trace_file.read_text().splitlines() if line.strip()]
            mine = [span for span in spans if span["context"]["trace_id"] == trace_id]
            if len(mine) >= count:
                return mine
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} spans of trace {trace_id} in {trace_file}")


def test_the_ledger_holds_every_request_and_sums_to_the_responses_costs(gateway_factory, buyers):
    gateway = gateway_factory()
    costs: dict[str, float] = {}
    for i, user in enumerate(buyers[:12] * 2):
        feature = ("home_feed", "cart_upsell", "order_confirmation")[i % 3]
        response, _ = recommend(gateway, user_id=user, k=5, feature=feature)
        costs[feature] = costs.get(feature, 0.0) + response.info.cost.total
    error = recommend_error(gateway, user_id="17850", k=0, feature="home_feed")
    costs["home_feed"] += float(dict(error.trailing_metadata())["x-tollgate-cost"])
    assert gateway.stop() == 0, "the gateway stops cleanly on SIGTERM"

    ledger = SqliteLedger(gateway.ledger_path)
    assert ledger.count() == 25, "no cost record lost on a clean shutdown"
    by_feature = {row.group["feature"]: row.cost_total for row in ledger.summarize(["feature"])}
    assert by_feature.keys() == costs.keys()
    for feature, total in costs.items():
        assert by_feature[feature] == pytest.approx(total, rel=1e-9)


def test_triton_not_ready_is_unavailable_within_the_deadline(gateway_factory):
    gateway = gateway_factory(triton_url=unreachable_address(), require_serving=False)
    started = time.monotonic()
    error = recommend_error(gateway, user_id="17850", timeout=2.0)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - started < 2.0
    assert "Triton" in error.details()
    with grpc.insecure_channel(gateway.address) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status
    assert status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_an_unreachable_redis_still_serves_uncached_and_warns(gateway_factory, buyers):
    gateway = gateway_factory(redis_url=f"redis://{unreachable_address()}/0")
    for _ in range(3):
        response, trailing = recommend(gateway, user_id=buyers[4], k=5)
        assert len(response.items) == 5
        assert not response.info.cache_hit and trailing["x-tollgate-cache"] == "miss"
    log = gateway.log_path.read_text()
    assert log.count("skipping the cache for a cool-down") == 1, "one warning when the cache turns bad"


def test_the_trace_id_comes_back_on_answers_and_on_failures(gateway, buyers):
    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-00"
    _, trailing = recommend(gateway, user_id=buyers[0], k=3, feature="home_feed", metadata=(("traceparent", traceparent),))
    assert trailing["x-tollgate-trace-id"] == trace_id, "the caller's trace, sampled or not"
    _, own = recommend(gateway, user_id=buyers[0], k=3, feature="home_feed")
    assert len(own["x-tollgate-trace-id"]) == 32 and own["x-tollgate-trace-id"] != trace_id
    error = recommend_error(gateway, user_id=buyers[0], k=0, feature="home_feed")
    failed = dict(error.trailing_metadata())
    assert "x-tollgate-cost" in failed and len(failed["x-tollgate-trace-id"]) == 32


async def test_concurrent_misses_share_triton_requests_and_each_gets_its_own_answer_and_cost(
    gateway_factory, triton_server, buyers, catalog
):
    """Concurrent misses go to Triton as requests of several rows (padded_rows): fewer requests
    than calls, every row answered as if alone, each call billed its own row's compute."""
    coalescing = gateway_factory(cache_enabled=False)
    alone = gateway_factory(cache_enabled=False, triton_max_rows_per_call=1)
    item_ids = sorted(catalog)
    calls = [
        {"user_id": user, "k": 3 + n % 5, "exclude_item_ids": item_ids[n : n + n % 3]}
        for n, user in enumerate(buyers[:20] + ["stranger-1", "stranger-2"])
    ]

    async def send_all(gateway) -> list:
        metadata = gateway.metadata("shop-uk")
        async with grpc.aio.insecure_channel(gateway.address) as channel:
            stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
            return await asyncio.gather(*(
                stub.Recommend(
                    recommendation_pb2.RecommendRequest(feature="home_feed", **call), timeout=DEADLINE_S, metadata=metadata
                )
                for call in calls
            ))

    async with triton_aio.InferenceServerClient(triton_server.grpc_url) as client:
        before = triton_requests_and_rows(await client.get_inference_statistics("recommender", as_json=True))
        coalesced = await send_all(coalescing)
        after = triton_requests_and_rows(await client.get_inference_statistics("recommender", as_json=True))
        separate = await send_all(alone)
        last = triton_requests_and_rows(await client.get_inference_statistics("recommender", as_json=True))

    requests, rows = after[0] - before[0], after[1] - before[1]
    assert rows == len(calls) and requests < len(calls)  # several rows per Triton request
    assert (last[0] - after[0], last[1] - after[1]) == (len(calls), len(calls))  # one row per request when off
    for call, response, reference in zip(calls, coalesced, separate):
        assert [(i.item_id, i.title) for i in response.items] == [(i.item_id, i.title) for i in reference.items]
        assert [i.score for i in response.items] == pytest.approx([i.score for i in reference.items])
        assert len(response.items) == call["k"] and not set(call["exclude_item_ids"]) & {i.item_id for i in response.items}
        assert response.personalized == reference.personalized
        assert response.info.cost.compute_ns > 0 and not response.info.cache_hit
    assert coalescing.stop() == 0
    ledger = SqliteLedger(coalescing.ledger_path)
    assert ledger.count() == len(calls)
    billed = sum(row.compute_ns for row in ledger.summarize(["feature"]))
    assert billed == sum(response.info.cost.compute_ns for response in coalesced)
