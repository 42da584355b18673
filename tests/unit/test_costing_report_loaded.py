"""Fully-loaded reports: allocated overhead, idle, storage and operations per feature, outcomes
(conversions, revenue, cost per conversion, return on cost), Parquet and the chart."""

from __future__ import annotations

import datetime as dt
import io
import math
from decimal import Decimal
from fractions import Fraction
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.unit.costing_factories import record_from
from costing.chart import band_label, write_cost_chart
from costing.ledger import SqliteLedger
from costing.price_book import PriceBook, load_price_book
from costing.reconciliation.booking import BookingState, Counters, PoolReading, book_window, opening
from costing.reconciliation.summary import resource_summary, tie_out
from costing.records import CostRecord, Outcome
from costing.report import build_report
from costing.report_render import render

BOOK_PATH = Path(__file__).resolve().parents[2] / "costing" / "price_book.toml"
DAY1 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
FEATURES = ("home_feed", "cart_upsell", "search_box")
WINDOW = dt.timedelta(minutes=1)


# The default book's prices, as pico-$ per unit (1 $ = 1e12 pico-$): cpu-local and the gateway
# 0.044625 $/vCPU-h (per ns: / 3.6e12 ns), Redis 0.000889 $ per million operations; egress in
# the zone (the default path) is free. The fixture checks that the book still says so.
CPU_LOCAL_PICO_PER_NS = GATEWAY_PICO_PER_NS = Fraction(44_625, 3_600_000)
CACHE_PICO_PER_OP = 889
BOOK_VERSION = load_price_book(BOOK_PATH).version
AVOIDED_NS = 2_000_000  # what each hit's cached answer cost to compute


def pico(amount: Fraction) -> int:
    """Rounded half up to a whole pico-$, as the ledger stores amounts."""
    return math.floor(amount + Fraction(1, 2))


def priced(index: int, start: dt.datetime) -> CostRecord:
    """Request ``index`` of the window starting at ``start``: 3 features, a cache hit in 5;
    priced by hand from the default book."""
    feature = FEATURES[index % 3]
    hit = index % 5 == 0
    compute_ns = 0 if hit else 1_000_000 * (1 + index % 4) * (3 if feature == "search_box" else 1)
    ops = 1 if hit else 2
    return record_from(
        request_id=f"{start:%d%H%M}-{index}", timestamp=start + dt.timedelta(seconds=index % 60), rpc="Recommend",
        feature=feature, tenant=("acme", "globex")[index % 2], model="recommender", model_version="1",
        pool="cache" if hit else "cpu-local", device="redis" if hit else "cpu", cache_hit=hit, status="OK",
        compute_ns=compute_ns, gateway_cpu_ns=200_000, cache_ops=ops,
        cost_compute_pico=pico(compute_ns * CPU_LOCAL_PICO_PER_NS), cost_gateway_pico=pico(200_000 * GATEWAY_PICO_PER_NS),
        cost_cache_pico=ops * CACHE_PICO_PER_OP, cost_avoided_pico=pico(AVOIDED_NS * CPU_LOCAL_PICO_PER_NS) if hit else 0,
        currency="USD", price_book_version=BOOK_VERSION, response_bytes=800, cost_egress_pico=0,
        egress_path="same_zone", avoided_is_cash=False, replica="r1",
    )  # fmt: skip


def book_next(ledger: SqliteLedger, book: PriceBook, end: dt.datetime, triton_ns: int) -> None:
    """Book the window up to ``end``, Triton's cumulative compute of the recommender then ``triton_ns``."""
    reading = PoolReading({"0|recommender": Counters(1, 1, 0, triton_ns, 0)}, {"recommender": ("recommender",)})

    def work(cursor):
        last = cursor.last_booking()
        usage = cursor.take_records(last.window_end, end)
        result = book_window(last.window_end, end, usage, book, BookingState.from_json(last.state),
                             triton={"cpu-local": reading}, booked_by="r1")  # fmt: skip
        cursor.store(result.booking, result.charges, result.allocated)

    ledger.book(work)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    """Two days, three booked one-minute windows each (and the gap between the days, booked as
    one window), Triton measuring 1.4 x what the requests metered, and outcomes."""
    book = load_price_book(BOOK_PATH)
    assert (book.pool("cpu-local").usd_per_unit_hour, book.gateway.usd_per_vcpu_hour, book.cache.usd_per_million_ops) == (
        0.044625, 0.044625, 0.000889,
    ), "the hand-priced records assume these prices"  # fmt: skip
    with SqliteLedger(tmp_path / "ledger.sqlite") as opened:
        empty = PoolReading({"0|recommender": Counters()}, {"recommender": ("recommender",)})
        opened.book(lambda cursor: cursor.store(opening(DAY1, book, "r1", {"cpu-local": empty}), [], []))
        triton_ns = 0
        for day in range(2):
            for minute in range(3):
                start = DAY1 + dt.timedelta(days=day, minutes=minute)
                records = [priced(index, start) for index in range(40 + 10 * minute)]
                opened.write(records)
                triton_ns += int(sum(record.compute_ns for record in records) * 1.4)
                book_next(opened, book, start + WINDOW, triton_ns)
            if day == 0:
                book_next(opened, book, DAY1 + dt.timedelta(days=1), triton_ns)  # the night: no traffic
        opened.write_outcomes([
            Outcome("o1", f"{DAY1:%d%H%M}-1", DAY1, "click", 0, "USD"),
            Outcome("o2", f"{DAY1:%d%H%M}-1", DAY1, "purchase", 12_000_000_000_000, "USD"),
            Outcome("o3", f"{DAY1:%d%H%M}-4", DAY1, "purchase", 30_000_000_000_000, "USD"),
            Outcome("o4", f"{DAY1:%d%H%M}-2", DAY1, "click", 0, "USD"),
        ])  # fmt: skip
        yield opened


