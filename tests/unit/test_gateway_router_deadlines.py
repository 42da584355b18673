"""The router's deadline arithmetic over scripted endpoints on a scripted clock: a retry gets
what is left of the caller's deadline, never the original timeout again, and the gateway's
own per-call limit caps every attempt."""

from types import SimpleNamespace

import pytest

from gateway.errors import BackendUnavailable, DeadlineExceeded
from gateway.outlier_detection import OutlierDetector
from gateway.pool import Endpoint, Pool
from gateway.retry_budget import RetryBudget
from gateway.router import Router
from gateway.triton_model import ModelState


class ScriptedClock:
    """Stands for time.monotonic and time.perf_counter in gateway.router; endpoints advance it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def advance(self, seconds: float) -> None:
        self.now += seconds


class TimedTriton:
    """Takes ``takes_s`` of the clock, then answers or fails with ``fail_with``; records the
    timeout each call was given."""

    def __init__(self, clock: ScriptedClock, url: str, takes_s: float, fail_with: Exception | None = None):
        self.clock = clock
        self.url = url
        self.takes_s = takes_s
        self.fail_with = fail_with
        self.timeouts: list[float] = []
        self.state = ModelState(True, "ready", "1", "b1")

    async def infer(self, inputs, timeout_s, metadata=None, version=None):
        self.timeouts.append(timeout_s)
        if self.takes_s > timeout_s:
            self.clock.advance(timeout_s)
            raise DeadlineExceeded(f"no answer within {timeout_s}")
        self.clock.advance(self.takes_s)
        if self.fail_with is not None:
            raise self.fail_with
        return f"answer from {self.url}"


@pytest.fixture
def clock(monkeypatch) -> ScriptedClock:
    clock = ScriptedClock()
    monkeypatch.setattr("gateway.router.time", SimpleNamespace(monotonic=lambda: clock.now, perf_counter=lambda: clock.now))
    return clock


def pool(name: str, model: TimedTriton, rank: int) -> Pool:
    endpoint = Endpoint(model.url, name, "cpu", ["m"], OutlierDetector(5, 1.0, 5.0))
    endpoint.models["m"] = model
    return Pool(name, "cpu", "private", 1.0, rank, 4, [endpoint])


def router(*pools: Pool, **options) -> Router:
    return Router(list(pools), "gpu_first", 50.0, RetryBudget(1.0, 10, 10), 3, **options)


async def test_a_retry_gets_what_is_left_of_the_deadline_not_the_original_timeout(clock):
    """1.0 s deadline; the first endpoint fails after 0.3 s: the retry gets 1.0 - 0.3 = 0.7 s."""
    first = TimedTriton(clock, "a:1", takes_s=0.3, fail_with=BackendUnavailable("not ready"))
    second = TimedTriton(clock, "b:1", takes_s=0.1)
    result, placement = await router(pool("a", first, 0), pool("b", second, 1)).infer("m", [], 1.0)
    assert (result, placement.reason, placement.attempts) == ("answer from b:1", "retry", 2)
    assert first.timeouts == [1.0]
    assert second.timeouts == [pytest.approx(0.7)]


async def test_each_retry_gets_less_and_the_last_one_is_cut_by_the_callers_deadline(clock):
    """2.0 s deadline; a fails after 0.5 s, b after 0.75 s: c gets 0.75 s, needs 1 s, and the
    caller's deadline ends the call (DEADLINE_EXCEEDED, not a fourth attempt)."""
    down = BackendUnavailable("connection refused")
    a = TimedTriton(clock, "a:1", takes_s=0.5, fail_with=down)
    b = TimedTriton(clock, "b:1", takes_s=0.75, fail_with=down)
    c = TimedTriton(clock, "c:1", takes_s=1.0)
    with pytest.raises(DeadlineExceeded):
        await router(pool("a", a, 0), pool("b", b, 1), pool("c", c, 2)).infer("m", [], 2.0)
    assert (a.timeouts, b.timeouts, c.timeouts) == ([2.0], [pytest.approx(1.5)], [pytest.approx(0.75)])


async def test_the_gateways_call_limit_caps_an_attempt_until_less_than_it_is_left(clock):
    """call limit 0.4 s, deadline 1.0 s: a gets 0.4 and does not answer (the endpoint's fault,
    retried); b gets min(0.6, 0.4) = 0.4 and fails after 0.35; c gets min(0.25, 0.4) = 0.25."""
    a = TimedTriton(clock, "a:1", takes_s=5.0)
    b = TimedTriton(clock, "b:1", takes_s=0.35, fail_with=BackendUnavailable("not ready"))
    c = TimedTriton(clock, "c:1", takes_s=0.1)
    r = router(pool("a", a, 0), pool("b", b, 1), pool("c", c, 2), call_timeout_s=0.4)
    result, placement = await r.infer("m", [], 1.0)
    assert (result, placement.attempts) == ("answer from c:1", 3)
    assert (a.timeouts, b.timeouts, c.timeouts) == ([0.4], [0.4], [pytest.approx(0.25)])
