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
from tests.support import (
    e2e_log_path,
    port_for_later_bind,
    retry_on_port_collision,
    unreachable_address,
    wait_for,
    wait_for_async,
)

pytestmark = pytest.mark.e2e

RECOMMEND_SERVICE = "tollgate.v1.RecommendationService"
MODEL = "recommender"
READINESS_POLL_S = 0.25
# Bounds of every load run: it stops at whichever comes first.
MAX_LOAD_S = 30.0
MAX_LOAD_REQUESTS = 20_000
# Bound of every wait on a condition (a failure, not a pace: conditions usually hold in well under 1 s).
WAIT_S = 30.0
DEADLINE_S = 10.0


@dataclass(frozen=True)
class Sample:
    sent_at: float  # time.monotonic() when sent
    status: str
    pool: str = ""
    reason: str = ""
    attempts: int = 0
    cache_hit: bool = False
    done_at: float = 0.0  # time.monotonic() when answered


async def steady_load(
    gateway, users: list[str], stop: asyncio.Event, samples: list[Sample], concurrency: int = 4, deadline_s: float = 2.0
) -> list[Sample]:
    """Keeps ``concurrency`` calls in flight until ``stop`` (bounded by MAX_LOAD_S and
    MAX_LOAD_REQUESTS), appending each answered call to ``samples`` as it ends."""
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
                    samples.append(Sample(sent_at, error.code().name, done_at=time.monotonic()))
                    continue
                placement = response.info.placement
                samples.append(
                    Sample(
                        sent_at, "OK", placement.pool, placement.reason, placement.attempts, response.info.cache_hit,
                        time.monotonic(),
                    )
                )

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return samples


def start_triton(model_repository: Path, name: str) -> TritonServer:
    return retry_on_port_collision(
        lambda: TritonServer(model_repository, models=(MODEL,), log_path=e2e_log_path(name)).start()
    )


def own_redis(tmp_path: Path):
    """A redis-server of this test's own (one already answering on the chosen port is someone
    else's: another port is tried)."""

    def start():
        handle = ensure_redis(f"redis://127.0.0.1:{port_for_later_bind()}/0", tmp_path)
        if handle.process is None:
            raise OSError(98, "Address already in use (another Redis answers there)")
        return handle

    return retry_on_port_collision(start)


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
    stop, samples = asyncio.Event(), []
    load = asyncio.create_task(steady_load(gateway, buyers, stop, samples))
    await wait_for_async(lambda: sum(s.pool == "gpu-local" for s in samples) >= 20, WAIT_S, "load on gpu-local")
    killed_at = time.monotonic()
    gpu.kill()

    def moved_without_retry() -> Sample | None:
        return next((s for s in samples if s.sent_at >= killed_at and s.pool == "cpu-local" and s.attempts == 1), None)

    moved = await wait_for_async(moved_without_retry, WAIT_S, "calls routed straight to cpu-local")
    await wait_for_async(lambda: sum(s.sent_at > moved.sent_at for s in samples) >= 20, WAIT_S, "load after the move")
    restart_began = time.monotonic()
    restarted = TritonServer(
        model_repository, models=(MODEL,), grpc_port=gpu.grpc_port, http_port=gpu.http_port,
        metrics_port=gpu.metrics_port, log_path=gpu.log_path,
    )
    two_pools.append(restarted)
    await asyncio.to_thread(restarted.start)
    ready_again_at = time.monotonic()

    def back_on_gpu() -> Sample | None:
        return next((s for s in samples if s.sent_at >= ready_again_at and s.pool == "gpu-local"), None)

    back = await wait_for_async(back_on_gpu, WAIT_S, "traffic back on gpu-local after its readiness check")
    stop.set()
    await load

    failed = [s for s in samples if s.status != "OK"]
    after_kill = [s for s in samples if killed_at <= s.sent_at < restart_began]
    figures = {
        "requests": len(samples),
        "failed": len(failed),
        "retried": sum(s.attempts > 1 for s in samples),
        "seconds_to_move_traffic": round(moved.sent_at - killed_at, 3),
        "seconds_back_after_ready": round(back.sent_at - ready_again_at, 3),
        "served_by_pool": {p: sum(s.pool == p for s in samples) for p in ("gpu-local", "cpu-local")},
    }
    print(f"\nprimary pool killed under load: {figures}")

    assert not failed, f"{len(failed)} requests failed: {failed[:3]}"
    # Calls answered before the kill ran on the primary (those in flight when it landed may
    # have been retried, or routed after the gateway noticed).
    before_kill = {(s.pool, s.reason, s.attempts) for s in samples if s.done_at < killed_at}
    assert before_kill == {("gpu-local", "primary", 1)}, before_kill
    # Once the gateway knows gpu-local is down (readiness or ejection), every call goes to
    # cpu-local at the first attempt, saying why, until gpu-local is restarted.
    settled = [s for s in after_kill if s.sent_at >= moved.sent_at]
    assert {(s.pool, s.reason, s.attempts) for s in settled} == {("cpu-local", "fallback", 1)}
    assert {s.reason for s in after_kill} <= {"fallback", "retry"}
    assert all(s.attempts == 2 and s.pool == "cpu-local" for s in after_kill if s.reason == "retry")
    assert back.reason == "primary" and back.attempts == 1


