"""The asyncio engine of the load generator: closed and open loops over an async ``call(index)``.

Free of gRPC: a call is any coroutine function that returns an :class:`Outcome`, so the loops
and their bounds are tested without a server. The engine times each call itself (wall clock
around the await; from the *scheduled* time in the open loop) and never raises for a failed
call: the failure is counted under its status.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

OK = "OK"


@dataclass(frozen=True)
class Outcome:
    status: str = OK  # "OK" or the error's name (a gRPC status code name, or CLIENT_<Exception>)
    extras: dict[str, float] = field(default_factory=dict)  # summed over OK calls (cost, compute_ns, hits ...)


CallFn = Callable[[int], Awaitable[Outcome]]
Clock = Callable[[], float]


@dataclass
class Recording:
    latencies_ms: list[float] = field(default_factory=list)  # OK calls only
    statuses: Counter = field(default_factory=Counter)
    extras_sum: dict[str, float] = field(default_factory=dict)
    sent: int = 0
    overflow: int = 0  # open loop: due calls not sent because max in-flight was reached
    started: float = 0.0
    finished: float = 0.0
    outcomes: list[tuple[int, float, str, dict[str, float]]] | None = None

    @property
    def ok(self) -> int:
        return self.statuses.get(OK, 0)

    @property
    def duration_s(self) -> float:
        return max(self.finished - self.started, 1e-9)

    def add(self, index: int, latency_s: float, outcome: Outcome) -> None:
        self.statuses[outcome.status] += 1
        if outcome.status == OK:
            self.latencies_ms.append(latency_s * 1000.0)
            for name, value in outcome.extras.items():
                self.extras_sum[name] = self.extras_sum.get(name, 0.0) + value
        if self.outcomes is not None:
            self.outcomes.append((index, round(latency_s * 1000.0, 4), outcome.status, outcome.extras))


async def _guarded(call: CallFn, index: int) -> Outcome:
    try:
        return await call(index)
    except Exception as error:  # noqa: BLE001 - a failed call is a figure, not a crash of the generator
        return Outcome(status=f"CLIENT_{type(error).__name__}")


async def closed_loop(
    call: CallFn,
    *,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    first_index: int = 0,
    record_outcomes: bool = False,
    clock: Clock = time.perf_counter,
) -> Recording:
    """``concurrency`` workers send calls back to back until ``max_requests`` were sent or
    ``max_seconds`` have passed (checked before each send; calls in flight then finish)."""
    recording = Recording(outcomes=[] if record_outcomes else None)
    recording.started = clock()
    stop_at = recording.started + max_seconds
    next_index = first_index

    async def worker() -> None:
        nonlocal next_index
        while recording.sent < max_requests and clock() < stop_at:
            index = next_index
            next_index += 1
            recording.sent += 1
            started = clock()
            outcome = await _guarded(call, index)
            recording.add(index, clock() - started, outcome)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    recording.finished = clock()
    return recording


async def open_loop(
    call: CallFn,
    *,
    rate: float,
    max_in_flight: int,
    max_requests: int,
    max_seconds: float,
    first_index: int = 0,
    record_outcomes: bool = False,
    clock: Clock = time.perf_counter,
) -> Recording:
    """Call j is due at start + j / rate, for j < max_requests and j / rate < max_seconds.
    Latency counts from the due time; a due call finding ``max_in_flight`` calls open is not
    sent and counts as overflow (the offered load exceeded what the server absorbs)."""
    recording = Recording(outcomes=[] if record_outcomes else None)
    recording.started = clock()
    in_flight: set[asyncio.Task[None]] = set()

    async def one(index: int, due: float) -> None:
        outcome = await _guarded(call, index)
        recording.add(index, clock() - due, outcome)

    for j in range(max_requests):
        offset = j / rate
        if offset >= max_seconds:
            break
        due = recording.started + offset
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(in_flight) >= max_in_flight:
            recording.overflow += 1
            continue
        recording.sent += 1
        task = asyncio.create_task(one(first_index + j, due))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.gather(*in_flight)
    recording.finished = clock()
    return recording