def test_fully_loaded_per_feature_adds_up_to_what_was_paid(ledger: SqliteLedger) -> None:
    rows = build_report(ledger, ["feature"])
    groups, total = rows[:-1], rows[-1]
    assert [row.group["feature"] for row in groups] == sorted([*FEATURES, "__unallocated__"])
    charges = ledger.charges()
    paid = sum(charge.capacity_pico for charge in charges)
    assert total.fully_loaded_pico == paid, "everything paid is carried by someone, to the pico-dollar"
    for row in groups:
        assert row.cost_basis == "fully_loaded"
        assert row.fully_loaded == row.direct + row.overhead + row.idle + row.storage + row.operations
    served = [row for row in groups if row.group["feature"] != "__unallocated__"]
    # Triton measured 1.4 x the compute the requests metered, and nothing else had overhead (no
    # gateway reading, the cache is all idle): each feature's overhead is 0.4 x its own compute
    # cost, give or take the rounding of each request to a pico-$ and of each window's split.
    for row in served:
        assert abs(row.allocated.overhead_pico - Fraction(4, 10) * row.compute_pico) <= row.requests + 6, row.group
    for part in ("idle", "storage", "operations"):
        assert sum(getattr(row.allocated, f"{part}_pico") for row in groups) == getattr(total.allocated, f"{part}_pico")
    # The night between the days: nobody used anything, its cost is unallocated.
    (night,) = [row for row in groups if row.group["feature"] == "__unallocated__"]
    assert night.requests == 0 and night.idle > 0 and night.direct == 0


@pytest.mark.parametrize("by", [["feature"], ["tenant"], ["model"], ["pool"], ["device"], ["day"], ["feature", "day"],
                                ["tenant", "pool", "model"]])  # fmt: skip
def test_fully_loaded_equals_the_origin_charges_whatever_the_grouping_and_range(ledger: SqliteLedger, by) -> None:
    """The identity: for the whole ledger and for window-aligned sub-ranges, Σ fully loaded
    of any grouping = Σ origin charges, bit for bit."""
    starts = sorted({booking.window_start for booking in ledger.bookings() if booking.kind == "window"})
    ranges = [(None, None), (starts[1], starts[4]), (starts[0], starts[2]), (starts[5], None)]
    for since, until in ranges:
        rows = build_report(ledger, by, since=since, until=until)
        origin = sum(charge.capacity_pico for charge in ledger.charges(since, until))
        assert sum(row.fully_loaded_pico for row in rows if not row.is_total) == origin
        assert rows[-1].fully_loaded_pico == origin
        (tied,) = tie_out(ledger, since, until)
        assert tied.difference_pico == 0 and tied.origin_pico == origin


def test_fully_loaded_by_day_pool_and_device(ledger: SqliteLedger) -> None:
    rows = build_report(ledger, ["day", "pool", "device"])
    groups = [row for row in rows if not row.is_total]
    assert {row.group["day"] for row in groups} == {"2026-11-23", "2026-11-24"}
    pools = {(row.group["day"], row.group["pool"]): row for row in groups}
    cpu = pools[("2026-11-23", "cpu-local")]
    assert cpu.group["device"] == "cpu" and cpu.storage == 0
    assert abs(cpu.allocated.overhead_pico - Fraction(4, 10) * cpu.compute_pico) <= cpu.requests + 3, "Triton measured 1.4x"
    # Cache hits are served by the cache pool; by pool, each pool carries exactly its own charges.
    charges = ledger.charges(DAY1, DAY1 + dt.timedelta(days=1))
    for pool in ("cpu-local", "cache", "gateway", "storage", "operations"):
        assert pools[("2026-11-23", pool)].fully_loaded_pico == sum(c.capacity_pico for c in charges if c.pool == pool)
    assert pools[("2026-11-23", "cache")].requests == sum(1 for r in ledger.records(DAY1, DAY1 + dt.timedelta(days=1)) if r.cache_hit)


