"""Fully-loaded reports: allocated overhead, idle, storage and operations per feature, outcomes
(conversions, revenue, cost per conversion, return on cost), Parquet and the chart."""

from __future__ import annotations

import datetime as dt
import io
import math
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.unit.costing_factories import record_from
from costing.chart import write_cost_chart
from costing.cost import Usage, price_request
from costing.ledger import SqliteLedger
from costing.money import from_pico
from costing.price_book import PriceBook, load_price_book
from costing.reconciliation.allocation import TritonCompute, reconcile_window
from costing.reconciliation.summary import reconciliation_summary
from costing.records import CostRecord, Outcome
from costing.report import build_report
from costing.report_render import render

BOOK_PATH = Path(__file__).resolve().parents[2] / "costing" / "price_book.toml"
DAY1 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
FEATURES = ("home_feed", "cart_upsell", "search_box")
WINDOW = dt.timedelta(minutes=1)


def priced(index: int, book: PriceBook, start: dt.datetime) -> CostRecord:
    """Request ``index`` of the window starting at ``start``: 3 features, a cache hit in 5."""
    feature = FEATURES[index % 3]
    hit = index % 5 == 0
    usage = Usage(
        pool="" if hit else "cpu-local",
        model_compute_ns=0 if hit else 1_000_000 * (1 + index % 4) * (3 if feature == "search_box" else 1),
        gateway_cpu_ns=200_000,
        cache_ops=1 if hit else 2,
        avoided_compute_ns=2_000_000 if hit else 0,
        avoided_pool="cpu-local" if hit else "",
        response_bytes=800,
    )
    cost = price_request(usage, book)
    return record_from(
        request_id=f"{start:%d%H%M}-{index}", timestamp=start + dt.timedelta(seconds=index % 60), rpc="Recommend",
        feature=feature, tenant=("acme", "globex")[index % 2], model="recommender", model_version="1",
        pool=usage.pool, device="" if hit else "cpu", cache_hit=hit, status="OK", compute_ns=cost.compute_ns,
        gateway_cpu_ns=usage.gateway_cpu_ns, cache_ops=usage.cache_ops, cost_total=cost.total,
        cost_compute=cost.compute, cost_gateway=cost.gateway, cost_cache=cost.cache, cost_avoided=cost.avoided,
        currency=cost.currency, price_book_version=cost.price_book_version, response_bytes=usage.response_bytes,
        cost_egress=cost.egress,
    )  # fmt: skip


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    """Two days, three reconciled one-minute windows each, with Triton figures, and outcomes."""
    book = load_price_book(BOOK_PATH)
    with SqliteLedger(tmp_path / "ledger.sqlite") as opened:
        for day in range(2):
            for minute in range(3):
                start = DAY1 + dt.timedelta(days=day, minutes=minute)
                records = [priced(index, book, start) for index in range(40 + 10 * minute)]
                opened.write(records)
                attributed = sum(record.compute_ns for record in records)
                triton = {"cpu-local": TritonCompute(int(attributed * 1.4), int(attributed * 1.3), 30, 40)}
                result = reconcile_window(start, start + WINDOW, opened.owner_usage(start, start + WINDOW), book,
                                          pools=["cpu-local"], triton=triton)  # fmt: skip
                opened.write_windows(result.windows, result.allocations)
        opened.write_outcomes([
            Outcome("o1", f"{DAY1:%d%H%M}-1", DAY1, "click", 0.0, "USD"),
            Outcome("o2", f"{DAY1:%d%H%M}-1", DAY1, "purchase", 12.0, "USD"),
            Outcome("o3", f"{DAY1:%d%H%M}-4", DAY1, "purchase", 30.0, "USD"),
            Outcome("o4", f"{DAY1:%d%H%M}-2", DAY1, "click", 0.0, "USD"),
        ])  # fmt: skip
        yield opened


def test_fully_loaded_per_feature_adds_up_to_what_was_paid(ledger: SqliteLedger) -> None:
    rows = build_report(ledger, ["feature"])
    groups, (total,) = rows[:-1], rows[-1:]
    assert [row.group["feature"] for row in groups] == sorted(FEATURES)
    for row in groups:
        assert row.cost_basis == "fully_loaded"
        assert row.fully_loaded == pytest.approx(row.direct + row.overhead + row.idle + row.storage + row.operations)
        assert row.overhead > 0 and row.idle > 0 and row.storage > 0 and row.operations > 0
        assert row.fully_loaded_per_1k_requests == pytest.approx(row.fully_loaded / row.requests * 1000)
    windows = ledger.windows()
    assert len(windows) == 2 * 3 * 2  # cpu-local and the shared row, per window
    paid = from_pico(sum(w.capacity_pico for w in windows))
    direct_compute = from_pico(sum(w.direct_pico for w in windows))
    # Everything paid for the pools and the shared costs is carried by the features, to the unit:
    allocated = math.fsum(row.overhead + row.idle + row.storage + row.operations for row in groups)
    assert allocated + direct_compute == pytest.approx(paid, rel=1e-12)
    assert total.fully_loaded == pytest.approx(total.direct + allocated, rel=1e-12)
    # search_box measured 3x the compute per request: it carries more of the overhead per request.
    per_request = {row.group["feature"]: row.overhead / row.requests for row in groups}
    assert per_request["search_box"] > 2 * per_request["home_feed"]


