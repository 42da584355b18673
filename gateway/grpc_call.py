"""The gRPC side of a call, the same for every servicer: read the caller, register leniently,
run the call through the flow, and put the answer and its cost on the wire.

The cost goes back in the response's ``info`` and as trailing metadata — on failures too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor

from gateway.answers import ModelAnswer, RankedItem
from gateway.api import common_pb2
from gateway.api_keys import Principal, Role
from gateway.authentication import Authenticator, require
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
# A float field on the wire: a tag byte and 4 bytes.
FLOAT_FIELD_BYTES = 5


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

    def read(self, context: grpc.aio.ServicerContext, feature: str) -> Caller:
        """A caller allowed to call the models, with the bounded label of its feature."""
        principal = self.principal(context, Role.CALLER)
        return Caller(
            tenant=principal.tenant,
            time_remaining_s=context.time_remaining(),
            feature_label=self.tenants.label(principal.tenant, feature),
        )


async def abort(context: grpc.aio.ServicerContext, error: RequestError) -> NoReturn:
    """Ends a call that never became a request (no credential, no right): nothing to price."""
    await context.abort(grpc.StatusCode[error.status], error.message)
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises


def register(server: grpc.aio.Server, service: ServiceDescriptor, servicer: object) -> None:
    """Adds a unary servicer with :func:`lenient_deserializer` for every method's request, so a
    request with a malformed field reaches the servicer as an UndecodableRequest."""
    handlers = {}
    for method in service.methods:
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            getattr(servicer, method.name),
            request_deserializer=lenient_deserializer(request_class),
            response_serializer=response_class.SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))


def response_info(info: AnswerInfo) -> common_pb2.ResponseInfo:
    cost = info.cost
    return common_pb2.ResponseInfo(
        request_id=info.request_id,
        model=common_pb2.ModelRef(name=info.model_name, version=info.model_version, build_id=info.build_id),
        placement=common_pb2.Placement(
            pool=info.pool,
            device=info.device,
            location=info.location,
            reason=info.route_reason,
            attempts=info.attempts,
        ),
        cache_hit=info.cache_hit,
        cost=common_pb2.Cost(
            currency=cost.currency,
            total=cost.total,
            compute=cost.compute,
            gateway=cost.gateway,
            cache=cost.cache,
            egress=cost.egress,
            avoided=cost.avoided,
            compute_ns=cost.compute_ns,
            price_book_version=cost.price_book_version,
        ),
    )


def items(answer_items: tuple[RankedItem, ...]) -> list[common_pb2.Item]:
    return [common_pb2.Item(item_id=i.item_id, title=i.title, score=i.score) for i in answer_items]


def payload_bytes(answer: ModelAnswer) -> int:
    """Bytes of the answer's items on the wire (the priced egress), as protobuf encodes the
    repeated ``Item`` field, computed without building the messages. The response envelope
    (ResponseInfo, about 150 bytes, which holds the cost itself) is not counted."""
    return sum(_length_delimited_bytes(_item_bytes(item)) for item in answer.items)


def _item_bytes(item: RankedItem) -> int:
    """Item{item_id = 1, title = 2, score = 3 (float)}; proto3 leaves out empty and zero fields."""
    size = sum(_length_delimited_bytes(len(text.encode())) for text in (item.item_id, item.title) if text)
    return size + (FLOAT_FIELD_BYTES if item.score != 0.0 else 0)


def _length_delimited_bytes(size: int) -> int:
    """A length-delimited field (field number < 16) on the wire: tag byte, length varint, body."""
    return 1 + max(1, (size.bit_length() + 6) // 7) + size


def cost_metadata(info: AnswerInfo) -> tuple[tuple[str, str], ...]:
    return (
        (COST_METADATA_KEY, repr(info.cost.total)),
        (CURRENCY_METADATA_KEY, info.cost.currency),
        (COMPUTE_NS_METADATA_KEY, str(info.cost.compute_ns)),
        (REQUEST_ID_METADATA_KEY, info.request_id),
        (CACHE_METADATA_KEY, "hit" if info.cache_hit else "miss"),
    )


async def abort_with_cost(context: grpc.aio.ServicerContext, error: SettledRequestError) -> NoReturn:
    context.set_trailing_metadata(cost_metadata(error.info))
    await context.abort(grpc.StatusCode[error.status], error.message)
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises


async def run_call(
    flow: RequestFlow,
    route: Route[Any],
    request: Any,
    context: grpc.aio.ServicerContext,
    callers: CallerReader,
    validator: Callable[[Any], Callable[[], Any]],
) -> Answered:
    """Runs a request through the flow; a failure aborts the call with its status and cost.

    ``validator(request)`` returns the validation to run inside the flow (so its CPU time is
    metered and its failure settled like any other)."""
    feature = "" if isinstance(request, UndecodableRequest) else request.feature
    try:
        caller = callers.read(context, feature)
    except RequestError as error:
        await abort(context, error)
    refusal = flow.refusal()
    if refusal is not None:
        await abort(context, refusal)
    if isinstance(request, UndecodableRequest):
        validate = request.reject
    else:
        validate = _declared(validator(request), callers.tenants, caller.tenant)
    try:
        done = await flow.run(route, caller, validate)
    except SettledRequestError as error:
        await abort_with_cost(context, error)
    context.set_trailing_metadata(cost_metadata(done.info))
    return done


def _declared(validate: Callable[[], Any], tenants: TenantRegistry, tenant: str) -> Callable[[], Any]:
    """The RPC's validation, then the feature's declaration for the tenant (INVALID_ARGUMENT when
    undeclared and so configured)."""

    def checked() -> Any:
        query = validate()
        tenants.feature_label(tenant, query.feature)
        return query

    return checked
