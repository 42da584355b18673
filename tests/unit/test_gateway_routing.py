"""Routing logic without servers: policy order and reasons, passive ejection, retry budget,
and the router's retry/shed behaviour over scripted endpoints."""

import pytest

from gateway.errors import BackendFailed, BackendUnavailable, DeadlineExceeded, PoolsSaturated
from gateway.outlier_detection import OutlierDetector
from gateway.pool import Endpoint, Pool
from gateway.retry_budget import RetryBudget
from gateway.router import Router
from gateway.routing_policy import PoolView, choose
from gateway.triton_model import ModelState


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def view(name, device="cpu", location="private", rank=0, healthy=True, in_flight=0, limit=4, **extra):
    return PoolView(name, device, location, extra.pop("price", 1.0), rank, healthy, in_flight, limit, **extra)


# --- policy -----------------------------------------------------------------------------------


def test_gpu_first_prefers_gpu_then_private_then_configuration_order():
    pools = [view("cpu-a", rank=0), view("gpu-public", "gpu", "public", rank=1), view("gpu-private", "gpu", rank=2)]
    assert choose("gpu_first", pools, 50).pool == "gpu-private"


@pytest.mark.parametrize(
    ("gpu", "expected"),
    [
        ({}, ("gpu", "primary")),
        ({"healthy": False}, ("cpu", "fallback")),
        ({"in_flight": 4}, ("cpu", "overflow")),
    ],
)
def test_reasons(gpu, expected):
    pools = [view("cpu", rank=1), view("gpu", "gpu", rank=0, **gpu)]
    decision = choose("gpu_first", pools, 50)
    assert (decision.pool, decision.reason) == expected


def test_nothing_healthy_with_headroom_is_no_decision():
    assert choose("gpu_first", [view("a", healthy=False), view("b", in_flight=4)], 50) is None


def test_cheapest_within_slo_prefers_private_capacity_and_bursts_to_public_when_full():
    private = view("private", price=2.0, rank=0)
    public = view("public", location="public", price=1.0, rank=1)
    assert choose("cheapest_within_slo", [private, public], 50).pool == "private"
    full = view("private", price=2.0, rank=0, in_flight=4)
    decision = choose("cheapest_within_slo", [full, public], 50)
    assert (decision.pool, decision.reason) == ("public", "overflow")


def test_cheapest_within_slo_skips_a_pool_that_misses_the_objective_and_weighs_compute():
    slow = view("slow-private", latency_ms=80.0, rank=0)
    fast = view("fast-public", location="public", latency_ms=10.0, rank=1)
    assert choose("cheapest_within_slo", [slow, fast], 50).pool == "fast-public"
    gpu = view("gpu", "gpu", price=20.0, compute_ns=100.0, rank=0)
    cpu = view("cpu", price=1.0, compute_ns=5000.0, rank=1)
    assert choose("cheapest_within_slo", [gpu, cpu], 50).pool == "gpu", "20 x 100 < 1 x 5000"


# --- outlier detection and retry budget ---------------------------------------------------------


def test_consecutive_failures_eject_with_growing_backoff_and_success_resets():
    clock = Clock()
    detector = OutlierDetector(3, base_ejection_s=2.0, max_ejection_s=5.0, clock=clock)
    assert [detector.record_failure() for _ in range(3)] == [False, False, True]
    assert detector.is_ejected()
    clock.now += 2.01
    assert not detector.is_ejected()
    assert [detector.record_failure() for _ in range(3)] == [False, False, True]
    assert detector.ejected_for_s == pytest.approx(4.0)
    clock.now += 4.01
    [detector.record_failure() for _ in range(3)]
    assert detector.ejected_for_s == pytest.approx(5.0), "capped"
    clock.now += 5.01
    detector.record_success()
    detector.record_failure(), detector.record_failure()
    assert not detector.is_ejected(), "a success resets the count"


def test_retry_budget_is_a_share_of_recent_requests_with_a_floor():
    clock = Clock()
    budget = RetryBudget(ratio=0.2, min_per_window=2, window_s=10, clock=clock)
    for _ in range(20):
        budget.record_request()
    assert [budget.try_acquire() for _ in range(5)] == [True, True, True, True, False]
    clock.now += 10.01
    assert [budget.try_acquire() for _ in range(3)] == [True, True, False], "old requests left the window"