def test_fully_loaded_by_day_pool_and_device(ledger: SqliteLedger) -> None:
    rows = build_report(ledger, ["day", "pool", "device"])
    groups = [row for row in rows if not row.is_total]
    assert {row.group["day"] for row in groups} == {"2026-11-23", "2026-11-24"}
    shared = [row for row in groups if row.group["pool"] == ""]
    cpu = [row for row in groups if row.group["pool"] == "cpu-local"]
    assert all(row.overhead == 0 and row.idle == 0 and row.storage > 0 for row in shared)  # cache hits + fixed costs
    assert all(row.storage == 0 and row.overhead > 0 and row.group["device"] == "cpu" for row in cpu)


def test_groupings_that_cannot_be_allocated_show_no_fully_loaded_cost(ledger: SqliteLedger) -> None:
    rows = build_report(ledger, ["rpc", "feature"])
    assert all(row.fully_loaded is None and row.overhead is None for row in rows)
    assert all(row.cost_basis == "direct" for row in rows)


def test_outcomes_give_conversions_revenue_and_return_on_cost(ledger: SqliteLedger) -> None:
    rows = {row.group["feature"]: row for row in build_report(ledger, ["feature"]) if not row.is_total}
    cart, search, feed = rows["cart_upsell"], rows["search_box"], rows["home_feed"]  # ids 1, 4 / 2 / -
    assert (cart.clicks, cart.conversions, cart.revenue) == (1, 2, 42.0)
    assert cart.cost_per_conversion == pytest.approx(cart.fully_loaded / 2)
    assert cart.return_on_cost == pytest.approx((42.0 - cart.fully_loaded) / cart.fully_loaded)
    assert (search.clicks, search.conversions, search.cost_per_conversion) == (1, 0, None)
    assert search.return_on_cost == pytest.approx(-1.0)  # cost, no revenue
    assert feed.conversions == 0 and feed.revenue == 0.0
    total = build_report(ledger, ["feature"])[-1]
    assert (total.clicks, total.conversions, total.revenue) == (2, 2, 42.0)


def test_cache_savings_are_reported(ledger: SqliteLedger) -> None:
    (total,) = build_report(ledger, [])
    assert total.cache_hits > 0 and total.avoided > 0
    assert total.egress == pytest.approx(total.requests * 800 * 0.09 / 1e9)


def test_the_reconciliation_summary_states_the_difference(ledger: SqliteLedger) -> None:
    cpu, shared = sorted(reconciliation_summary(ledger), key=lambda pool: pool.pool != "cpu-local")
    assert cpu.pool == "cpu-local" and cpu.windows == 6 and cpu.identity_exact and shared.identity_exact
    assert cpu.attributed_vs_triton_difference == pytest.approx(1 / 1.3 - 1, abs=1e-6)
    assert cpu.capacity == pytest.approx(cpu.direct + cpu.overhead + cpu.idle, rel=1e-12)
    assert shared.storage > 0 and shared.attributed_vs_triton_difference is None


def test_parquet_reads_back_to_the_same_rows(ledger: SqliteLedger) -> None:
    rows = build_report(ledger, ["day", "feature"])
    table = pq.read_table(io.BytesIO(render(rows, "parquet")))  # type: ignore[arg-type]
    assert table.num_rows == len(rows)
    data = table.to_pylist()
    for item, row in zip(data, rows):
        assert item["fully_loaded"] == row.fully_loaded and item["requests"] == row.requests
        assert item["day"] == row.group["day"]
    assert data[-1]["row_type"] == "total" and data[-1]["feature"] is None
    empty = pq.read_table(io.BytesIO(render(build_report(ledger, ["rpc"]), "parquet")))  # type: ignore[arg-type]
    assert str(empty.schema.field("fully_loaded").type) == "double"  # typed even when all null


def test_chart_is_a_png_of_cost_per_feature_per_day(ledger: SqliteLedger, tmp_path: Path) -> None:
    path = write_cost_chart(build_report(ledger, ["day", "feature"]), tmp_path / "charts" / "cost.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    with pytest.raises(ValueError, match="day and feature"):
        write_cost_chart(build_report(ledger, ["tenant"]), tmp_path / "bad.png")
