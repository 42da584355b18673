"""Search end to end: real gateway process, real Triton (query_encoder -> product_index
ensemble), real Redis, real gRPC on loopback."""

from __future__ import annotations

import asyncio

import grpc
import pytest
import tritonclient.grpc.aio as triton_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from costing.ledger import SqliteLedger
from gateway.api import recommendation_pb2, search_pb2, search_pb2_grpc
from tests.support import triton_requests_and_rows

pytestmark = pytest.mark.e2e

DEADLINE_S = 10.0


def search(gateway, *, exclude=(), timeout=DEADLINE_S, metadata=(), tenant="shop-uk", **fields):
    """A Search call authenticated with ``tenant``'s caller key, plus ``metadata``."""
    fields.setdefault("k", 10)
    fields.setdefault("feature", "search_box")
    metadata = (*metadata, *gateway.metadata(tenant))
    with grpc.insecure_channel(gateway.address) as channel:
        stub = search_pb2_grpc.SearchServiceStub(channel)
        request = search_pb2.SearchRequest(filters=search_pb2.SearchFilters(exclude_item_ids=list(exclude)), **fields)
        response, call = stub.Search.with_call(request, timeout=timeout, metadata=metadata)
        return response, dict(call.trailing_metadata())


def call_raw(gateway, method: str, payload: bytes) -> grpc.RpcError:
    """Sends bytes as they are (e.g. a string field that is not UTF-8), as a buggy client would."""
    with grpc.insecure_channel(gateway.address) as channel:
        rpc = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as raised:
            rpc(payload, timeout=DEADLINE_S, metadata=gateway.metadata())
        return raised.value


def test_search_returns_relevant_catalog_items_with_titles_and_cost(gateway_factory, cache_prefix, catalog):
    # A cache of its own: README's journey asks the same query, and a hit would run no model.
    gateway = gateway_factory(cache_prefix=f"{cache_prefix}search-miss:")
    response, trailing = search(gateway, query="red retrospot lunch bag", k=10)
    assert len(response.items) == 10
    assert all(item.item_id in catalog and item.title == catalog[item.item_id] for item in response.items)
    scores = [item.score for item in response.items]
    assert scores == sorted(scores, reverse=True)
    assert "LUNCH BAG" in response.items[0].title and "RETROSPOT" in response.items[0].title
    info = response.info
    assert (info.model.name, info.placement.pool, info.placement.device) == ("product_search", "cpu-local", "cpu")
    assert info.model.build_id and not info.cache_hit
    assert info.cost.compute_ns > 0 and info.cost.total > 0
    assert float(trailing["x-tollgate-cost"]) == info.cost.total


def test_a_query_without_any_lexical_match_still_gets_the_best_k(gateway):
    response, _ = search(gateway, query="zqxv blorptang", k=7)
    assert len(response.items) == 7


def test_a_semantic_query_finds_products_by_meaning(gateway):
    response, _ = search(gateway, query="something to keep tea hot", k=10)
    titles = " ".join(item.title for item in response.items)
    assert "TEA" in titles or "COSY" in titles or "FLASK" in titles, titles


def test_the_same_query_typed_differently_is_a_cache_hit_that_costs_less(gateway):
    miss, _ = search(gateway, query="vintage  Paisley gift wrap", k=5)
    hit, trailing = search(gateway, query="Vintage paisley GIFT wrap ", k=5, feature="search_autocomplete")
    assert not miss.info.cache_hit and hit.info.cache_hit and trailing["x-tollgate-cache"] == "hit"
    assert [i.item_id for i in hit.items] == [i.item_id for i in miss.items]
    assert 0 < hit.info.cost.total < miss.info.cost.total
    assert hit.info.cost.avoided == pytest.approx(miss.info.cost.compute)


