"""The router over scripted endpoints: the reasons of gpu_first's walk, cheapest_within_slo
through the router, what each attempt is given and what it leaves behind (in-flight counts,
latency, the attempted pool), the messages of a call that cannot be placed, and the model's
state across pools."""

import logging
import time
from types import SimpleNamespace

import pytest

from gateway import settlement
from gateway.errors import BackendUnavailable, DeadlineExceeded, PoolsSaturated
from gateway.outlier_detection import OutlierDetector
from gateway.pool import Endpoint, Pool
from gateway.retry_budget import RetryBudget
from gateway.router import Router
from gateway.triton_model import ModelState

READY = ModelState(True, "ready", "3", "build-3")


class Clock:
    def __init__(self) -> None:
        self.now = 500.0


class Model:
    """A scripted Triton model: answers (or fails with ``fail_with``) after ``takes_s`` of the
    clock, recording what it was given and the in-flight counts it saw."""

    def __init__(self, url, clock=None, takes_s=0.0, fail_with=None, state=READY):
        self.url, self.clock, self.takes_s, self.fail_with, self.state = url, clock, takes_s, fail_with, state
        self.calls: list[tuple] = []
        self.seen_in_flight: list[tuple[int, int]] = []
        self.readiness_timeouts: list[float] = []
        self.pool: Pool | None = None

    async def infer(self, tensors, timeout_s, metadata=None, version=None):
        self.calls.append((tensors, timeout_s, metadata))
        if self.pool is not None:
            self.seen_in_flight.append((self.pool.in_flight, self.pool.endpoints[0].in_flight))
        if self.clock is not None:
            self.clock.now += self.takes_s
        if self.fail_with is not None:
            raise self.fail_with
        return f"answer from {self.url}"

    async def check_readiness(self, timeout_s):
        self.readiness_timeouts.append(timeout_s)
        return self.state


def make_pool(name, device="cpu", rank=0, limit=4, location="private", price=1.0, endpoints=1, threshold=2, **model):
    eps = []
    for index in range(endpoints):
        url = f"{name}:{index}"
        endpoint = Endpoint(url, name, device, ["m"], OutlierDetector(threshold, 1.0, 5.0))
        endpoint.models["m"] = Model(url, **model)
        eps.append(endpoint)
    pool = Pool(name, device, location, price, rank, limit, eps)
    for endpoint in eps:
        endpoint.models["m"].pool = pool
    return pool


def model_of(pool, index=0) -> Model:
    return pool.endpoints[index].models["m"]


def make_router(*pools, policy="gpu_first", objective_ms=50.0, max_attempts=3, **options):
    return Router(list(pools), policy, objective_ms, RetryBudget(1.0, 100, 10), max_attempts, **options)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr("gateway.router.time", SimpleNamespace(monotonic=lambda: clock.now, perf_counter=lambda: clock.now))
    return clock


# --- gpu_first's walk (the router's own, without building views) ------------------------------


async def test_a_full_gpu_pool_overflows_to_the_cpu_pool():
    gpu, cpu = make_pool("gpu", "gpu", limit=2), make_pool("cpu", rank=1)
    gpu.in_flight = 2  # exactly at its limit
    _, placement = await make_router(cpu, gpu).infer("m", [], 1.0)
    assert (placement.pool, placement.reason, placement.attempts) == ("cpu", "overflow", 1)


async def test_a_full_pool_that_is_also_down_makes_it_a_fallback():
    gpu, cpu = make_pool("gpu", "gpu", limit=1), make_pool("cpu", rank=1)
    gpu.in_flight = 1
    model_of(gpu).state = ModelState(False, "not ready")
    _, placement = await make_router(gpu, cpu).infer("m", [], 1.0)
    assert (placement.pool, placement.reason) == ("cpu", "fallback")


