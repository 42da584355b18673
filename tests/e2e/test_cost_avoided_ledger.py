"""What a cache hit saved, as the gateway wrote it to its ledger: real gateway process, Triton,
Redis and gRPC on loopback.

How costing defines it (costing/cost.py, ``price_request``): a hit runs no model; its
``cost_avoided`` is the compute its cached answer originally cost, priced on the pool that
computed it, plus that pool's and model's overhead share:
``round(avoided COMPUTE_NS x pool price per ns x (1 + overhead / direct of the last booked
window))``, in pico-$. With reconciliation off no window is ever booked, the overhead share is
0, and the avoided cost is exactly the compute cost the miss was charged. ``avoided_is_cash``
is false when that pool is provisioned (paid for anyway): cpu-local is.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import grpc
import pytest

from costing.ledger import SqliteLedger
from costing.money import NS_PER_HOUR, PICO_PER_UNIT, exact, round_half_up
from costing.price_book import load_price_book
from gateway.api import recommendation_pb2, recommendation_pb2_grpc, search_pb2, search_pb2_grpc
from tests.support import wait_for

pytestmark = pytest.mark.e2e

BOOK = Path(__file__).resolve().parents[2] / "costing" / "price_book.toml"
DEADLINE_S = 10.0
LEDGER_WAIT_S = 10.0


def _recommend(gateway, user_id: str, exclude: str) -> str:
    with grpc.insecure_channel(gateway.address) as channel:
        stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
        request = recommendation_pb2.RecommendRequest(user_id=user_id, k=6, feature="home_feed", exclude_item_ids=[exclude])
        _, call = stub.Recommend.with_call(request, timeout=DEADLINE_S, metadata=gateway.metadata())
        return dict(call.trailing_metadata())["x-tollgate-request-id"]


def _search(gateway, query: str) -> str:
    with grpc.insecure_channel(gateway.address) as channel:
        stub = search_pb2_grpc.SearchServiceStub(channel)
        request = search_pb2.SearchRequest(query=query, k=4, feature="search_box")
        _, call = stub.Search.with_call(request, timeout=DEADLINE_S, metadata=gateway.metadata())
        return dict(call.trailing_metadata())["x-tollgate-request-id"]


def _records(gateway, request_ids: list[str]) -> dict:
    def written():
        with SqliteLedger(gateway.ledger_path, create=False) as ledger:
            found = {record.request_id: record for record in ledger.records() if record.request_id in request_ids}
        return found if len(found) == len(request_ids) else None

    return wait_for(written, LEDGER_WAIT_S, f"the ledger records of {request_ids}")


def test_a_hit_records_the_compute_cost_of_the_miss_it_replaced(gateway_factory, buyers):
    gateway = gateway_factory(reconciliation_enabled=False)
    unique = uuid.uuid4().hex  # a request no other test cached
    calls = {
        "recommend": [_recommend(gateway, buyers[3], f"no-such-item-{unique}") for _ in range(2)],
        "search": [_search(gateway, f"red lunch bag {unique}") for _ in range(2)],
    }
    records = _records(gateway, [request_id for ids in calls.values() for request_id in ids])
    book = load_price_book(BOOK)
    for rpc, (miss_id, hit_id) in calls.items():
        miss, hit = records[miss_id], records[hit_id]
        assert (miss.cache_hit, hit.cache_hit) == (False, True), rpc
        assert miss.pool == "cpu-local" and miss.compute_ns > 0, rpc
        pico_per_ns = exact(book.pool(miss.pool).usd_per_unit_hour) * PICO_PER_UNIT / NS_PER_HOUR
        miss_compute_pico = round_half_up(miss.compute_ns * pico_per_ns)
        assert miss.cost_compute_pico == miss_compute_pico and miss.cost_avoided_pico == 0, rpc
        # The hit ran nothing, on the cache pool, and saved exactly what the miss's compute cost.
        assert (hit.pool, hit.compute_ns, hit.cost_compute_pico) == ("cache", 0, 0), rpc
        assert hit.cost_avoided_pico == miss_compute_pico, rpc
        assert hit.avoided_is_cash is False, f"{rpc}: cpu-local is provisioned, its compute is paid anyway"
        assert hit.cost_total_pico == hit.cost_gateway_pico + hit.cost_cache_pico + hit.cost_egress_pico, rpc
