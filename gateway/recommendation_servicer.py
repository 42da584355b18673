"""gRPC servicer of tollgate.v1.RecommendationService: translates proto <-> RecommendFlow.

Thin on purpose: read the caller's tenant and deadline, run the flow, build the response, and
return the cost both in the response and as trailing metadata (on failures too).
"""

from __future__ import annotations

import grpc

from gateway.api import common_pb2, recommendation_pb2, recommendation_pb2_grpc
from gateway.recommend_flow import AnswerInfo, RecommendCall, RecommendFlow, SettledRequestError

# Trailing metadata keys that carry the cost back to the caller.
COST_METADATA_KEY = "x-tollgate-cost"
CURRENCY_METADATA_KEY = "x-tollgate-currency"
COMPUTE_NS_METADATA_KEY = "x-tollgate-compute-ns"
REQUEST_ID_METADATA_KEY = "x-tollgate-request-id"
CACHE_METADATA_KEY = "x-tollgate-cache"


class RecommendationServicer(recommendation_pb2_grpc.RecommendationServiceServicer):
    def __init__(self, flow: RecommendFlow, tenant_metadata_key: str, default_tenant: str) -> None:
        self._flow = flow
        self._tenant_key = tenant_metadata_key
        self._default_tenant = default_tenant

    async def Recommend(
        self, request: recommendation_pb2.RecommendRequest, context: grpc.aio.ServicerContext
    ) -> recommendation_pb2.RecommendResponse:
        call = RecommendCall(
            user_id=request.user_id,
            k=request.k,
            feature=request.feature,
            exclude_item_ids=list(request.exclude_item_ids),
            tenant=_metadata_value(context, self._tenant_key) or self._default_tenant,
            time_remaining_s=context.time_remaining(),
        )
        try:
            result = await self._flow.recommend(call)
        except SettledRequestError as error:
            context.set_trailing_metadata(cost_metadata(error.info))
            await context.abort(grpc.StatusCode[error.status], error.message)
        context.set_trailing_metadata(cost_metadata(result.info))
        return recommendation_pb2.RecommendResponse(
            items=[common_pb2.Item(item_id=i.item_id, title=i.title, score=i.score) for i in result.items],
            personalized=result.personalized,
            info=response_info(result.info),
        )


def _metadata_value(context: grpc.aio.ServicerContext, key: str) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if name == key:
            return value if isinstance(value, str) else value.decode()
    return None


def response_info(info: AnswerInfo) -> common_pb2.ResponseInfo:
    cost = info.cost
    return common_pb2.ResponseInfo(
        request_id=info.request_id,
        model=common_pb2.ModelRef(name=info.model_name, version=info.model_version, build_id=info.build_id),
        placement=common_pb2.Placement(pool=info.pool, device=info.device),
        cache_hit=info.cache_hit,
        cost=common_pb2.Cost(
            currency=cost.currency,
            total=cost.total,
            compute=cost.compute,
            gateway=cost.gateway,
            cache=cost.cache,
            avoided=cost.avoided,
            compute_ns=cost.compute_ns,
            price_book_version=cost.price_book_version,
        ),
    )


def cost_metadata(info: AnswerInfo) -> tuple[tuple[str, str], ...]:
    return (
        (COST_METADATA_KEY, repr(info.cost.total)),
        (CURRENCY_METADATA_KEY, info.cost.currency),
        (COMPUTE_NS_METADATA_KEY, str(info.cost.compute_ns)),
        (REQUEST_ID_METADATA_KEY, info.request_id),
        (CACHE_METADATA_KEY, "hit" if info.cache_hit else "miss"),
    )
