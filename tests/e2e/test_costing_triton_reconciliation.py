"""Reconciliation against a real Triton: the requests' own COMPUTE_NS, priced and recorded,
against what Triton's statistics API says the pool spent, window by window.

Two windows: requests one at a time (every execution is a batch of 1), then 16 in flight
(Triton's dynamic batcher forms batches). Checked: the identity is exact; the poller counts
executions, not requests (batched requests are not charged the batch time each); and the
difference between attributed compute and Triton's compute_infer is measured and stated.
It is not small for the Python backend: Triton's compute_infer includes the IPC between the
server and the Python stub, which ``execute()`` cannot see. ``pytest -s`` prints the figures.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc.aio as triton_aio

from costing.cost import Usage, price_request
from costing.ledger import SqliteLedger
from costing.price_book import PriceBook, load_price_book
from costing.reconciliation.allocation import reconcile_window
from costing.reconciliation.summary import reconciliation_summary
from costing.reconciliation.triton_stats import TritonStatsPoller, executing_models
from costing.records import CostRecord
from costing.report import build_report
from deploy.local.triton import TritonServer
from gateway.settings import get_settings
from tests.support import e2e_log_path

pytestmark = pytest.mark.e2e

MODEL = "recommender"
POOL = "cpu-local"
FEATURES = ("home_feed", "cart_upsell")
SEQUENTIAL_REQUESTS = 150
CONCURRENT_REQUESTS = 480
IN_FLIGHT = 16


@pytest.fixture(scope="module")
def recommender_triton(model_repository: Path) -> Iterator[TritonServer]:
    """A Triton of our own with the recommender only, so that its statistics are ours alone."""
    server = TritonServer(model_repository, models=(MODEL,), log_path=e2e_log_path("costing-triton"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def request_inputs(user_id: str) -> list:
    user = triton_aio.InferInput("USER_ID", [1, 1], "BYTES")
    user.set_data_from_numpy(np.array([[user_id.encode()]], dtype=object))
    k = triton_aio.InferInput("K", [1, 1], "INT32")
    k.set_data_from_numpy(np.array([[10]], dtype=np.int32))
    return [user, k]


async def run_requests(client: triton_aio.InferenceServerClient, users: list[str], in_flight: int) -> list[int]:
    """COMPUTE_NS of each request, ``in_flight`` at a time."""
    gate = asyncio.Semaphore(in_flight)

    async def one(user: str) -> int:
        async with gate:
            result = await client.infer(
                MODEL, request_inputs(user), outputs=[triton_aio.InferRequestedOutput("COMPUTE_NS")]
            )
            return int(result.as_numpy("COMPUTE_NS").reshape(-1)[0])

    return list(await asyncio.gather(*(one(user) for user in users)))


def record(index: int, compute_ns: int, book: PriceBook, prefix: str) -> CostRecord:
    cost = price_request(Usage(pool=POOL, model_compute_ns=compute_ns, gateway_cpu_ns=0, cache_ops=0), book)
    return CostRecord(
        request_id=f"{prefix}-{index}", timestamp=dt.datetime.now(dt.UTC), rpc="Recommend",
        feature=FEATURES[index % 2], tenant="acme", model=MODEL, model_version="1", pool=POOL, device="cpu",
        cache_hit=False, status="OK", compute_ns=cost.compute_ns, gateway_cpu_ns=0, cache_ops=0,
        cost_total=cost.total, cost_compute=cost.compute, cost_gateway=0.0, cost_cache=0.0, cost_avoided=0.0,
        currency=cost.currency, price_book_version=cost.price_book_version,
    )  # fmt: skip


async def per_request_infer_ns(client: triton_aio.InferenceServerClient) -> int:
    """Triton's per-request compute_infer sum, in which each request is charged its whole batch."""
    stats = await client.get_inference_statistics(MODEL, as_json=True)
    return int(stats["model_stats"][0]["inference_stats"]["compute_infer"].get("ns", 0))


