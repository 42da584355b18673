"""Drives planned Recommend calls against a gateway with an aio client and records each outcome."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import grpc

from deploy.local.traffic import PlannedCall
from gateway.api import recommendation_pb2, recommendation_pb2_grpc


@dataclass(frozen=True)
class CallOutcome:
    call: PlannedCall
    status: str
    latency_ms: float
    cache_hit: bool
    cost: float
    avoided: float
    compute_ns: int
    pool: str
    device: str
    model_version: str
    items: tuple[tuple[str, str, float], ...]
    personalized: bool
    trailing_cost: float | None


async def drive(address: str, calls: list[PlannedCall], concurrency: int, deadline_s: float) -> list[CallOutcome]:
    """Sends every call, at most ``concurrency`` at a time; returns outcomes in call order."""
    semaphore = asyncio.Semaphore(concurrency)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)

        async def one(call: PlannedCall) -> CallOutcome:
            async with semaphore:
                return await _call(stub, call, deadline_s)

        return list(await asyncio.gather(*(one(call) for call in calls)))


async def _call(stub: recommendation_pb2_grpc.RecommendationServiceStub, call: PlannedCall, deadline_s: float) -> CallOutcome:
    request = recommendation_pb2.RecommendRequest(
        user_id=call.user_id, k=call.k, feature=call.feature, exclude_item_ids=call.exclude_item_ids
    )
    started = time.perf_counter()
    rpc = stub.Recommend(request, timeout=deadline_s, metadata=(("x-tenant-id", call.tenant),))
    try:
        response = await rpc
        status = "OK"
    except grpc.aio.AioRpcError as error:
        response, status = None, error.code().name
    latency_ms = (time.perf_counter() - started) * 1000
    trailing = dict(await rpc.trailing_metadata() or ())
    trailing_cost = float(trailing["x-tollgate-cost"]) if "x-tollgate-cost" in trailing else None
    if response is None:
        return CallOutcome(call, status, latency_ms, False, trailing_cost or 0.0, 0.0, 0, "", "", "", (), False, trailing_cost)
    info = response.info
    return CallOutcome(
        call=call,
        status=status,
        latency_ms=latency_ms,
        cache_hit=info.cache_hit,
        cost=info.cost.total,
        avoided=info.cost.avoided,
        compute_ns=info.cost.compute_ns,
        pool=info.placement.pool,
        device=info.placement.device,
        model_version=info.model.version,
        items=tuple((item.item_id, item.title, item.score) for item in response.items),
        personalized=response.personalized,
        trailing_cost=trailing_cost,
    )