# --- the router over scripted endpoints -----------------------------------------------------------


class ScriptedTriton:
    def __init__(self, url, fail_with=None):
        self.url = url
        self.fail_with = fail_with
        self.calls = 0
        self.state = ModelState(True, "ready", "1", "b1")

    async def infer(self, inputs, timeout_s, metadata=None, version=None):
        self.calls += 1
        if self.fail_with is not None:
            raise self.fail_with
        return f"answer from {self.url}"


def pool(name, device, url, fail_with=None, limit=4, rank=0):
    endpoint = Endpoint(url, name, device, ["m"], OutlierDetector(2, 1.0, 5.0))
    endpoint.models["m"] = ScriptedTriton(url, fail_with)
    return Pool(name, device, "private", 1.0, rank, limit, [endpoint])


def router(*pools, max_attempts=3, budget=None, **options):
    return Router(list(pools), "gpu_first", 50.0, budget or RetryBudget(0.2, 10, 10), max_attempts, **options)


class SlowTriton(ScriptedTriton):
    """Answers only when given more than ``needs_s``; else times out as the real client does."""

    def __init__(self, url, needs_s):
        super().__init__(url)
        self.needs_s = needs_s
        self.timeouts = []

    async def infer(self, inputs, timeout_s, metadata=None, version=None):
        self.calls += 1
        self.timeouts.append(timeout_s)
        if timeout_s <= self.needs_s:
            raise DeadlineExceeded(f"no answer within {timeout_s}")
        return f"answer from {self.url}"


def ejected(p):
    return p.endpoints[0].outlier.is_ejected()


async def test_an_unavailable_primary_is_retried_on_the_fallback():
    gpu = pool("gpu", "gpu", "g:1", fail_with=BackendUnavailable("connection refused"))
    cpu = pool("cpu", "cpu", "c:1", rank=1)
    result, placement = await router(gpu, cpu).infer("m", [], 1.0)
    assert result == "answer from c:1"
    assert (placement.pool, placement.reason, placement.attempts) == ("cpu", "retry", 2)


async def test_repeated_failures_eject_the_endpoint_so_traffic_goes_straight_to_the_fallback():
    gpu = pool("gpu", "gpu", "g:1", fail_with=BackendUnavailable("down"))
    cpu = pool("cpu", "cpu", "c:1", rank=1)
    r = router(gpu, cpu)
    await r.infer("m", [], 1.0)
    await r.infer("m", [], 1.0)
    _, placement = await r.infer("m", [], 1.0)
    assert (placement.reason, placement.attempts) == ("fallback", 1)
    assert gpu.endpoints[0].models["m"].calls == 2


async def test_deadlines_are_not_retried():
    gpu = pool("gpu", "gpu", "g:1", fail_with=DeadlineExceeded("slow"))
    cpu = pool("cpu", "cpu", "c:1", rank=1)
    with pytest.raises(DeadlineExceeded):
        await router(gpu, cpu).infer("m", [], 1.0)
    assert cpu.endpoints[0].models["m"].calls == 0


async def test_an_empty_retry_budget_stops_retries():
    gpu = pool("gpu", "gpu", "g:1", fail_with=BackendUnavailable("down"))
    cpu = pool("cpu", "cpu", "c:1", rank=1)
    with pytest.raises(BackendUnavailable):
        await router(gpu, cpu, budget=RetryBudget(0.0, 0, 10)).infer("m", [], 1.0)
    assert cpu.endpoints[0].models["m"].calls == 0


async def test_all_pools_down_is_unavailable_naming_each_pool():
    gpu, cpu = pool("gpu", "gpu", "g:1"), pool("cpu", "cpu", "c:1", rank=1)
    for p in (gpu, cpu):
        p.endpoints[0].models["m"].state = ModelState(False, f"Triton at {p.endpoints[0].url} is unreachable")
    with pytest.raises(BackendUnavailable) as raised:
        await router(gpu, cpu).infer("m", [], 1.0)
    assert "g:1" in raised.value.message and "c:1" in raised.value.message


async def test_all_pools_full_is_shed_with_resource_exhausted():
    gpu, cpu = pool("gpu", "gpu", "g:1", limit=1), pool("cpu", "cpu", "c:1", limit=1, rank=1)
    gpu.in_flight = cpu.in_flight = 1
    with pytest.raises(PoolsSaturated) as raised:
        await router(gpu, cpu).infer("m", [], 1.0)
    assert raised.value.status == "RESOURCE_EXHAUSTED"


