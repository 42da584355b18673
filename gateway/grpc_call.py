"""The gRPC side of a call, the same for every servicer: read the caller, register leniently,
run the call through the flow, and put the answer and its cost on the wire.

The cost goes back in the response's ``info`` and as trailing metadata — on failures too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor

from gateway.api_keys import Principal, Role
from gateway.authentication import AUTHORIZATION_KEY, Authenticator, require
from gateway.call_tracing import NO_TRACE, TRACEPARENT, TRACESTATE, CallTracer
from gateway.errors import RequestError
from gateway.lenient_decoding import UndecodableRequest, lenient_deserializer
from gateway.request_flow import Answered, Caller, RequestFlow, Route
from gateway.settlement import AnswerInfo, SettledRequestError
from gateway.tenants import TenantRegistry

# Trailing metadata keys that carry the cost back to the caller.
COST_METADATA_KEY = "x-tollgate-cost"
CURRENCY_METADATA_KEY = "x-tollgate-currency"
COMPUTE_NS_METADATA_KEY = "x-tollgate-compute-ns"
REQUEST_ID_METADATA_KEY = "x-tollgate-request-id"
CACHE_METADATA_KEY = "x-tollgate-cache"
# The call's W3C trace id (32 hex digits), sampled or not: what to look the trace up by.
TRACE_ID_METADATA_KEY = "x-tollgate-trace-id"


class CallerReader:
    """Who is calling (from its credential, never from free-text metadata) and its deadline."""

    def __init__(
        self, authenticator: Authenticator, tenants: TenantRegistry, on_refused: Callable[[str], None] | None = None
    ) -> None:
        """``on_refused(status)``: counts every refused credential or right."""
        self._authenticator = authenticator
        self.tenants = tenants
        self._on_refused = on_refused

    def principal(self, context: grpc.aio.ServicerContext, *roles: Role) -> Principal:
        """The authenticated caller holding one of ``roles``; raises Unauthenticated or PermissionDenied."""
        try:
            principal = self._authenticator.authenticate(context.invocation_metadata() or (), context.auth_context())
            require(principal, *roles)
        except RequestError as error:
            if self._on_refused is not None:
                self._on_refused(error.status.lower())
            raise
        return principal

    def read_token(self, token: str | bytes | None, context: grpc.aio.ServicerContext, feature: str) -> Caller:
        """A caller allowed to call the models, from its ``authorization`` header (already
        read from the metadata) or its client certificate, with the bounded label of its feature."""
        try:
            principal = self._authenticator.authenticate_token(token, context.auth_context)
            require(principal, Role.CALLER)
        except RequestError as error:
            if self._on_refused is not None:
                self._on_refused(error.status.lower())
            raise
        return Caller(principal.tenant, context.time_remaining(), self.tenants.label(principal.tenant, feature))


async def abort(context: grpc.aio.ServicerContext, error: RequestError) -> NoReturn:
    """Ends a call that never became a request (no credential, no right): nothing to price."""
    await context.abort(grpc.StatusCode[error.status], error.message)
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises


def register(server: grpc.aio.Server, service: ServiceDescriptor, servicer: object) -> None:
    """Adds a unary servicer with :func:`lenient_deserializer` for every method's request, so a
    request with a malformed field reaches the servicer as an UndecodableRequest. A servicer
    may answer with a message or with its serialised bytes (gateway/response_wire.py)."""
    handlers = {}
    for method in service.methods:
        request_class = message_factory.GetMessageClass(method.input_type)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            getattr(servicer, method.name),
            request_deserializer=lenient_deserializer(request_class),
            response_serializer=_serialized,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))


def cost_metadata(info: AnswerInfo, trace_id: str = "") -> tuple[tuple[str, str], ...]:
    """The cost trailers, and the W3C trace id of the call when it has one."""
    trailers = (
        (COST_METADATA_KEY, repr(info.cost.total)),
        (CURRENCY_METADATA_KEY, info.cost.currency),
        (COMPUTE_NS_METADATA_KEY, str(info.cost.compute_ns)),
        (REQUEST_ID_METADATA_KEY, info.request_id),
        (CACHE_METADATA_KEY, "hit" if info.cache_hit else "miss"),
    )
    return (*trailers, (TRACE_ID_METADATA_KEY, trace_id)) if trace_id else trailers


async def abort_with_cost(context: grpc.aio.ServicerContext, error: SettledRequestError, trace_id: str = "") -> NoReturn:
    context.set_trailing_metadata(cost_metadata(error.info, trace_id))
    await context.abort(grpc.StatusCode[error.status], error.message)
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises


@dataclass(frozen=True)
class Method:
    """The RPC a servicer serves, as its trace names it."""

    service: str  # e.g. tollgate.v1.RecommendationService
    name: str  # e.g. Recommend

    @property
    def span_name(self) -> str:
        return f"/{self.service}/{self.name}"


async def run_call(
    flow: RequestFlow,
    route: Route[Any],
    request: Any,
    context: grpc.aio.ServicerContext,
    callers: CallerReader,
    validator: Callable[[Any], Callable[[], Any]],
    tracer: CallTracer | None = None,
    method: Method | None = None,
) -> Answered:
    """Runs a request through the flow; a failure aborts the call with its status and cost.

    ``validator(request)`` returns the validation to run inside the flow (so its CPU time is
    metered and its failure settled like any other). ``tracer`` opens the call's trace from
    its metadata (None: tracing off)."""
    token = traceparent = tracestate = None
    for key, value in context.invocation_metadata() or ():
        if key == AUTHORIZATION_KEY:
            token = value
        elif key == TRACEPARENT:
            traceparent = value
        elif key == TRACESTATE:
            tracestate = value
    feature = "" if isinstance(request, UndecodableRequest) else request.feature
    try:
        caller = callers.read_token(token, context, feature)
    except RequestError as error:
        await abort(context, error)
    refusal = flow.refusal()
    if refusal is not None:
        await abort(context, refusal)
    if isinstance(request, UndecodableRequest):
        validate = request.reject
    else:
        validate = _declared(validator(request), callers.tenants, caller.tenant)
    call_trace = NO_TRACE
    if tracer is not None and method is not None:
        call_trace = tracer.begin(method.span_name, method.service, method.name, traceparent, tracestate)
    try:
        done = await flow.run(route, caller, validate, call_trace)
    except SettledRequestError as error:
        await abort_with_cost(context, error, call_trace.trace_id)
    context.set_trailing_metadata(cost_metadata(done.info, call_trace.trace_id))
    return done


def _serialized(response: bytes | Any) -> bytes:
    return response if type(response) is bytes else response.SerializeToString()


def _declared(validate: Callable[[], Any], tenants: TenantRegistry, tenant: str) -> Callable[[], Any]:
    """The RPC's validation, then the feature's declaration for the tenant (INVALID_ARGUMENT when
    undeclared and so configured)."""

    def checked() -> Any:
        query = validate()
        tenants.feature_label(tenant, query.feature)
        return query

    return checked
