"""Drives planned Recommend and Search calls against a gateway with an aio client and records
each outcome."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import grpc

from deploy.local.access import LocalAccess
from deploy.local.traffic import PlannedCall
from gateway.api import recommendation_pb2, recommendation_pb2_grpc, search_pb2, search_pb2_grpc


@dataclass(frozen=True)
class CallOutcome:
    call: PlannedCall
    status: str
    latency_ms: float
    cache_hit: bool = False
    cost: float = 0.0
    avoided: float = 0.0
    compute_ns: int = 0
    pool: str = ""
    route_reason: str = ""  # why that pool (primary, fallback, overflow, retry); "" on a cache hit
    device: str = ""
    model: str = ""
    model_version: str = ""
    items: tuple[tuple[str, str, float], ...] = ()
    personalized: bool = False


async def drive(
    address: str, calls: list[PlannedCall], concurrency: int, deadline_s: float, access: LocalAccess
) -> list[CallOutcome]:
    """Sends every call with its tenant's API key, at most ``concurrency`` at a time; returns
    outcomes in call order."""
    semaphore = asyncio.Semaphore(concurrency)
    async with grpc.aio.insecure_channel(address) as channel:
        recommend = recommendation_pb2_grpc.RecommendationServiceStub(channel).Recommend
        search = search_pb2_grpc.SearchServiceStub(channel).Search

        async def one(call: PlannedCall) -> CallOutcome:
            async with semaphore:
                if call.rpc == "Search":
                    request = search_pb2.SearchRequest(query=call.query, k=call.k, feature=call.feature)
                    return await _call(search, request, call, deadline_s, access.metadata(call.tenant))
                request = recommendation_pb2.RecommendRequest(
                    user_id=call.user_id, k=call.k, feature=call.feature, exclude_item_ids=call.exclude_item_ids
                )
                return await _call(recommend, request, call, deadline_s, access.metadata(call.tenant))

        return list(await asyncio.gather(*(one(call) for call in calls)))


async def _call(
    method: grpc.aio.UnaryUnaryMultiCallable,
    request: object,
    call: PlannedCall,
    deadline_s: float,
    metadata: tuple[tuple[str, str], ...],
) -> CallOutcome:
    started = time.perf_counter()
    rpc = method(request, timeout=deadline_s, metadata=metadata)
    try:
        response = await rpc
    except grpc.aio.AioRpcError as error:
        latency_ms = (time.perf_counter() - started) * 1000
        trailing = dict(await rpc.trailing_metadata() or ())
        return CallOutcome(call, error.code().name, latency_ms, cost=float(trailing.get("x-tollgate-cost", 0.0)))
    latency_ms = (time.perf_counter() - started) * 1000
    info = response.info
    return CallOutcome(
        call=call,
        status="OK",
        latency_ms=latency_ms,
        cache_hit=info.cache_hit,
        cost=info.cost.total,
        avoided=info.cost.avoided,
        compute_ns=info.cost.compute_ns,
        pool=info.placement.pool,
        route_reason=info.placement.reason,
        device=info.placement.device,
        model=info.model.name,
        model_version=info.model.version,
        items=tuple((item.item_id, item.title, item.score) for item in response.items),
        personalized=getattr(response, "personalized", False),
    )
