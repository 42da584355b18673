"""``tollgate call recommend|search``: call a running gateway from the shell, without grpcurl.

Prints the items, where the answer came from, its cost, and the request id and trace id the
gateway sends back as trailing metadata. A failed call prints its gRPC status and message (and
the cost and ids, when the gateway settled it) to stderr and exits 1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any

import grpc
import typer

from gateway.api import (
    common_pb2,
    recommendation_pb2,
    recommendation_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
)
from gateway.grpc_call import COST_METADATA_KEY, CURRENCY_METADATA_KEY, REQUEST_ID_METADATA_KEY

# The W3C trace id of the call, when the gateway sends it (`tollgate trace` finds its spans).
TRACE_ID_METADATA_KEY = "x-tollgate-trace-id"
DEFAULT_ADDRESS = "127.0.0.1:50051"

call_app = typer.Typer(no_args_is_help=True)

Address = Annotated[
    str, typer.Option("--address", envvar="TOLLGATE_ADDRESS", help="The gateway's host:port (plaintext gRPC).")
]
Key = Annotated[
    str | None,
    typer.Option("--key", envvar="TOLLGATE_API_KEY", show_default=False, help="API key (default: $TOLLGATE_API_KEY)."),
]
Deadline = Annotated[float, typer.Option("--deadline", min=0.001, help="Deadline of the call, in seconds.")]
K = Annotated[int, typer.Option("--k", help="Number of items.")]
Exclude = Annotated[list[str] | None, typer.Option("--exclude", help="An item never to return; repeat it for more.")]


@call_app.command()
def recommend(
    user: Annotated[str, typer.Option("--user", help="The shopper (the dataset's CustomerID).")],
    k: K = 5,
    feature: Annotated[str, typer.Option("--feature", help="Product feature the call bills.")] = "home_feed",
    exclude: Exclude = None,
    address: Address = DEFAULT_ADDRESS,
    key: Key = None,
    deadline: Deadline = 1.0,
) -> None:
    """Recommend items for a shopper."""
    request = recommendation_pb2.RecommendRequest(user_id=user, k=k, feature=feature, exclude_item_ids=exclude or [])
    _call(address, key, deadline, lambda channel: recommendation_pb2_grpc.RecommendationServiceStub(channel).Recommend, request)


@call_app.command()
def search(
    query: Annotated[str, typer.Option("--query", help="What the shopper typed.")],
    k: K = 10,
    feature: Annotated[str, typer.Option("--feature", help="Product feature the call bills.")] = "search_box",
    exclude: Exclude = None,
    address: Address = DEFAULT_ADDRESS,
    key: Key = None,
    deadline: Deadline = 1.0,
) -> None:
    """Search the catalogue."""
    filters = search_pb2.SearchFilters(exclude_item_ids=exclude or [])
    request = search_pb2.SearchRequest(query=query, k=k, feature=feature, filters=filters)
    _call(address, key, deadline, lambda channel: search_pb2_grpc.SearchServiceStub(channel).Search, request)


def _call(address: str, key: str | None, deadline: float, method: Callable[[grpc.Channel], Any], request: Any) -> None:
    if not key:
        typer.echo("No API key: pass --key or set TOLLGATE_API_KEY.", err=True)
        raise typer.Exit(2)
    with grpc.insecure_channel(address) as channel:
        try:
            response, call = method(channel).with_call(
                request, timeout=deadline, metadata=(("authorization", f"Bearer {key}"),)
            )
        except grpc.RpcError as error:
            typer.echo(describe_failure(error.code(), error.details(), dict(error.trailing_metadata() or ())), err=True)
            raise typer.Exit(1) from None
    typer.echo(describe_answer(response.items, response.info, dict(call.trailing_metadata() or ())))


def describe_answer(items: Any, info: common_pb2.ResponseInfo, trailers: Mapping[str, str]) -> str:
    """The items (rank, id, title, score), where the answer came from, its cost and ids."""
    width = max((len(item.item_id) for item in items), default=0)
    lines = [f"{rank:>3}  {item.item_id:<{width}}  {item.title}  {item.score:.3f}" for rank, item in enumerate(items, 1)]
    placement = info.placement
    served = "cache hit" if info.cache_hit else f"{placement.reason or 'served'} on {placement.pool} ({placement.device})"
    lines.append(f"model       {info.model.name} v{info.model.version}, {served}")
    cost = info.cost
    lines.append(
        f"cost        {cost.total:.3g} {cost.currency} (compute {cost.compute:.3g}, gateway {cost.gateway:.3g}, "
        f"cache {cost.cache:.3g}, egress {cost.egress:.3g}; model time {cost.compute_ns / 1e6:.2f} ms)"
    )
    return "\n".join([*lines, *_ids(trailers, info.request_id)])


def describe_failure(code: grpc.StatusCode, details: str | None, trailers: Mapping[str, str]) -> str:
    """The status and message, and the cost and ids when the gateway settled the call."""
    lines = [f"{code.name}: {details or ''}".rstrip()]
    if COST_METADATA_KEY in trailers:
        lines.append(f"cost        {float(trailers[COST_METADATA_KEY]):.3g} {trailers.get(CURRENCY_METADATA_KEY, '')}".rstrip())
    lines.extend(_ids(trailers, ""))
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and REQUEST_ID_METADATA_KEY not in trailers:
        lines.append("(the deadline ran out before the gateway could answer: README.md, \"Choosing a deadline\")")
    return "\n".join(lines)


def _ids(trailers: Mapping[str, str], request_id: str) -> list[str]:
    lines = []
    if request_id := trailers.get(REQUEST_ID_METADATA_KEY, request_id):
        lines.append(f"request id  {request_id}")
    if trace_id := trailers.get(TRACE_ID_METADATA_KEY):
        lines.append(f"trace id    {trace_id}")
    if lines:
        lines.append(f"spans       tollgate trace {trace_id or request_id}")
    return lines
