"""Settlement: what a settled request records (pool and its labels, replica, egress path,
price, what a hit saved), what its span carries, and when the record is written.

The book: cpu-local 3.6 $/vCPU-h = 1 pico-$/ns (2 vCPU provisioned), gpu-public 36 $/GPU-h =
10 pico-$/ns (on demand, public); the gateway 3.6 $/vCPU-h = 1 pico-$/ns; the cache 1 $ per
million operations = 1e6 pico-$/op; egress free in the zone (the default), 1 $/GB = 1000
pico-$/byte on the internet. A ledger written through a real LedgerWriter into SQLite.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import random
import time
from pathlib import Path

import pytest

from costing.ledger import LedgerWriter, SqliteLedger
from costing.price_book import PriceBook
from costing.records import OriginCharge
from costing.request_pricer import RequestPricer
from gateway import telemetry_attributes as attr
from gateway.call_tracing import CallTracer
from gateway.settlement import Settlement, UsageTally, note_attempt

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook.model_validate(
        {
            "version": "settle-1",
            "currency": "USD",
            "effective_date": "2026-11-01",
            "gateway": {"usd_per_vcpu_hour": 3.6, "source": "test"},
            "cache": {"usd_per_million_ops": 1.0, "source": "test"},
            "egress": {
                "default_path": "same_zone",
                "paths": {"same_zone": {"usd_per_gb": 0.0, "source": "test"}, "internet": {"usd_per_gb": 1.0, "source": "test"}},
            },
            "pools": {
                "cpu-local": {"device": "cpu", "unit": "vCPU", "usd_per_unit_hour": 3.6, "provisioned_units": 2,
                              "location": "private", "source": "test"},
                "gpu-public": {"device": "gpu", "unit": "GPU", "usd_per_unit_hour": 36.0, "location": "public", "source": "test"},
            },
        }
    )  # fmt: skip


class Spans:
    """The recorder the tracer hands finished spans to."""

    def __init__(self) -> None:
        self.ended: list = []

    def record(self, span) -> None:
        self.ended.append(span)


def tally(**fields) -> UsageTally:
    """A request's usage; its gateway CPU so far set to 500 us (1 pico-$/ns: 500_000)."""
    fields = {"rpc": "Recommend", "feature": "home_feed", "model_name": "recommender", **fields}
    usage = UsageTally(**fields)
    usage.meter.ns = 500_000
    return usage


def settled(settlement: Settlement, *args, **kwargs):
    """Settles in a context of its own, so that a pool noted by ``note_attempt`` stays there."""
    return contextvars.copy_context().run(settlement.settle, *args, **kwargs)


async def records_of(writer: LedgerWriter, ledger: SqliteLedger) -> dict:
    await writer.flush()
    return {record.request_id: record for record in ledger.records()}


@pytest.fixture
def ledger(tmp_path: Path):
    with SqliteLedger(tmp_path / "ledger.sqlite") as opened:
        yield opened


async def test_a_served_request_records_its_pool_replica_path_and_price(book: PriceBook, ledger: SqliteLedger) -> None:
    """globex's answers go over the internet: 2 ms on gpu-public = 20e6, 500 us of gateway CPU
    = 5e5, 2 cache operations = 2e6, 500 bytes = 5e5: 23e6 in all."""
    writer = LedgerWriter(ledger, flush_interval_s=60)
    durations: list[tuple[str, float]] = []
    pricer = RequestPricer(book, replica="r7", egress_paths={"globex": "internet"})
    settlement = Settlement(book, writer, pricer=pricer, observe_duration=lambda rpc, s: durations.append((rpc, s)))
    spans = Spans()
    trace = CallTracer(spans, 1.0, random.Random(3)).begin("/svc/Recommend", "svc", "Recommend", TRACEPARENT, None)
    usage = tally(model_version="3", build_id="b-9", pool="gpu-public", route_reason="overflow", attempts=2, cache_ops=2,
                  compute_ns=2_000_000, response_bytes=500)  # fmt: skip
    info = settled(settlement, "req-1", "globex", usage, "OK", trace)
    bound = time.perf_counter() - usage.started_s
    assert (info.pool, info.device, info.location, info.build_id, info.model_version) == ("gpu-public", "gpu", "public", "b-9", "3")
    assert (info.route_reason, info.attempts, info.cache_hit) == ("overflow", 2, False)
    cost = info.cost
    assert (cost.compute_pico, cost.gateway_pico, cost.cache_pico, cost.egress_pico) == (20_000_000, 500_000, 2_000_000, 500_000)
    assert (cost.total_pico, cost.avoided_pico, cost.egress_path) == (23_000_000, 0, "internet")
    record = (await records_of(writer, ledger))["req-1"]
    assert (record.pool, record.device, record.replica, record.egress_path, record.tenant) == (
        "gpu-public", "gpu", "r7", "internet", "globex",
    )  # fmt: skip
    assert (record.compute_ns, record.gateway_cpu_ns, record.cache_ops, record.response_bytes) == (2_000_000, 500_000, 2, 500)
    assert (record.cost_total_pico, record.cost_egress_pico, record.route_reason, record.status) == (23_000_000, 500_000, "overflow", "OK")
    (span,) = spans.ended
    assert span.attributes["rpc.grpc.status_code"] == 0
    assert (span.attributes[attr.FEATURE], span.attributes[attr.TENANT], span.attributes[attr.POOL]) == ("home_feed", "globex", "gpu-public")
    assert (span.attributes[attr.MODEL_BUILD_ID], span.attributes[attr.COST_TOTAL]) == ("b-9", 23_000_000 / 10**12)
    ((rpc, seconds),) = durations
    assert rpc == "Recommend" and 0 <= seconds <= bound, "the request's own duration, from its start"
    await writer.close()


