"""Several gateway replicas on one PostgreSQL ledger: their batches land side by side, a replayed
batch is stored once, a window that every replica tries to book at the same moment is booked
once (contiguous with the last booking, whoever books it), and the replicas' Prometheus
counters summed (as Prometheus sums a cluster) equal the ledger's totals.

Each test works in a PostgreSQL schema of its own and drops only that schema.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import uuid
from collections.abc import Iterator

import pytest

from costing.ledger import LedgerWriter, SqlLedger, open_ledger
from costing.metrics import CostMetrics
from costing.price_book import load_price_book
from costing.reconciliation.booker import WindowBooker
from costing.reconciliation.replica import ReplicaMeter
from costing.reconciliation.summary import resource_summary, tie_out
from costing.records import CostRecord
from costing.report import build_report
from gateway.settings import get_settings

pytestmark = pytest.mark.e2e

REPLICAS = 3
RECORDS_PER_REPLICA = 2_000
START = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=5)
END = START + dt.timedelta(minutes=1)


@pytest.fixture
def schema(postgres_url: str) -> Iterator[str]:
    name = f"tollgate_replicas_{uuid.uuid4().hex[:12]}"
    yield name
    with open_ledger(postgres_url, schema=name) as ledger:
        ledger.drop_schema()  # type: ignore[attr-defined]


def replica_record(replica: int, index: int) -> CostRecord:
    compute_ns = 1_000_000 + 1_000 * (index % 97)
    cost_compute = round(compute_ns * 44_625 / 3_600_000)  # pico-$: 0.044625 $/h
    return CostRecord(
        request_id=f"r{replica}-{index:06d}", timestamp=START + dt.timedelta(microseconds=25 * index + replica),
        rpc="Recommend", feature=("home_feed", "cart_upsell", "search_box")[index % 3], tenant=f"shop-{replica}",
        model="recommender", model_version="1", pool="cpu-local", device="cpu", cache_hit=False, status="OK",
        compute_ns=compute_ns, gateway_cpu_ns=150_000, cache_ops=2, cost_total_pico=cost_compute + 2_000,
        cost_compute_pico=cost_compute, cost_gateway_pico=1_900, cost_cache_pico=100, cost_avoided_pico=0,
        currency="USD", price_book_version="replicas", replica=f"replica-{replica}",
    )  # fmt: skip


async def test_replicas_share_one_ledger(postgres_url: str, schema: str) -> None:
    ledgers: list[SqlLedger] = [open_ledger(postgres_url, schema=schema) for _ in range(REPLICAS)]
    metrics = [CostMetrics() for _ in range(REPLICAS)]
    writers = [LedgerWriter(ledger, 0.05, observers=[m.observe]) for ledger, m in zip(ledgers, metrics)]
    try:
        for writer in writers:
            writer.start()
        for index in range(RECORDS_PER_REPLICA):
            for replica, writer in enumerate(writers):
                writer.record(replica_record(replica, index))
            if index % 200 == 0:
                await asyncio.sleep(0.01)  # let the flushes of the replicas run side by side
        await asyncio.gather(*(writer.close() for writer in writers))
        # A replica that did not know its batch had landed writes it again: stored once.
        assert await asyncio.to_thread(ledgers[0].write, [replica_record(0, i) for i in range(500)]) == 0

        # Every replica books up to the same moments, at the same time: each window is booked once.
        book = load_price_book(get_settings().price_book_path)
        bookers = [
            WindowBooker(ledger, book, [], ReplicaMeter(0.5, replica=f"replica-{index}"), window_s=60, grace_s=5)
            for index, ledger in enumerate(ledgers)
        ]
        openings = await asyncio.gather(*(b.book_until(START) for b in bookers))
        assert openings == [None] * REPLICAS  # one of them opened the bookings at START
        results = await asyncio.gather(*(b.book_until(END) for b in bookers))
        assert sum(result is not None for result in results) == 1, "one replica booked the window, whole"
        later = await asyncio.gather(*(b.book_until(END + dt.timedelta(seconds=30)) for b in bookers))
        assert sum(result is not None for result in later) == 1

        reader = ledgers[0]
        assert reader.count() == REPLICAS * RECORDS_PER_REPLICA
        counted = math.fsum(m.total(m.cost) for m in metrics)
        assert counted == pytest.approx(reader.total_cost_pico() / 1e12, rel=1e-9)
        assert sum(m.total(m.requests) for m in metrics) == reader.count()
        rows = build_report(reader, ["tenant"], since=START, until=END)
        assert [row.group["tenant"] for row in rows[:-1]] == [f"shop-{r}" for r in range(REPLICAS)]
        assert all(row.requests == RECORDS_PER_REPLICA and row.fully_loaded is not None for row in rows[:-1])
        bookings = reader.bookings()
        assert [b.kind for b in bookings] == ["opening", "window", "window"]
        assert bookings[1].window_start == START and bookings[2].window_start == bookings[1].window_end == END
        (compute,) = [s for s in resource_summary(reader) if s.kind == "compute"]
        assert compute.identity_exact and compute.windows == 1 and compute.requests == REPLICAS * RECORDS_PER_REPLICA
        assert {s.resource for s in resource_summary(reader) if s.kind == "gateway"} == {
            f"gateway/replica-{index}" for index in range(REPLICAS)
        }  # each replica's metered CPU on its own charge
        (tied,) = tie_out(reader, START, END)
        assert tied.difference_pico == 0 and sum(row.fully_loaded_pico for row in rows[:-1]) == tied.origin_pico
    finally:
        for ledger in ledgers:
            ledger.close()
