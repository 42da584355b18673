"""Booking against a real Triton: the requests' own COMPUTE_NS, priced and recorded, against what
Triton's statistics API says the pool spent, window by window.

Two windows: requests one at a time (every execution is a batch of 1), then 16 in flight
(Triton's dynamic batcher forms batches). Checked: every charge ties out exactly; the counters
are per execution, not per request (batched requests are not charged the batch time each);
direct + overhead of the recommender's charge is Triton's compute x price; and the share the
requests metered is measured and stated. It is not 100 % for the Python backend: Triton's
compute includes the IPC between the server and the Python stub, which ``execute()`` cannot
see. ``pytest -s`` prints the figures.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from fractions import Fraction
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc.aio as triton_aio

from costing.cost import Usage, price_request
from costing.ledger import SqliteLedger
from costing.money import NS_PER_HOUR, PICO_PER_UNIT, round_half_up
from costing.price_book import PriceBook, load_price_book
from costing.reconciliation.booking import BookingState, book_window, opening
from costing.reconciliation.summary import resource_summary
from costing.reconciliation.triton_stats import TritonReader, executing_models
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
        cost_total_pico=cost.total_pico, cost_compute_pico=cost.compute_pico, cost_gateway_pico=0, cost_cache_pico=0,
        cost_avoided_pico=0, currency=cost.currency, price_book_version=cost.price_book_version,
    )  # fmt: skip


async def per_request_infer_ns(client: triton_aio.InferenceServerClient) -> int:
    """Triton's per-request compute_infer sum, in which each request is charged its whole batch."""
    stats = await client.get_inference_statistics(MODEL, as_json=True)
    return int(stats["model_stats"][0]["inference_stats"]["compute_infer"].get("ns", 0))


async def test_attributed_compute_reconciles_with_triton_statistics(
    recommender_triton: TritonServer, buyers: list[str], tmp_path: Path
) -> None:
    book = load_price_book(get_settings().price_book_path)
    rate = Fraction(str(book.pool(POOL).usd_per_unit_hour)) * PICO_PER_UNIT / NS_PER_HOUR
    client = triton_aio.InferenceServerClient(recommender_triton.grpc_url)
    users = list(itertools.islice(itertools.cycle(buyers), CONCURRENT_REQUESTS))
    try:
        assert await executing_models(client, [MODEL]) == [MODEL]
        reader = TritonReader([client], [MODEL], POOL)
        await run_requests(client, users[:20], 1)  # warm-up, outside every window
        with SqliteLedger(tmp_path / "ledger.sqlite") as ledger:
            first = dt.datetime.now(dt.UTC)
            reading = await reader.read()
            ledger.book(lambda cursor: cursor.store(opening(first, book, "test", {POOL: reading}), [], []))
            figures = {}
            for phase, count, in_flight in (
                ("sequential", SEQUENTIAL_REQUESTS, 1),
                ("batched", CONCURRENT_REQUESTS, IN_FLIGHT),
            ):
                before = reading
                per_request_before = await per_request_infer_ns(client)
                compute = await run_requests(client, users[:count], in_flight)
                ledger.write([record(index, ns, book, phase) for index, ns in enumerate(compute)])
                end = dt.datetime.now(dt.UTC) + dt.timedelta(microseconds=1)
                reading = await reader.read()
                per_request = await per_request_infer_ns(client) - per_request_before
                assert reading is not None
                counters = reading.counters[f"0|{MODEL}"].since(before.counters[f"0|{MODEL}"])

                def work(cursor, end=end, reading=reading):
                    last = cursor.last_booking()
                    usage = cursor.take_records(last.window_end, end)
                    result = book_window(last.window_end, end, usage, book, BookingState.from_json(last.state),
                                         triton={POOL: reading}, booked_by="test")  # fmt: skip
                    cursor.store(result.booking, result.charges, result.allocated)
                    return result

                result = ledger.book(work)
                figures[phase] = (counters, sum(compute), per_request, result)

            report = {row.group["feature"]: row for row in build_report(ledger, ["feature"]) if not row.is_total}
            (summary,) = [item for item in resource_summary(ledger) if item.resource == f"triton/{POOL}/{MODEL}"]
    finally:
        await client.close()

    for phase, (counters, attributed_ns, per_request_ns, result) in figures.items():
        (charge,) = [c for c in result.charges if c.resource == f"triton/{POOL}/{MODEL}"]
        per_execution_gap_ms = (counters.compute_ns - attributed_ns) / counters.executions / 1e6
        metered = charge.direct_pico / (charge.direct_pico + charge.overhead_pico)
        print(
            f"\n{phase}: {counters.inferences} requests in {counters.executions} executions; attributed "
            f"(COMPUTE_NS) {attributed_ns / 1e6:.1f} ms vs Triton input+infer+output {counters.compute_ns / 1e6:.1f} ms "
            f"summed per execution (metered {metered:.1%}; {per_execution_gap_ms:.2f} ms per execution outside "
            f"execute()), per-request compute_infer sum {per_request_ns / 1e6:.1f} ms; charge "
            f"{charge.capacity_pico / 1e12:.3g} USD = direct {charge.direct_pico / 1e12:.3g} + overhead "
            f"{charge.overhead_pico / 1e12:.3g} + idle {charge.idle_pico / 1e12:.3g}"
        )
        # Every charge ties out exactly, and the allocations add up to it.
        for each in result.charges:
            mine = [a for a in result.allocated if a.resource == each.resource]
            assert sum(a.total_pico for a in mine) == each.capacity_pico == each.direct_pico + each.overhead_pico + each.idle_pico
        assert charge.usage_quantity == attributed_ns and charge.requests == counters.inferences
        assert charge.measured_quantity == counters.compute_ns
        # Triton measures more than execute() does (its IPC with the stub): overhead, never negative.
        assert 0 < metered < 1 and charge.overhead_pico > 0
    sequential, batched = figures["sequential"][0], figures["batched"][0]
    assert sequential.executions == sequential.inferences == SEQUENTIAL_REQUESTS
    assert figures["sequential"][2] == sequential.infer_ns  # batches of one: per request == per execution
    # Batched: fewer executions than requests, and the per-request figures charge every request
    # of a batch the whole batch, so they exceed what the pool actually spent.
    assert batched.inferences == CONCURRENT_REQUESTS and batched.executions < batched.inferences
    assert figures["batched"][2] > batched.infer_ns
    # The report carries the allocated overhead and idle per feature; the cache node, which these
    # requests did not use, is unallocated.
    assert set(report) == {*FEATURES, "__unallocated__"}
    assert all(report[feature].overhead > 0 and report[feature].idle > 0 for feature in FEATURES)
    # Over both windows, direct + overhead = Triton's compute x price, exactly.
    triton_ns = sum(f[0].compute_ns for f in figures.values())
    assert summary.identity_exact and summary.windows == 2 and summary.measured_quantity == triton_ns
    assert summary.direct_pico + summary.overhead_pico + summary.carry_pico == round_half_up(rate * triton_ns)
    print(f"both windows: requests metered {float(summary.metered_share):.1%} of the recommender's Triton compute")
