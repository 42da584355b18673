"""Several gateway replicas on one PostgreSQL ledger: their batches land side by side, a replayed
batch is stored once, a window reconciled by every replica is stored once, and the replicas'
Prometheus counters summed (as Prometheus sums a cluster) equal the ledger's totals.

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
from costing.reconciliation.allocation import TritonCompute
from costing.reconciliation.scheduler import WindowReconciler
from costing.reconciliation.summary import reconciliation_summary
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
    cost_compute = compute_ns * 0.044625 / 3.6e12
    return CostRecord(
        request_id=f"r{replica}-{index:06d}", timestamp=START + dt.timedelta(microseconds=25 * index + replica),
        rpc="Recommend", feature=("home_feed", "cart_upsell", "search_box")[index % 3], tenant=f"shop-{replica}",
        model="recommender", model_version="1", pool="cpu-local", device="cpu", cache_hit=False, status="OK",
        compute_ns=compute_ns, gateway_cpu_ns=150_000, cache_ops=2, cost_total=cost_compute + 2e-9,
        cost_compute=cost_compute, cost_gateway=1.9e-9, cost_cache=1e-10, cost_avoided=0.0, currency="USD",
        price_book_version="replicas",
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

        # Every replica reconciles the same window, at the same time.
        book = load_price_book(get_settings().price_book_path)
        triton = {"cpu-local": TritonCompute(compute_ns=10**10, infer_ns=9 * 10**9, executions=900, inferences=6000)}
        reconcilers = [
            WindowReconciler(ledger, book, [], window_s=60, grace_s=5, pools=["cpu-local"]) for ledger in ledgers
        ]
        results = await asyncio.gather(*(r.reconcile(START, END, triton) for r in reconcilers))
        assert sum(r.windows_stored for r in reconcilers) == len(results[0].windows)  # one replica's copy, whole

        reader = ledgers[0]
        assert reader.count() == REPLICAS * RECORDS_PER_REPLICA
        counted = math.fsum(m.total(m.cost) for m in metrics)
        assert counted == pytest.approx(reader.total_cost(), rel=1e-9)
        assert sum(m.total(m.requests) for m in metrics) == reader.count()
        rows = build_report(reader, ["tenant"], since=START, until=END)
        assert [row.group["tenant"] for row in rows[:-1]] == [f"shop-{r}" for r in range(REPLICAS)]
        assert all(row.requests == RECORDS_PER_REPLICA and row.fully_loaded is not None for row in rows[:-1])
        (pool,) = [p for p in reconciliation_summary(reader) if p.pool == "cpu-local"]
        assert pool.identity_exact and pool.windows == 1
    finally:
        for ledger in ledgers:
            ledger.close()
