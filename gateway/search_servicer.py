"""gRPC servicer of tollgate.v1.SearchService: proto in, RequestFlow, proto out."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from gateway.api import search_pb2
from gateway.grpc_call import CallerReader, items, response_info, run_call
from gateway.lenient_decoding import UndecodableRequest
from gateway.request_flow import RequestFlow
from gateway.search_route import SearchRoute
from gateway.validation import Limits, SearchQuery, validate_search

SERVICE = search_pb2.DESCRIPTOR.services_by_name["SearchService"]


class SearchServicer:
    def __init__(self, flow: RequestFlow, route: SearchRoute, limits: Limits, callers: CallerReader) -> None:
        self._flow = flow
        self._route = route
        self._limits = limits
        self._callers = callers

    async def Search(
        self, request: search_pb2.SearchRequest | UndecodableRequest, context: grpc.aio.ServicerContext
    ) -> search_pb2.SearchResponse:
        done = await run_call(self._flow, self._route, request, context, self._callers, self._validator)
        return search_pb2.SearchResponse(items=items(done.answer.items), info=response_info(done.info))

    def _validator(self, request: search_pb2.SearchRequest) -> Callable[[], SearchQuery]:
        return lambda: validate_search(
            request.query, request.k, request.feature, list(request.filters.exclude_item_ids), self._limits
        )
