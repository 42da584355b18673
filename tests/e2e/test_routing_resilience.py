"""Routing and resilience through real processes on loopback: two real Triton servers as two
pools, real Redis, the real gateway, under a steady load from an aio client.

This machine has no GPU: the pool named ``gpu-local`` here is a second CPU Triton *labelled*
gpu (priced and preferred as the GPU pool), which is what the routing logic sees.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import tritonclient.grpc as triton_grpc

from deploy.local.redis import ensure_redis
from deploy.local.triton import TritonServer
from gateway.api import recommendation_pb2, recommendation_pb2_grpc
from tests.support import e2e_log_path, port_for_later_bind, unreachable_address

pytestmark = pytest.mark.e2e

RECOMMEND_SERVICE = "tollgate.v1.RecommendationService"
MODEL = "recommender"
READINESS_POLL_S = 0.25
# Bounds of every load run: it stops at whichever comes first.
MAX_LOAD_S = 30.0
MAX_LOAD_REQUESTS = 20_000


@dataclass(frozen=True)
class Sample:
    sent_at: float  # time.monotonic() when sent
    status: str
    pool: str = ""
    reason: str = ""
    attempts: int = 0
    cache_hit: bool = False


async def steady_load(gateway, users: list[str], stop: asyncio.Event, concurrency: int = 4, deadline_s: float = 2.0) -> list[Sample]:
    """Keeps ``concurrency`` calls in flight until ``stop`` (bounded by MAX_LOAD_S and MAX_LOAD_REQUESTS)."""
    samples: list[Sample] = []
    ends_at = time.monotonic() + MAX_LOAD_S
    key = gateway.metadata()
    async with grpc.aio.insecure_channel(gateway.address) as channel:
        stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)

        async def worker(offset: int) -> None:
            n = offset
            while not stop.is_set() and time.monotonic() < ends_at and len(samples) < MAX_LOAD_REQUESTS:
                request = recommendation_pb2.RecommendRequest(user_id=users[n % len(users)], k=10, feature="home_feed")
                n += concurrency
                sent_at = time.monotonic()
                try:
                    response = await stub.Recommend(request, timeout=deadline_s, metadata=key)
                except grpc.aio.AioRpcError as error:
                    samples.append(Sample(sent_at, error.code().name))
                    continue
                placement = response.info.placement
                samples.append(
                    Sample(sent_at, "OK", placement.pool, placement.reason, placement.attempts, response.info.cache_hit)
                )

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return samples


def start_triton(model_repository: Path, name: str, **ports: int) -> TritonServer:
    return TritonServer(model_repository, models=(MODEL,), log_path=e2e_log_path(name), **ports).start()


def pools_json(gpu_url: str, cpu_url: str) -> str:
    return json.dumps([{"name": "gpu-local", "endpoints": [gpu_url]}, {"name": "cpu-local", "endpoints": [cpu_url]}])


@pytest.fixture
def two_pools(model_repository):
    gpu = start_triton(model_repository, "pool-gpu-labelled")
    cpu = start_triton(model_repository, "pool-cpu")
    servers = [gpu, cpu]
    yield servers
    for server in servers:
        server.stop()


async def test_killing_the_primary_pool_fails_no_request_and_traffic_returns_after_readiness(
    two_pools, gateway_factory, buyers, model_repository
):
    gpu, cpu = two_pools
    gateway = gateway_factory(
        pools=pools_json(gpu.grpc_url, cpu.grpc_url),
        cache_enabled=False,
        readiness_poll_s=READINESS_POLL_S,
        service=RECOMMEND_SERVICE,
    )
    stop = asyncio.Event()
    load = asyncio.create_task(steady_load(gateway, buyers, stop))
    await asyncio.sleep(1.0)
    killed_at = time.monotonic()
    gpu.kill()
    await asyncio.sleep(2.0)
    restarted = TritonServer(
        model_repository, models=(MODEL,), grpc_port=gpu.grpc_port, http_port=gpu.http_port,
        metrics_port=gpu.metrics_port, log_path=gpu.log_path,
    )
    two_pools.append(restarted)
    await asyncio.to_thread(restarted.start)
    ready_again_at = time.monotonic()
    await asyncio.sleep(3.0)
    stop.set()
    samples = await load

    failed = [s for s in samples if s.status != "OK"]
    retried = [s for s in samples if s.attempts > 1]
    after_kill = [s for s in samples if killed_at <= s.sent_at < ready_again_at]
    moved = next((s for s in after_kill if s.pool == "cpu-local" and s.attempts == 1), None)
    back = next((s for s in samples if s.sent_at >= ready_again_at and s.pool == "gpu-local"), None)
    assert moved is not None and back is not None, samples[-5:]
    figures = {
        "requests": len(samples),
        "failed": len(failed),
        "retried": len(retried),
        "seconds_to_move_traffic": round(moved.sent_at - killed_at, 3),
        "seconds_back_after_ready": round(back.sent_at - ready_again_at, 3),
        "served_by_pool": {p: sum(s.pool == p for s in samples) for p in ("gpu-local", "cpu-local")},
    }
    print(f"\nprimary pool killed under load: {figures}")

    assert not failed, f"{len(failed)} requests failed: {failed[:3]}"
    # Calls sent just before the kill may still be in flight when it lands: those are the retried ones.
    before_kill = {(s.pool, s.reason, s.attempts) for s in samples if s.sent_at < killed_at - 0.2}
    assert before_kill == {("gpu-local", "primary", 1)}, before_kill
    assert figures["seconds_to_move_traffic"] < 1.0
    assert all(s.pool == "cpu-local" for s in after_kill if s.sent_at >= killed_at + 1.0)
    assert {s.reason for s in after_kill} <= {"fallback", "retry"}
    assert all(s.attempts > 1 for s in after_kill if s.pool == "cpu-local" and s.reason == "retry")
    assert back.reason == "primary" and figures["seconds_back_after_ready"] < 3.0


async def test_stopping_redis_under_load_fails_no_request_and_caching_resumes(gateway_factory, buyers, tmp_path):
    redis_url = f"redis://127.0.0.1:{port_for_later_bind()}/0"
    redis = ensure_redis(redis_url, tmp_path)
    # The cache's circuit breaker probes Redis again 0.5 s after it opened.
    gateway = gateway_factory(redis_url=redis_url, cache_breaker_cooldown_s=0.5)
    stop = asyncio.Event()
    load = asyncio.create_task(steady_load(gateway, buyers[:8], stop))
    await asyncio.sleep(1.0)
    await asyncio.to_thread(redis.stop)
    stopped_at = time.monotonic()
    await asyncio.sleep(1.5)
    restarting_at = time.monotonic()
    redis = await asyncio.to_thread(ensure_redis, redis_url, tmp_path)
    back_at = time.monotonic()
    await asyncio.sleep(1.5)
    stop.set()
    samples = await load
    redis.stop()

    failed = [s for s in samples if s.status != "OK"]
    while_down = [s for s in samples if stopped_at <= s.sent_at < restarting_at]
    after = [s for s in samples if s.sent_at >= back_at + 0.5]
    figures = {
        "requests": len(samples),
        "failed": len(failed),
        "hits_before": sum(s.cache_hit for s in samples if s.sent_at < stopped_at),
        "served_while_redis_down": len(while_down),
        "hits_after_restart": sum(s.cache_hit for s in after),
    }
    print(f"\nRedis stopped under load: {figures}")
    assert not failed
    assert figures["hits_before"] > 0
    assert while_down and not any(s.cache_hit for s in while_down)
    assert figures["hits_after_restart"] > 0, "caching resumed by itself"
    assert "cache is answering again" in gateway.log_path.read_text()


def test_all_pools_down_is_unavailable_within_the_deadline_naming_what_is_down(gateway_factory):
    gpu_url, cpu_url = unreachable_address(), unreachable_address()
    gateway = gateway_factory(pools=pools_json(gpu_url, cpu_url), require_serving=False)
    with grpc.insecure_channel(gateway.address) as channel:
        stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as raised:
            stub.Recommend(
                recommendation_pb2.RecommendRequest(user_id="17850", k=5, feature="home_feed"),
                timeout=10.0,
                metadata=gateway.metadata(),
            )
        elapsed = time.monotonic() - started
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert elapsed < 1.0, "the gateway says so at once, long before the caller's 10 s deadline"
    details = raised.value.details()
    assert "gpu-local" in details and "cpu-local" in details and gpu_url in details and cpu_url in details


def test_a_deadline_shorter_than_the_model_is_deadline_exceeded_and_triton_drops_the_call(
    model_repository, gateway_factory
):
    """A 600 ms batching delay (a real Triton setting) makes the model slower than a 150 ms deadline.
    The gateway ends the call a margin before the caller's deadline, so the caller gets the
    gateway's DEADLINE_EXCEEDED with the request id and cost trailers, not its own."""
    server = start_triton(model_repository, "slow-batching")
    try:
        client = triton_grpc.InferenceServerClient(server.grpc_url)
        config = client.get_model_config(MODEL, as_json=True)["config"]
        config["dynamic_batching"]["max_queue_delay_microseconds"] = "600000"
        client.load_model(MODEL, config=json.dumps(config))
        gateway = gateway_factory(triton_url=server.grpc_url, cache_enabled=False, service=RECOMMEND_SERVICE)
        before = client.get_inference_statistics(MODEL, as_json=True)["model_stats"][0]
        with grpc.insecure_channel(gateway.address) as channel:
            stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
            with pytest.raises(grpc.RpcError) as raised:
                stub.Recommend(
                    recommendation_pb2.RecommendRequest(user_id="17850", k=5, feature="home_feed"),
                    timeout=0.15,
                    metadata=gateway.metadata(),
                )
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "did not answer" in raised.value.details(), "the gateway's message, not the caller's own deadline"
        trailers = dict(raised.value.trailing_metadata() or ())
        assert len(trailers.get("x-tollgate-request-id", "")) == 32
        assert float(trailers["x-tollgate-cost"]) > 0

        def counts() -> tuple[int, int]:
            after = client.get_inference_statistics(MODEL, as_json=True)["model_stats"][0]
            failed = int(after["inference_stats"]["fail"].get("count", 0)) - int(before["inference_stats"]["fail"].get("count", 0))
            return failed, int(after.get("inference_count", 0)) - int(before.get("inference_count", 0))

        # Wait (bounded) until Triton has dealt with the call: its batching delay ends 0.6 s in.
        deadline = time.monotonic() + 10
        while counts() == (0, 0) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.7)  # a call that had not been cancelled would now have run, past the batching delay
        assert counts() == (1, 0), "Triton dropped the cancelled call without running the model"
    finally:
        server.stop()