async def test_a_pools_latency_is_forgotten_after_its_memory_so_a_slow_pool_is_tried_again():
    private = pool("cpu", "cpu", "c:1")
    private.latency_memory_s = 5.0
    private.observe_latency(400.0)
    assert private.view("m", set()).latency_ms == 400.0, "judged on what it just did"
    private.latency_observed_s -= 4.9
    private.observe_latency(20.0)
    assert private.recent_latency_ms() == pytest.approx(0.8 * 400.0 + 0.2 * 20.0), "recent: averaged"
    private.latency_observed_s -= 5.1
    assert private.view("m", set()).latency_ms is None, "no call for 5 s: unknown, so tried again"
    private.observe_latency(20.0)
    assert private.recent_latency_ms() == 20.0, "a fresh start, not the old average"


async def test_the_callers_own_deadline_never_ejects_an_endpoint():
    """A burst of 1 ms deadlines is the caller's choice, not the endpoint's fault."""
    gpu = pool("gpu", "gpu", "g:1")
    gpu.endpoints[0].models["m"] = SlowTriton("g:1", needs_s=0.5)
    cpu = pool("cpu", "cpu", "c:1", rank=1)
    r = router(gpu, cpu, call_timeout_s=1.0)
    for _ in range(10):
        with pytest.raises(DeadlineExceeded):
            await r.infer("m", [], 0.001)
    assert not ejected(gpu) and not ejected(cpu)
    assert cpu.endpoints[0].models["m"].calls == 0, "the caller's deadline is not retried"


async def test_no_answer_within_the_gateways_call_limit_is_the_endpoints_fault_and_retried():
    gpu = pool("gpu", "gpu", "g:1")
    slow = SlowTriton("g:1", needs_s=0.5)
    gpu.endpoints[0].models["m"] = slow
    cpu = pool("cpu", "cpu", "c:1", rank=1)
    r = router(gpu, cpu, call_timeout_s=0.2, max_ejection_percent=50)
    result, placement = await r.infer("m", [], 5.0)
    assert slow.timeouts == [0.2], "bounded by the gateway's limit, not the caller's 5 s"
    assert (result, placement.reason) == ("answer from c:1", "retry")
    await r.infer("m", [], 5.0)
    assert ejected(gpu), "two failures in a row (the detector's threshold) eject it"


async def test_a_call_the_server_failed_counts_towards_ejection_and_is_not_retried():
    gpu = pool("gpu", "gpu", "g:1", fail_with=BackendFailed("model raised"))
    cpu = pool("cpu", "cpu", "c:1", rank=1)
    r = router(gpu, cpu, max_ejection_percent=50)
    for _ in range(2):
        with pytest.raises(BackendFailed):
            await r.infer("m", [], 1.0)
    assert cpu.endpoints[0].models["m"].calls == 0
    assert ejected(gpu)


async def test_ejections_never_take_the_last_endpoint_and_are_reported():
    down = BackendUnavailable("down")
    gpu, cpu = pool("gpu", "gpu", "g:1", fail_with=down), pool("cpu", "cpu", "c:1", fail_with=down, rank=1)
    seen = []
    r = router(gpu, cpu, max_ejection_percent=10, on_ejection=lambda endpoint: seen.append(endpoint.url))
    for _ in range(6):
        with pytest.raises(BackendUnavailable):
            await r.infer("m", [], 1.0)
    assert [ejected(gpu), ejected(cpu)] == [True, False], "10 % of 2 rounds down, but one may always go; never both"
    assert seen == ["g:1"]


async def test_max_ejection_percent_bounds_how_many_go_at_once():
    down = BackendUnavailable("down")
    pools = [pool(f"p{i}", "cpu", f"h:{i}", fail_with=down, rank=i) for i in range(4)]
    r = router(*pools, max_attempts=4, budget=RetryBudget(1.0, 100, 10), max_ejection_percent=50)
    for _ in range(8):
        with pytest.raises(BackendUnavailable):
            await r.infer("m", [], 1.0)
    assert sum(ejected(p) for p in pools) == 2, "50 % of 4"