async def test_attributed_compute_reconciles_with_triton_statistics(
    recommender_triton: TritonServer, buyers: list[str], tmp_path: Path
) -> None:
    book = load_price_book(get_settings().price_book_path)
    client = triton_aio.InferenceServerClient(recommender_triton.grpc_url)
    users = list(itertools.islice(itertools.cycle(buyers), CONCURRENT_REQUESTS))
    try:
        assert await executing_models(client, [MODEL]) == [MODEL]
        poller = TritonStatsPoller([client], [MODEL], POOL)
        await run_requests(client, users[:20], 1)  # warm-up, outside every window
        with SqliteLedger(tmp_path / "ledger.sqlite") as ledger:
            figures = {}
            for phase, count, in_flight in (
                ("sequential", SEQUENTIAL_REQUESTS, 1),
                ("batched", CONCURRENT_REQUESTS, IN_FLIGHT),
            ):
                await poller.poll()
                per_request_before = await per_request_infer_ns(client)
                start = dt.datetime.now(dt.UTC)
                compute = await run_requests(client, users[:count], in_flight)
                ledger.write([record(index, ns, book, phase) for index, ns in enumerate(compute)])
                end = dt.datetime.now(dt.UTC) + dt.timedelta(microseconds=1)
                measured = await poller.poll()
                per_request = await per_request_infer_ns(client) - per_request_before
                assert measured is not None and measured.complete
                result = reconcile_window(
                    start, end, ledger.owner_usage(start, end), book, pools=[POOL], triton={POOL: measured}
                )
                assert ledger.write_windows(result.windows, result.allocations) == len(result.windows)
                figures[phase] = (measured, sum(compute), per_request, result)

            report = {row.group["feature"]: row for row in build_report(ledger, ["feature"]) if not row.is_total}
            (summary,) = [pool for pool in reconciliation_summary(ledger) if pool.pool == POOL]
    finally:
        await client.close()

    for phase, (measured, attributed_ns, per_request_ns, result) in figures.items():
        window = next(w for w in result.windows if w.pool == POOL)
        per_execution_gap_ms = (measured.infer_ns - attributed_ns) / measured.executions / 1e6
        print(
            f"\n{phase}: {measured.inferences} requests in {measured.executions} executions; attributed "
            f"(COMPUTE_NS) {attributed_ns / 1e6:.1f} ms vs Triton compute_infer {measured.infer_ns / 1e6:.1f} ms "
            f"summed per execution ({window.attributed_vs_triton_difference:+.1%}; {per_execution_gap_ms:.2f} ms per "
            f"execution outside execute()), input+infer+output {measured.compute_ns / 1e6:.1f} ms, per-request "
            f"sum {per_request_ns / 1e6:.1f} ms; window {window.capacity_pico / 1e12:.3g} USD = direct "
            f"{window.direct_pico / 1e12:.3g} + overhead {window.overhead_pico / 1e12:.3g} "
            f"+ idle {window.idle_pico / 1e12:.3g}"
        )
        # The identity, exactly, and the allocations add up to the window.
        assert window.capacity_pico == window.direct_pico + window.overhead_pico + window.idle_pico
        pool_allocations = [a for a in result.allocations if a.pool == POOL]
        assert sum(a.total_pico for a in pool_allocations) == window.capacity_pico
        assert window.attributed_compute_ns == attributed_ns and window.requests == measured.inferences
        # Triton measures more than execute() does (its IPC with the stub): overhead, never negative.
        assert window.attributed_vs_triton_difference is not None and -1 < window.attributed_vs_triton_difference < 0
        assert window.overhead_pico > 0
    sequential, batched = figures["sequential"][0], figures["batched"][0]
    assert sequential.executions == sequential.inferences == SEQUENTIAL_REQUESTS
    assert figures["sequential"][2] == sequential.infer_ns  # batches of one: per request == per execution
    # Batched: fewer executions than requests, and the per-request figures charge every request
    # of a batch the whole batch, so they exceed what the pool actually spent.
    assert batched.inferences == CONCURRENT_REQUESTS and batched.executions < batched.inferences
    assert figures["batched"][2] > batched.infer_ns
    # The report carries the allocated overhead and idle per feature, and states the difference.
    assert set(report) == set(FEATURES) and all(row.overhead > 0 and row.idle > 0 for row in report.values())
    assert summary.identity_exact and summary.windows == 2
    expected = (sum(f[1] for f in figures.values()) - sum(f[0].infer_ns for f in figures.values())) / sum(
        f[0].infer_ns for f in figures.values()
    )
    assert summary.attributed_vs_triton_difference == pytest.approx(expected)
    print(f"both windows: attributed vs Triton compute_infer {summary.attributed_vs_triton_difference:+.1%}")