async def test_one_preferred_pool_full_and_one_down_is_a_fallback():
    gpu, cpu, spare = make_pool("gpu", "gpu", limit=1), make_pool("cpu", rank=1), make_pool("spare", rank=2)
    gpu.in_flight = 1
    model_of(cpu).state = ModelState(False, "not ready")
    _, placement = await make_router(gpu, cpu, spare).infer("m", [], 1.0)
    assert (placement.pool, placement.reason) == ("spare", "fallback")


async def test_two_full_preferred_pools_overflow_to_the_third():
    gpu, cpu, spare = make_pool("gpu", "gpu", limit=1), make_pool("cpu", rank=1, limit=1), make_pool("spare", rank=2)
    gpu.in_flight = cpu.in_flight = 1
    _, placement = await make_router(gpu, cpu, spare).infer("m", [], 1.0)
    assert (placement.pool, placement.reason) == ("spare", "overflow")


async def test_the_first_choice_is_primary_and_its_placement_says_where():
    gpu = make_pool("gpu", "gpu", location="public")
    result, placement = await make_router(make_pool("cpu", rank=1), gpu).infer("m", [], 1.0)
    assert result == "answer from gpu:0"
    assert placement == type(placement)("gpu", "gpu", "public", "primary", 1, "gpu:0")


async def test_a_retry_skips_the_endpoint_that_failed_within_the_same_pool():
    pool = make_pool("cpu", endpoints=2, threshold=5)
    model_of(pool, 0).fail_with = BackendUnavailable("down")
    model_of(pool, 1).fail_with = BackendUnavailable("down")
    with pytest.raises(BackendUnavailable):
        await make_router(pool).infer("m", [], 1.0)
    assert (len(model_of(pool, 0).calls), len(model_of(pool, 1).calls)) == (1, 1), "each endpoint tried once"


async def test_attempts_stop_at_max_attempts():
    down = BackendUnavailable("down")
    pools = [make_pool(f"p{i}", rank=i, fail_with=down, threshold=5) for i in range(4)]
    with pytest.raises(BackendUnavailable) as raised:
        await make_router(*pools, max_attempts=3).infer("m", [], 1.0)
    assert [len(model_of(p).calls) for p in pools] == [1, 1, 1, 0]
    assert raised.value is down, "the last failure is what the caller gets"


# --- cheapest_within_slo through the router ------------------------------------------------------


async def test_cheapest_within_slo_routes_by_views_of_the_pools():
    """public $1/h vs private $5/h: private first (already paid for); once private is full,
    public, as an overflow; once private is too slow for the objective, public first."""
    private = make_pool("private", price=5.0, limit=1, rank=0)
    public = make_pool("public", location="public", price=1.0, rank=1)
    router = make_router(public, private, policy="cheapest_within_slo", objective_ms=50.0)
    assert (await router.infer("m", [], 1.0))[1].pool == "private"
    private.in_flight = 1
    _, placement = await router.infer("m", [], 1.0)
    assert (placement.pool, placement.reason) == ("public", "overflow")
    private.in_flight = 0
    private.latency_ms, private.latency_observed_s = 50.5, time.monotonic()
    _, placement = await router.infer("m", [], 1.0)
    assert (placement.pool, placement.reason) == ("public", "primary"), "50.5 ms misses a 50 ms objective"
    router = make_router(public, private, policy="cheapest_within_slo", objective_ms=51.0)
    assert (await router.infer("m", [], 1.0))[1].pool == "private", "the router's own objective is used"


async def test_cheapest_within_slo_retries_on_another_pool_not_the_failed_endpoint():
    private = make_pool("private", price=5.0, fail_with=BackendUnavailable("down"), threshold=5)
    public = make_pool("public", location="public", price=1.0, rank=1)
    _, placement = await make_router(private, public, policy="cheapest_within_slo").infer("m", [], 1.0)
    assert (placement.pool, placement.reason, placement.attempts) == ("public", "retry", 2)
    assert len(model_of(private).calls) == 1


