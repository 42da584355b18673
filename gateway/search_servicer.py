"""gRPC servicer of tollgate.v1.SearchService: proto in, RequestFlow, bytes out."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from gateway.api import search_pb2
from gateway.call_tracing import CallTracer
from gateway.grpc_call import CallerReader, Method, run_call
from gateway.lenient_decoding import UndecodableRequest
from gateway.request_flow import RequestFlow
from gateway.response_wire import search_response
from gateway.search_route import SearchRoute
from gateway.validation import Limits, SearchQuery, validate_search

SERVICE = search_pb2.DESCRIPTOR.services_by_name["SearchService"]
SEARCH = Method(SERVICE.full_name, "Search")


class SearchServicer:
    def __init__(
        self,
        flow: RequestFlow,
        route: SearchRoute,
        limits: Limits,
        callers: CallerReader,
        tracer: CallTracer | None = None,
    ) -> None:
        self._flow = flow
        self._route = route
        self._limits = limits
        self._callers = callers
        self._tracer = tracer

    async def Search(
        self, request: search_pb2.SearchRequest | UndecodableRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        """A serialised SearchResponse."""
        done = await run_call(
            self._flow, self._route, request, context, self._callers, self._validator, self._tracer, SEARCH
        )
        return search_response(done.answer.items_wire, done.info)

    def _validator(self, request: search_pb2.SearchRequest) -> Callable[[], SearchQuery]:
        return lambda: validate_search(
            request.query, request.k, request.feature, list(request.filters.exclude_item_ids), self._limits
        )