async def test_a_failed_call_records_the_pool_it_was_sent_to(book: PriceBook, ledger: SqliteLedger) -> None:
    writer = LedgerWriter(ledger, flush_interval_s=60)
    settlement = Settlement(book, writer)

    def attempt_then_fail():
        note_attempt("gpu-public")  # the router, before it sends the call
        return settlement.settle("req-2", "acme", tally(), "DEADLINE_EXCEEDED")

    info = contextvars.copy_context().run(attempt_then_fail)
    assert (info.pool, info.device, info.location, info.cost.compute_pico) == ("gpu-public", "gpu", "public", 0)
    nowhere = settled(settlement, "req-3", "acme", tally(), "INVALID_ARGUMENT")  # refused before any pool
    assert (nowhere.pool, nowhere.device, nowhere.location) == ("", "", "")
    records = await records_of(writer, ledger)
    assert (records["req-2"].pool, records["req-2"].egress_path, records["req-3"].pool) == ("gpu-public", "same_zone", "")
    await writer.close()


async def test_a_hit_is_served_by_the_cache_and_saves_its_compute_plus_overhead_share(book: PriceBook, ledger: SqliteLedger) -> None:
    """The last booked window of cpu-local's recommender: 2e6 overhead on 4e6 direct (1/2). A
    hit that avoided 2 ms there saves 2e6 x 1.5 = 3e6, no cash (cpu-local is provisioned); it
    pays 500 us of gateway CPU and one cache operation: 1.5e6."""
    writer = LedgerWriter(ledger, flush_interval_s=60)
    pricer = RequestPricer(book)
    start = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
    pricer.learn([OriginCharge(
        window_start=start, window_end=start + dt.timedelta(minutes=1), resource="triton/cpu-local/recommender",
        kind="compute", pool="cpu-local", model="recommender", device="cpu", currency="USD", price_book_version="settle-1",
        provisioned_pico=0, capacity_pico=6_000_000, direct_pico=4_000_000, overhead_pico=2_000_000, idle_pico=0,
        adjustment_pico=0, carry_pico=0, requests=2, usage_quantity=4_000_000, usage_unit="ns", measured_quantity=None,
    )])  # fmt: skip
    settlement = Settlement(book, writer, pricer=pricer)
    hit = tally(cache_hit=True, cache_ops=1, pool="cpu-local", avoided_compute_ns=2_000_000, avoided_pool="cpu-local")
    info = settled(settlement, "req-4", "acme", hit, "OK")
    assert (info.pool, info.device, info.location) == ("cache", "redis", "private")
    assert (info.cost.avoided_pico, info.cost.avoided_is_cash, info.cost.total_pico) == (3_000_000, False, 1_500_000)
    record = (await records_of(writer, ledger))["req-4"]
    assert (record.cache_hit, record.pool, record.cost_avoided_pico, record.avoided_is_cash) == (True, "cache", 3_000_000, False)
    await writer.close()


async def test_commit_before_answer_writes_the_record_before_the_answer_goes_out(book: PriceBook, ledger: SqliteLedger) -> None:
    writer = LedgerWriter(ledger, flush_interval_s=60)
    later, before_answer = Settlement(book, writer), Settlement(book, writer, commit_before_answer=True)
    settled(later, "req-5", "acme", tally(), "OK")
    await later.commit()
    assert ledger.count() == 0, "the default mode answers first and writes every flush interval"
    settled(before_answer, "req-6", "acme", tally(), "OK")
    await before_answer.commit()
    assert {record.request_id for record in ledger.records()} == {"req-5", "req-6"}
    await writer.close()


async def test_an_unwritable_ledger_does_not_hold_the_answer(book: PriceBook, tmp_path: Path, caplog) -> None:
    broken = SqliteLedger(tmp_path / "broken.sqlite")
    broken.close()  # every write now fails
    writer = LedgerWriter(broken, flush_interval_s=60)
    settlement = Settlement(book, writer, commit_before_answer=True)
    settled(settlement, "req-7", "acme", tally(), "OK")
    with caplog.at_level(logging.WARNING, logger="gateway.settlement"):
        await settlement.commit()  # does not raise: serving beats durability
    warnings = [r.getMessage() for r in caplog.records if r.name == "gateway.settlement"]
    assert warnings == ["answering before the ledger write: the ledger is unavailable, records stay buffered"]