async def test_cheapest_within_slo_weighs_the_compute_the_routed_model_reports(clock):
    """gpu $20/h, cpu $1/h, both private: by price alone cpu; once gpu computes 100 ns a call
    and cpu 5000 ns, gpu (2000) is cheaper than cpu (5000)."""
    gpu, cpu = make_pool("gpu", "gpu", price=20.0), make_pool("cpu", price=1.0, rank=1)
    router = make_router(gpu, cpu, policy="cheapest_within_slo")
    routed = router.model("m")
    assert routed.name == "m"
    result, placement = await routed.infer(["t"], 1.0, (("traceparent", "00-x"),))
    assert (result, placement.pool) == ("answer from cpu:0", "cpu")
    assert model_of(cpu).calls == [(["t"], 1.0, (("traceparent", "00-x"),))]
    routed.record_compute(placement, 5000)
    router.record_compute("gpu", "m", 100)
    assert (gpu.compute_ns, cpu.compute_ns) == ({"m": 100.0}, {"m": 5000.0})
    assert (await routed.infer([], 1.0))[1].pool == "gpu"


async def test_no_pool_able_to_serve_under_cheapest_within_slo_is_unavailable():
    only = make_pool("only", state=ModelState(False, "model not loaded"))
    with pytest.raises(BackendUnavailable) as raised:
        await make_router(only, policy="cheapest_within_slo").infer("m", [], 1.0)
    assert raised.value.message == "no pool can serve 'm': pool only: model not loaded"


# --- what an attempt is given and leaves behind ---------------------------------------------------


async def test_an_attempt_counts_in_flight_on_its_pool_and_endpoint_and_releases_them(clock):
    gpu = make_pool("gpu", "gpu", clock=clock, takes_s=0.25)
    gpu.in_flight = gpu.endpoints[0].in_flight = 2  # two other calls already there
    router = make_router(gpu)
    await router.infer("m", ["x"], 1.0, (("k", "v"),))
    assert model_of(gpu).seen_in_flight == [(3, 3)]
    assert (gpu.in_flight, gpu.endpoints[0].in_flight) == (2, 2)
    assert model_of(gpu).calls == [(["x"], 1.0, (("k", "v"),))]
    assert gpu.latency_ms == pytest.approx(250.0), "0.25 s observed, in milliseconds"
    failing = make_pool("failing", fail_with=BackendUnavailable("down"))
    with pytest.raises(BackendUnavailable):
        await make_router(failing).infer("m", [], 1.0)
    assert (failing.in_flight, failing.endpoints[0].in_flight) == (0, 0), "released after a failure too"
    assert failing.latency_ms is None, "a failed call says nothing of latency"


async def test_the_pool_of_the_last_attempt_is_noted_for_the_ledger_even_when_the_call_fails():
    async def attempt() -> str:
        gpu = make_pool("gpu", "gpu", fail_with=BackendUnavailable("down"), threshold=5)
        cpu = make_pool("cpu", rank=1, fail_with=BackendUnavailable("down"), threshold=5)
        with pytest.raises(BackendUnavailable):
            await make_router(gpu, cpu).infer("m", [], 1.0)
        return settlement._attempted_pool.get()

    assert await attempt() == "cpu"


async def test_a_call_cut_by_the_gateways_limit_everywhere_says_where_and_after_how_long(clock):
    gpu = make_pool("gpu", "gpu", clock=clock, takes_s=0.5, fail_with=DeadlineExceeded("slow"), threshold=5)
    with pytest.raises(BackendUnavailable) as raised:
        await make_router(gpu, call_timeout_s=0.4).infer("m", [], 5.0)
    assert raised.value.message == "gpu:0 (gpu) did not answer within the gateway's call limit of 0.400s"


async def test_every_pool_full_is_shed_naming_each_pool():
    gpu, cpu = make_pool("gpu", "gpu", limit=1), make_pool("cpu", limit=2, rank=1)
    gpu.in_flight, cpu.in_flight = 1, 2
    with pytest.raises(PoolsSaturated) as raised:
        await make_router(gpu, cpu).infer("m", [], 1.0)
    assert raised.value.message == (
        "every pool serving 'm' is at its concurrency limit: pool gpu is full (1/1 in flight); pool cpu is full (2/2 in flight)"
    )


