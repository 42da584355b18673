"""The responses the gateway writes by hand are byte for byte what protobuf serialises."""

import pytest

from costing.cost import RequestCost
from gateway.answers import ModelAnswer, RankedItem
from gateway.api import common_pb2, recommendation_pb2, search_pb2
from gateway.response_wire import recommend_response, response_info, search_response
from gateway.settlement import AnswerInfo

COST = RequestCost("USD", 1_000_000, 200_000, 50_000, 3_000, 0, True, 250_000, "2026-11")
MISS = AnswerInfo("a" * 32, "recommender", "1", "b7", "cpu-local", "cpu", "private", "primary", 1, False, COST)
HIT = AnswerInfo("b" * 32, "recommender", "1", "b7", "cpu-local", "", "", "", 0, True,
                 RequestCost("USD", 0, 100_000, 0, 0, 1_000_000, True, 0, "2026-11"))  # fmt: skip
REJECTED = AnswerInfo("c" * 32, "recommender", "", "", "", "", "", "", 0, False, RequestCost("USD", 0, 0, 0, 0, 0, True, 0, ""))


def expected_info(info):
    cost = info.cost
    return common_pb2.ResponseInfo(
        request_id=info.request_id,
        model=common_pb2.ModelRef(name=info.model_name, version=info.model_version, build_id=info.build_id),
        placement=common_pb2.Placement(
            pool=info.pool, device=info.device, location=info.location, reason=info.route_reason, attempts=info.attempts
        ),
        cache_hit=info.cache_hit,
        cost=common_pb2.Cost(
            currency=cost.currency, total=cost.total, compute=cost.compute, gateway=cost.gateway, cache=cost.cache,
            egress=cost.egress, avoided=cost.avoided, compute_ns=cost.compute_ns,
            price_book_version=cost.price_book_version,
        ),
    )  # fmt: skip


@pytest.mark.parametrize("info", [MISS, HIT, REJECTED])
def test_response_info_is_protobufs_own_encoding(info):
    assert response_info(info) == expected_info(info).SerializeToString()


@pytest.mark.parametrize("personalized", [True, False])
def test_responses_are_protobufs_own_encoding(personalized):
    ranked = (RankedItem("85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 0.93), RankedItem("22423", "REGENCY CAKESTAND", 0.5))
    answer = ModelAnswer.of(ranked, 250_000, "1", personalized)
    items = [common_pb2.Item(item_id=i.item_id, title=i.title, score=i.score) for i in ranked]
    recommend = recommendation_pb2.RecommendResponse(items=items, personalized=personalized, info=expected_info(MISS))
    assert recommend_response(answer.items_wire, personalized, MISS) == recommend.SerializeToString()
    search = search_pb2.SearchResponse(items=items, info=expected_info(MISS))
    assert search_response(answer.items_wire, MISS) == search.SerializeToString()