async def test_stopping_redis_under_load_fails_no_request_and_caching_resumes(gateway_factory, buyers, tmp_path):
    redis = own_redis(tmp_path)
    redis_url = redis.url
    # The cache's circuit breaker probes Redis again 0.5 s after it opened.
    gateway = gateway_factory(redis_url=redis_url, cache_breaker_cooldown_s=0.5)
    stop, samples = asyncio.Event(), []
    load = asyncio.create_task(steady_load(gateway, buyers[:8], stop, samples))
    await wait_for_async(lambda: any(s.cache_hit for s in samples), WAIT_S, "a cache hit before Redis stops")
    await asyncio.to_thread(redis.stop)
    stopped_at = time.monotonic()
    await wait_for_async(lambda: sum(s.sent_at >= stopped_at for s in samples) >= 40, WAIT_S, "calls while Redis is down")
    restarting_at = time.monotonic()
    redis = await asyncio.to_thread(ensure_redis, redis_url, tmp_path)
    back_at = time.monotonic()
    await wait_for_async(
        lambda: any(s.cache_hit for s in samples if s.sent_at >= back_at), WAIT_S, "caching to resume by itself"
    )
    stop.set()
    await load
    redis.stop()

    failed = [s for s in samples if s.status != "OK"]
    while_down = [s for s in samples if stopped_at <= s.sent_at < restarting_at]
    figures = {
        "requests": len(samples),
        "failed": len(failed),
        "hits_before": sum(s.cache_hit for s in samples if s.sent_at < stopped_at),
        "served_while_redis_down": len(while_down),
        "hits_after_restart": sum(s.cache_hit for s in samples if s.sent_at >= back_at),
    }
    print(f"\nRedis stopped under load: {figures}")
    assert not failed
    assert while_down and not any(s.cache_hit for s in while_down)
    wait_for(lambda: "cache is answering again" in gateway.log_path.read_text(), WAIT_S, "the log to say so")


def test_all_pools_down_is_unavailable_naming_what_is_down(gateway_factory):
    """UNAVAILABLE is the gateway's answer: had it waited for a pool until the caller's 10 s
    deadline, the caller would have seen DEADLINE_EXCEEDED instead."""
    gpu_url, cpu_url = unreachable_address(), unreachable_address()
    gateway = gateway_factory(pools=pools_json(gpu_url, cpu_url), require_serving=False)
    with grpc.insecure_channel(gateway.address) as channel:
        stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.Recommend(
                recommendation_pb2.RecommendRequest(user_id="17850", k=5, feature="home_feed"),
                timeout=10.0,
                metadata=gateway.metadata(),
            )
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    details = raised.value.details()
    assert "gpu-local" in details and "cpu-local" in details and gpu_url in details and cpu_url in details


