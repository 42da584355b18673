"""How long the event loop waits while the cost ledger writes in its thread, per GIL switch interval.

``python -m benchmarks loop-lag`` runs, in this process on uvloop, the gateway's real
``LedgerWriter`` over a SQLite ledger (flushing every second, its writes in a worker thread as
in the gateway) while the loop records ``--rate`` cost records a second, as settling calls does.
Meanwhile it measures the loop's lag: how late a 1 ms timer fires. A thread that runs Python
(the ledger converts and binds every row) keeps the GIL until the switch interval asks it to
hand it back, so the lag's tail is the switch interval: Python's default (5 ms) against the
gateway's ``TOLLGATE_GIL_SWITCH_INTERVAL_S``, in alternating blocks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import uvloop

from costing.ledger.sqlite import SqliteLedger
from costing.ledger.writer import LedgerWriter
from costing.records import CostRecord

PYTHON_DEFAULT_SWITCH_S = 0.005
TICK_S = 0.001
FLUSH_INTERVAL_S = 1.0


def _record() -> CostRecord:
    """A plausible record of one answered call (the fields settling fills)."""
    return CostRecord(
        request_id=uuid.uuid4().hex, timestamp=dt.datetime.now(dt.UTC), rpc="Recommend", feature="home_feed",
        tenant="acme", model="recommender", model_version="1", pool="cpu-local", device="cpu", cache_hit=False,
        status="OK", compute_ns=420_000, gateway_cpu_ns=25_000, cache_ops=2, cost_total_pico=60_000,
        cost_compute_pico=5_000, cost_gateway_pico=1_000, cost_cache_pico=2_000, cost_avoided_pico=0,
        currency="USD", price_book_version="bench", response_bytes=700, cost_egress_pico=52_000,
        route_reason="primary", replica="bench", egress_path="private",
    )  # fmt: skip


async def _block(ledger_path: Path, rate: float, seconds: float) -> list[float]:
    """Lags (ms) of the 1 ms ticks over ``seconds`` while ``rate`` records a second are written."""
    ledger = SqliteLedger(ledger_path)
    writer = LedgerWriter(ledger, FLUSH_INTERVAL_S)
    writer.start()
    lags: list[float] = []
    owed = 0.0
    started = last = time.perf_counter()
    while last - started < seconds:
        await asyncio.sleep(TICK_S)
        now = time.perf_counter()
        lags.append(max(0.0, now - last - TICK_S) * 1e3)
        owed += (now - last) * rate
        for _ in range(int(owed)):
            writer.record(_record())
        owed -= int(owed)
        last = now
    await writer.close()
    ledger.close()
    return lags


LONG_LAG_MS = 4.0  # a tick this late is a stall a call would feel in its p99


def _summary(lags: list[float]) -> dict[str, float]:
    ordered = sorted(lags)
    return {
        "p50_ms": round(ordered[len(ordered) // 2], 3),
        "p99_ms": round(ordered[int(len(ordered) * 0.99)], 3),
        "p99_9_ms": round(ordered[int(len(ordered) * 0.999)], 3),
        "long_per_1000": round(1000 * sum(lag > LONG_LAG_MS for lag in ordered) / len(ordered), 2),
    }


def run_loop_lag(switch_interval_s: float, rate: float, seconds: float, repetitions: int) -> dict[str, Any]:
    """Lag per switch interval (Python's default, then ``switch_interval_s``), every block kept."""
    kept = sys.getswitchinterval()
    blocks: dict[str, list[dict[str, float]]] = {f"{PYTHON_DEFAULT_SWITCH_S * 1e3:g} ms": [],
                                                  f"{switch_interval_s * 1e3:g} ms": []}  # fmt: skip
    intervals = dict(zip(blocks, (PYTHON_DEFAULT_SWITCH_S, switch_interval_s), strict=True))
    try:
        with tempfile.TemporaryDirectory(prefix="tollgate-loop-lag-") as tmp:
            for repetition in range(repetitions):
                order = list(blocks) if repetition % 2 == 0 else list(reversed(blocks))
                for name in order:
                    sys.setswitchinterval(intervals[name])
                    lags = uvloop.run(_block(Path(tmp) / f"ledger-{repetition}-{name[:-3]}.sqlite", rate, seconds))
                    blocks[name].append(_summary(lags))
    finally:
        sys.setswitchinterval(kept)
    return {"rate": rate, "seconds": seconds, "blocks": blocks}
