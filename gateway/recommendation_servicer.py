"""gRPC servicer of tollgate.v1.RecommendationService: proto in, RequestFlow, bytes out."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from gateway.api import recommendation_pb2
from gateway.call_tracing import CallTracer
from gateway.grpc_call import CallerReader, Method, run_call
from gateway.lenient_decoding import UndecodableRequest
from gateway.recommend_route import RecommendRoute
from gateway.request_flow import RequestFlow
from gateway.response_wire import recommend_response
from gateway.validation import Limits, RecommendQuery, validate_recommend

SERVICE = recommendation_pb2.DESCRIPTOR.services_by_name["RecommendationService"]
RECOMMEND = Method(SERVICE.full_name, "Recommend")


class RecommendationServicer:
    def __init__(
        self,
        flow: RequestFlow,
        route: RecommendRoute,
        limits: Limits,
        callers: CallerReader,
        tracer: CallTracer | None = None,
    ) -> None:
        self._flow = flow
        self._route = route
        self._limits = limits
        self._callers = callers
        self._tracer = tracer

    async def Recommend(
        self, request: recommendation_pb2.RecommendRequest | UndecodableRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        """A serialised RecommendResponse (the items as the model, or the cache, gave them)."""
        done = await run_call(
            self._flow, self._route, request, context, self._callers, self._validator, self._tracer, RECOMMEND
        )
        return recommend_response(done.answer.items_wire, done.answer.personalized, done.info)

    def _validator(self, request: recommendation_pb2.RecommendRequest) -> Callable[[], RecommendQuery]:
        return lambda: validate_recommend(
            request.user_id, request.k, request.feature, list(request.exclude_item_ids), self._limits
        )