def test_a_deadline_shorter_than_the_model_is_the_gateways_deadline_exceeded_and_triton_drops_the_call(
    model_repository, gateway_factory
):
    """A 600 ms batching delay (a real Triton setting) makes the model slower than a 500 ms
    deadline. The gateway ends the call its margin (200 ms) before the caller's deadline, so
    the caller gets the gateway's DEADLINE_EXCEEDED, with the request id and cost trailers,
    not its own; and the gateway cancels the Triton call, so the model never runs it."""
    server = start_triton(model_repository, "slow-batching")
    try:
        client = triton_grpc.InferenceServerClient(server.grpc_url)
        set_batching_delay(client, 0.6)
        gateway = gateway_factory(
            triton_url=server.grpc_url, cache_enabled=False, service=RECOMMEND_SERVICE, deadline_margin_s=0.2
        )
        before = client.get_inference_statistics(MODEL, as_json=True)["model_stats"][0]
        with grpc.insecure_channel(gateway.address) as channel:
            stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
            with pytest.raises(grpc.RpcError) as raised:
                stub.Recommend(
                    recommendation_pb2.RecommendRequest(user_id="17850", k=5, feature="home_feed"),
                    timeout=0.5,
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

        # Triton settles the call when its batching delay ends: either it failed it (cancelled)
        # or it ran it; whichever shows first is the outcome.
        outcome = wait_for(lambda: counts() if counts() != (0, 0) else None, WAIT_S, "Triton to settle the call")
        assert outcome == (1, 0), "Triton dropped the cancelled call without running the model"
    finally:
        server.stop()


def set_batching_delay(client: triton_grpc.InferenceServerClient, delay_s: float) -> None:
    """Reloads the recommender with this dynamic-batching queue delay: every call takes at least it."""
    config = client.get_model_config(MODEL, as_json=True)["config"]
    config["dynamic_batching"]["max_queue_delay_microseconds"] = str(round(delay_s * 1_000_000))
    client.load_model(MODEL, config=json.dumps(config))


async def test_a_retry_gets_what_is_left_of_the_callers_deadline(two_pools, gateway_factory):
    """Both pools are slow (2 s batching delay); the gateway's own call limit is 0.8 s, its
    margin 0.3 s, the caller's deadline 1.5 s, so the router has 1.2 s. The first attempt is cut
    at 0.8 s (the endpoint's fault: retried); the retry gets what is left, 0.4 s, and the
    gateway answers DEADLINE_EXCEEDED itself at 1.2 s. A retry given the call limit again
    (0.8 s) would run to 1.6 s, past the caller's deadline: the caller would see its own
    DEADLINE_EXCEEDED, without the gateway's message and trailers. With the second pool fast
    again, the same call succeeds on the retry."""
    gpu, cpu = two_pools
    gpu_client, cpu_client = (triton_grpc.InferenceServerClient(s.grpc_url) for s in (gpu, cpu))
    set_batching_delay(gpu_client, 2.0)
    set_batching_delay(cpu_client, 2.0)
    gateway = gateway_factory(
        pools=pools_json(gpu.grpc_url, cpu.grpc_url),
        cache_enabled=False,
        triton_call_timeout_s=0.8,
        deadline_margin_s=0.3,
        outlier_consecutive_failures=10,  # two slow calls must not eject gpu-local
        service=RECOMMEND_SERVICE,
    )
    request = recommendation_pb2.RecommendRequest(user_id="17850", k=5, feature="home_feed")
    async with grpc.aio.insecure_channel(gateway.address) as channel:
        stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Recommend(request, timeout=1.5, metadata=gateway.metadata())
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "did not answer" in raised.value.details(), raised.value.details()
        trailers = dict(raised.value.trailing_metadata() or ())
        assert len(trailers.get("x-tollgate-request-id", "")) == 32, "the gateway answered, not the caller's deadline"

        set_batching_delay(cpu_client, 0.0)
        response = await stub.Recommend(request, timeout=1.5, metadata=gateway.metadata())
    placement = response.info.placement
    assert (placement.pool, placement.reason, placement.attempts) == ("cpu-local", "retry", 2)


async def test_cheapest_within_slo_through_two_real_pools(two_pools, gateway_factory):
    """The demo's policy, end to end. Two pools at the same price: cpu-local (private, at most
    one call in flight, slowed by a 1 s batching delay) and cpu-public (public). Objective 500 ms.

    1. A burst of four calls: cpu-local has no measured latency (so it counts as meeting the
       objective) and is private: the first call goes there (primary); it is then full, so the
       other three overflow to cpu-public.
    2. cpu-local's observed latency (≥ 1 s) now misses the objective: calls go to cpu-public as
       the policy's first choice (primary).
    3. cpu-public is stopped: calls go back to cpu-local, the slow one, as a fallback."""
    private, public = two_pools
    set_batching_delay(triton_grpc.InferenceServerClient(private.grpc_url), 1.0)
    pools = [
        {"name": "cpu-local", "endpoints": [private.grpc_url], "max_in_flight": 1},
        {"name": "cpu-public", "endpoints": [public.grpc_url]},
    ]
    gateway = gateway_factory(
        pools=json.dumps(pools),
        routing_policy="cheapest_within_slo",
        latency_objective_ms=500,
        latency_memory_s=600,  # the slow pool stays judged slow for the whole test
        triton_call_timeout_s=5.0,  # slow is not failed: no call is cut and retried
        cache_enabled=False,
        readiness_poll_s=READINESS_POLL_S,
        service=RECOMMEND_SERVICE,
    )
    async with grpc.aio.insecure_channel(gateway.address) as channel:
        stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)

        async def placed(user: str) -> tuple[str, str, int]:
            request = recommendation_pb2.RecommendRequest(user_id=user, k=5, feature="home_feed")
            placement = (await stub.Recommend(request, timeout=DEADLINE_S, metadata=gateway.metadata())).info.placement
            return placement.pool, placement.reason, placement.attempts

        burst = await asyncio.gather(*(placed(str(12346 + n)) for n in range(4)))
        assert sorted(burst) == [("cpu-local", "primary", 1)] + [("cpu-public", "overflow", 1)] * 3, burst

        after = [await placed(str(12400 + n)) for n in range(3)]
        assert after == [("cpu-public", "primary", 1)] * 3, "cpu-local is too slow for the objective"

        public.kill()
        fallback = await wait_for_async_call(placed, ("cpu-local", "fallback", 1))
        assert fallback == ("cpu-local", "fallback", 1)


async def wait_for_async_call(placed, wanted: tuple[str, str, int]) -> tuple[str, str, int]:
    """Calls until a call is placed as ``wanted`` (bounded); calls before the gateway notices the
    stopped pool are retried on the other one."""
    deadline = time.monotonic() + WAIT_S
    seen = []
    while time.monotonic() < deadline:
        seen.append(await placed(str(12500 + len(seen))))
        if seen[-1] == wanted:
            return seen[-1]
        assert seen[-1] == ("cpu-local", "retry", 2), seen
    raise AssertionError(f"no call placed as {wanted} within {WAIT_S} s: {seen[-5:]}")