def test_excluded_items_are_filtered_and_k_is_still_met(gateway):
    first, _ = search(gateway, query="christmas decoration", k=10)
    excluded = [item.item_id for item in first.items[:4]]
    second, _ = search(gateway, query="christmas decoration", k=10, exclude=excluded)
    assert len(second.items) == 10
    assert not {item.item_id for item in second.items} & set(excluded)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": "   \t "}, "query"),
        ({"query": "bag " * 100}, "query"),
        ({"query": "bag", "k": 0}, "k"),
        ({"query": "bag", "k": 500}, "k"),
        ({"query": "bag", "feature": "Search-Box"}, "feature"),
    ],
)
def test_bad_input_is_invalid_argument_naming_the_field(gateway, fields, field):
    with pytest.raises(grpc.RpcError) as raised:
        search(gateway, **fields)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details().startswith(f"{field}:")


def test_bad_utf8_is_invalid_argument_naming_the_field_not_internal(gateway):
    query = search_pb2.SearchRequest(query="QQQ", k=3, feature="search_box").SerializeToString()
    error = call_raw(gateway, "/tollgate.v1.SearchService/Search", query.replace(b"QQQ", b"\xff\xfe\xfd"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "query: is not valid UTF-8"
    assert float(dict(error.trailing_metadata())["x-tollgate-cost"]) > 0

    user = recommendation_pb2.RecommendRequest(user_id="UUU", k=3, feature="home_feed").SerializeToString()
    error = call_raw(gateway, "/tollgate.v1.RecommendationService/Recommend", user.replace(b"UUU", b"\xc3\x28!"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "user_id: is not valid UTF-8"


def test_search_health_is_served(gateway):
    with grpc.insecure_channel(gateway.address) as channel:
        request = health_pb2.HealthCheckRequest(service="tollgate.v1.SearchService")
        status = health_pb2_grpc.HealthStub(channel).Check(request, timeout=5).status
    assert status == health_pb2.HealthCheckResponse.SERVING


def test_search_costs_reach_the_ledger_under_their_rpc_and_feature(gateway_factory):
    gateway = gateway_factory()
    total = 0.0
    for query in ("heart t-light holder", "heart t-light holder", "paper chain kit", "jam jar"):
        response, _ = search(gateway, query=query, k=5, feature="search_box")
        total += response.info.cost.total
    assert gateway.stop() == 0
    ledger = SqliteLedger(gateway.ledger_path)
    [row] = ledger.summarize(["rpc", "feature"])
    assert (row.group["rpc"], row.group["feature"], row.requests, row.cache_hits) == ("Search", "search_box", 4, 1)
    assert row.cost_total == pytest.approx(total, rel=1e-9)


async def test_concurrent_search_misses_share_triton_requests(gateway_factory, triton_server, catalog):
    """Searches of different k and exclusions go to the ensemble as requests of several rows."""
    gateway = gateway_factory(cache_enabled=False)
    queries = ["lunch bag", "doormat", "jumbo bag", "t-light holder", "cake tins", "alarm clock"] * 3
    item_ids = sorted(catalog)
    calls = [
        {"query": query, "k": 2 + n % 6, "exclude_item_ids": item_ids[n : n + n % 2]} for n, query in enumerate(queries)
    ]
    metadata = gateway.metadata("shop-uk")

    async with triton_aio.InferenceServerClient(triton_server.grpc_url) as client:
        before = triton_requests_and_rows(await client.get_inference_statistics("product_search", as_json=True))
        async with grpc.aio.insecure_channel(gateway.address) as channel:
            stub = search_pb2_grpc.SearchServiceStub(channel)
            answers = await asyncio.gather(*(
                stub.Search(
                    search_pb2.SearchRequest(
                        feature="search_box", query=call["query"], k=call["k"],
                        filters=search_pb2.SearchFilters(exclude_item_ids=call["exclude_item_ids"]),
                    ),
                    timeout=30, metadata=metadata,
                )  # fmt: skip
                for call in calls
            ))
        after = triton_requests_and_rows(await client.get_inference_statistics("product_search", as_json=True))
    assert after[1] - before[1] == len(calls) and after[0] - before[0] < len(calls)
    for call, answer in zip(calls, answers):
        got = [item.item_id for item in answer.items]
        assert len(got) == call["k"] and all(item in catalog for item in got)
        assert not set(got) & set(call["exclude_item_ids"])
        assert answer.info.cost.compute_ns > 0