# --- ejections ----------------------------------------------------------------------------------


async def test_with_two_endpoints_only_one_may_be_ejected_even_at_100_percent(caplog):
    down = BackendUnavailable("down")
    a, b = make_pool("a", fail_with=down), make_pool("b", rank=1, fail_with=down)
    router = make_router(a, b, max_ejection_percent=100)
    with caplog.at_level(logging.WARNING, logger="gateway.router"):
        for _ in range(4):
            with pytest.raises(BackendUnavailable):
                await router.infer("m", [], 1.0)
    assert [a.endpoints[0].outlier.is_ejected(), b.endpoints[0].outlier.is_ejected()] == [True, False]
    assert caplog.messages == ["ejected Triton endpoint a:0 of pool a for 1.0s after repeated failures"]


async def test_ten_percent_of_four_endpoints_still_lets_one_go_but_not_two():
    down = BackendUnavailable("down")
    pools = [make_pool(f"p{i}", rank=i, fail_with=down) for i in range(4)]
    router = make_router(*pools, max_attempts=4, max_ejection_percent=10)
    for _ in range(8):
        with pytest.raises(BackendUnavailable):
            await router.infer("m", [], 1.0)
    assert sum(p.endpoints[0].outlier.is_ejected() for p in pools) == 1, "floor(0.4) = 0, but one may always go"


async def test_the_default_ejection_limit_is_ten_percent():
    """19 endpoints: 10 % is 1.9, so 1 may go (11 % would be 2.09: 2)."""
    down = BackendUnavailable("down")
    pools = [make_pool(f"p{i}", rank=i, fail_with=down) for i in range(19)]
    router = Router(pools, "gpu_first", 50.0, RetryBudget(1.0, 1000, 10), 19)
    for _ in range(4):
        with pytest.raises(BackendUnavailable):
            await router.infer("m", [], 1.0)
    assert sum(p.endpoints[0].outlier.is_ejected() for p in pools) == 1


# --- state across pools -----------------------------------------------------------------------------


async def test_the_state_is_the_first_pool_that_can_serve_and_else_says_why_none_can():
    gpu = make_pool("gpu", "gpu", state=ModelState(False, "server not ready", "2", "build-2"))
    cpu = make_pool("cpu", rank=1, state=ModelState(True, "ready", "3", "build-3"))
    router = make_router(gpu, cpu)
    assert router.state("m") == ModelState(True, "ready", "3", "build-3")
    assert router.model("m").state == ModelState(True, "ready", "3", "build-3")
    model_of(cpu).state = ModelState(False, "model not loaded", "", "")
    assert router.state("m") == ModelState(
        False, "no pool can serve 'm': pool gpu: server not ready; pool cpu: model not loaded", "2", "build-2"
    ), "the last known version and build stay, so cached answers stay servable"
    model_of(gpu).state = ModelState(False, "unreachable")
    assert router.state("m") == ModelState(
        False, "no pool can serve 'm': pool gpu: unreachable; pool cpu: model not loaded", "", ""
    )


async def test_readiness_checks_every_endpoint_of_every_pool_with_the_given_timeout():
    gpu, cpu = make_pool("gpu", "gpu", endpoints=2), make_pool("cpu", rank=1)
    await make_router(gpu, cpu).check_readiness(0.75)
    assert [model_of(p, i).readiness_timeouts for p, i in ((gpu, 0), (gpu, 1), (cpu, 0))] == [[0.75]] * 3
    router = make_router(gpu, cpu)
    assert router.pool("cpu") is cpu
    assert router.stats_clients() == {"gpu": [e.client for e in gpu.endpoints], "cpu": [cpu.endpoints[0].client]}