def test_groupings_that_cannot_be_allocated_show_no_fully_loaded_cost(ledger: SqliteLedger) -> None:
    rows = build_report(ledger, ["rpc", "feature"])
    assert all(row.fully_loaded is None and row.overhead is None for row in rows)
    assert all(row.cost_basis == "direct" for row in rows)


def test_outcomes_give_conversions_revenue_and_return_on_cost(ledger: SqliteLedger) -> None:
    rows = {row.group["feature"]: row for row in build_report(ledger, ["feature"]) if not row.is_total}
    cart, search, feed = rows["cart_upsell"], rows["search_box"], rows["home_feed"]  # ids 1, 4 / 2 / -
    assert (cart.clicks, cart.conversions, cart.revenue) == (1, 2, Decimal(42))
    assert cart.cost_per_conversion == (cart.fully_loaded / 2).quantize(Decimal("1e-12"))
    assert cart.return_on_cost == ((42 - cart.fully_loaded) / cart.fully_loaded).quantize(Decimal("1e-6"))
    assert (search.clicks, search.conversions, search.cost_per_conversion) == (1, 0, None)
    assert search.return_on_cost == Decimal(-1)  # cost, no revenue
    assert feed.conversions == 0 and feed.revenue == 0
    total = build_report(ledger, ["feature"])[-1]
    assert (total.clicks, total.conversions, total.revenue) == (2, 2, Decimal(42))


def test_cache_savings_are_reported(ledger: SqliteLedger) -> None:
    (total,) = build_report(ledger, [])
    # One request in 5 is a hit: 8 + 10 + 12 a day, two days. Each avoided 2 ms on cpu-local:
    # 2e6 ns x 44625 / 3.6e6 pico-$/ns = 24_791.67, stored as 24_792 pico-$.
    assert (total.cache_hits, total.avoided_pico) == (60, 60 * 24_792)
    # cpu-local is provisioned: what the hits avoided saved no cash.
    assert total.avoided_non_cash == total.avoided
    assert total.egress == 0, "the default path is the same zone: free"


def test_the_resource_summary_states_what_metering_explained(ledger: SqliteLedger) -> None:
    summary = {item.resource: item for item in resource_summary(ledger)}
    compute = summary["triton/cpu-local/recommender"]
    assert compute.windows == 6 and compute.identity_exact and all(item.identity_exact for item in summary.values())
    # Triton measured 1.4 x the metered compute: the requests explained 1 / 1.4 of it.
    assert float(compute.metered_share) == pytest.approx(1 / 1.4, abs=1e-4)
    assert compute.capacity_pico == compute.direct_pico + compute.overhead_pico + compute.idle_pico
    # Storage: 60 GB x 0.08 $ = 4.8 $ a month of 30 days (November), over the booked 24 h 3 min
    # from Nov 23 10:00 (22 d 10 h into the month): round(4.8e12 x 2_023_380 s / 2_592_000 s)
    # - round(4.8e12 x 1_936_800 s / 2_592_000 s) = 3_747_000_000_000 - 3_586_666_666_667.
    assert summary["storage"].capacity_pico == 160_333_333_333 and summary["storage"].metered_share == Fraction(0)


def test_parquet_reads_back_to_the_same_rows(ledger: SqliteLedger) -> None:
    rows = build_report(ledger, ["day", "feature"])
    table = pq.read_table(io.BytesIO(render(rows, "parquet")))  # type: ignore[arg-type]
    assert table.num_rows == len(rows)
    data = table.to_pylist()
    for item, row in zip(data, rows):
        assert item["fully_loaded"] == row.fully_loaded and item["requests"] == row.requests  # exact decimals
        assert item["day"] == row.group["day"]
    assert data[-1]["row_type"] == "total" and data[-1]["feature"] is None
    empty = pq.read_table(io.BytesIO(render(build_report(ledger, ["rpc"]), "parquet")))  # type: ignore[arg-type]
    assert str(empty.schema.field("fully_loaded").type) == "decimal128(38, 12)"  # typed even when all null


def test_chart_is_a_png_with_every_band_labelled_and_a_grain_for_the_range(ledger: SqliteLedger, tmp_path: Path) -> None:
    path = write_cost_chart(ledger, tmp_path / "charts" / "cost.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert band_label("__unallocated__") == "unallocated (capacity nobody used)"
    assert not band_label("_private").startswith("_"), "matplotlib would hide it"
    assert write_cost_chart(ledger, tmp_path / "one-day.png", DAY1, DAY1 + dt.timedelta(minutes=3)).exists()
