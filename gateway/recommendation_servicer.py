"""gRPC servicer of tollgate.v1.RecommendationService: proto in, RequestFlow, proto out."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from gateway.api import recommendation_pb2
from gateway.grpc_call import CallerReader, items, response_info, run_call
from gateway.lenient_decoding import UndecodableRequest
from gateway.recommend_route import RecommendRoute
from gateway.request_flow import RequestFlow
from gateway.validation import Limits, RecommendQuery, validate_recommend

SERVICE = recommendation_pb2.DESCRIPTOR.services_by_name["RecommendationService"]


class RecommendationServicer:
    def __init__(self, flow: RequestFlow, route: RecommendRoute, limits: Limits, callers: CallerReader) -> None:
        self._flow = flow
        self._route = route
        self._limits = limits
        self._callers = callers

    async def Recommend(
        self, request: recommendation_pb2.RecommendRequest | UndecodableRequest, context: grpc.aio.ServicerContext
    ) -> recommendation_pb2.RecommendResponse:
        done = await run_call(self._flow, self._route, request, context, self._callers, self._validator)
        return recommendation_pb2.RecommendResponse(
            items=items(done.answer.items), personalized=done.answer.personalized, info=response_info(done.info)
        )

    def _validator(self, request: recommendation_pb2.RecommendRequest) -> Callable[[], RecommendQuery]:
        return lambda: validate_recommend(
            request.user_id, request.k, request.feature, list(request.exclude_item_ids), self._limits
        )
