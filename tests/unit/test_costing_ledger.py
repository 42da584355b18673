"""The SQLite ledger (round trip, idempotency, time filters) and the LedgerWriter (periodic
flush, flush on close, nothing lost on write errors)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import math
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.unit.costing_factories import record_from
from costing.ledger import COLUMNS, CostRecord, LedgerError, LedgerWriter, SqliteLedger
from costing.ledger.journal import Journal
from costing.ledger.writer import WriterState

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


def make_record(index: int, *, timestamp: dt.datetime | None = None, **overrides: object) -> CostRecord:
    """A distinct, plausible record; ``index`` sets its id, time (one second apart) and cost."""
    cost_compute, cost_gateway, cost_cache = 1e-8 * (index + 1), 2e-9, 1e-9
    fields: dict[str, object] = {
        "request_id": f"req-{index:06d}",
        "timestamp": timestamp or T0 + dt.timedelta(seconds=index),
        "rpc": "Recommend",
        "feature": "home-feed",
        "tenant": "acme",
        "model": "recommender",
        "model_version": "1",
        "pool": "cpu-local",
        "device": "cpu",
        "cache_hit": False,
        "status": "OK",
        "compute_ns": 1_000_000 * (index + 1),
        "gateway_cpu_ns": 200_000,
        "cache_ops": 2,
        "cost_total": cost_compute + cost_gateway + cost_cache,
        "cost_compute": cost_compute,
        "cost_gateway": cost_gateway,
        "cost_cache": cost_cache,
        "cost_avoided": 0.0,
        "currency": "USD",
        "price_book_version": "test-1",
    }
    fields.update(overrides)
    return record_from(**fields)  # type: ignore[arg-type]


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    with SqliteLedger(tmp_path / "var" / "ledger.sqlite") as opened:
        yield opened


# --- SqliteLedger ------------------------------------------------------------------------


def test_creates_directory_schema_wal_and_indexes(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "ledger.sqlite"
    SqliteLedger(path).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        columns = [row[1] for row in conn.execute("PRAGMA table_info(cost_records)")]
        indexed = {
            conn.execute(f"PRAGMA index_info({name})").fetchone()[2]
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        }
    assert tuple(columns) == COLUMNS == tuple(field.name for field in dataclasses.fields(CostRecord))
    assert {"timestamp", "feature"} <= indexed


def test_round_trip_keeps_every_field(ledger: SqliteLedger) -> None:
    records = [
        make_record(0),
        make_record(1, cache_hit=True, pool="cache", device="redis", compute_ns=0, cost_compute=0.0,
                    cost_avoided=3.3e-8, avoided_is_cash=False, replica="r1", egress_path="internet"),
        # A large amount keeps every pico-dollar: 123,456.789012345678 $ is no float.
        make_record(2, status="INVALID_ARGUMENT", tenant="globex", cost_compute_pico=123_456_789_012_345_678),
    ]  # fmt: skip
    assert ledger.write(records) == 3
    assert ledger.records() == records
    assert ledger.count() == 3
    assert ledger.total_cost_pico() == sum(record.cost_total_pico for record in records)
    assert records[2].cost_total_pico == 123_456_789_012_345_678 + 3_000


def test_timestamps_are_stored_in_utc_and_naive_ones_refused(ledger: SqliteLedger) -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    record = make_record(0, timestamp=dt.datetime(2026, 11, 1, 13, 30, 0, 123456, tzinfo=paris))
    assert record.timestamp == dt.datetime(2026, 11, 1, 12, 30, 0, 123456, tzinfo=dt.UTC)
    assert record.timestamp.utcoffset() == dt.timedelta(0)
    ledger.write([record])
    (stored,) = ledger.records()
    assert stored.timestamp == record.timestamp and stored.timestamp.tzinfo == dt.UTC
    with pytest.raises(ValueError, match="timezone-aware"):
        make_record(1, timestamp=dt.datetime(2026, 11, 1, 12, 0))


def test_write_is_idempotent_by_request_id(ledger: SqliteLedger) -> None:
    first = [make_record(index) for index in range(5)]
    assert ledger.write(first) == 5
    assert ledger.write(first) == 0
    # A replayed id keeps its first version; only the new ids count.
    replay = [make_record(4, cost_compute=99.0), make_record(5), make_record(6)]
    assert ledger.write(replay) == 2
    assert ledger.count() == 7
    assert ledger.records()[4].cost_total == first[4].cost_total
    assert ledger.write([]) == 0


def test_records_since_is_inclusive_and_until_exclusive(ledger: SqliteLedger) -> None:
    day = dt.timedelta(days=1)
    ledger.write([make_record(index, timestamp=T0 + index * day) for index in range(4)])  # Nov 1..4, 12:00
    in_range = ledger.records(since=T0 + day, until=T0 + 3 * day)
    assert [record.request_id for record in in_range] == ["req-000001", "req-000002"]
    # Dates mean UTC midnight; a naive datetime is read as UTC.
    assert len(ledger.records(since=dt.date(2026, 11, 2))) == 3
    assert len(ledger.records(until=dt.date(2026, 11, 2))) == 1
    assert len(ledger.records(since=dt.datetime(2026, 11, 2, 12, 0))) == 3
    assert len(ledger.records(since=dt.datetime(2026, 11, 2, 12, 0, 0, 1))) == 2
    with pytest.raises(ValueError, match="empty time range"):
        ledger.records(since=dt.date(2026, 11, 3), until=dt.date(2026, 11, 3))


async def test_writes_from_a_worker_thread(ledger: SqliteLedger) -> None:
    assert await asyncio.to_thread(ledger.write, [make_record(index) for index in range(10)]) == 10
    assert ledger.count() == 10


def test_opening_for_reading_requires_an_existing_ledger(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="no cost ledger"):
        SqliteLedger(tmp_path / "absent.sqlite", create=False)
    assert not (tmp_path / "absent.sqlite").exists()

    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LedgerError, match="not a usable cost ledger"):
        SqliteLedger(garbage, create=False)

    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE things (x)")
    with pytest.raises(LedgerError, match="missing columns"):
        SqliteLedger(other, create=False)


# --- LedgerWriter ------------------------------------------------------------------------


class FlakyLedger:
    """Fails its first ``failures`` writes, then writes through; remembers every batch."""

    def __init__(self, inner: SqliteLedger, failures: int) -> None:
        self.inner = inner
        self.failures = failures
        self.batches: list[list[str]] = []

    def write(self, records: Sequence[CostRecord]) -> int:
        self.batches.append([record.request_id for record in records])
        if self.failures > 0:
            self.failures -= 1
            raise sqlite3.OperationalError("database is locked")
        return self.inner.write(records)


async def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_flushes_periodically_without_being_asked(ledger: SqliteLedger) -> None:
    writer = LedgerWriter(ledger, flush_interval_s=0.05)
    writer.start()
    try:
        for index in range(100):
            writer.record(make_record(index))
        assert ledger.count() == 0  # record() only buffers
        await wait_until(lambda: ledger.count() == 100)
        assert writer.pending == 0
        writer.record(make_record(100))  # and it keeps going
        await wait_until(lambda: ledger.count() == 101)
    finally:
        await writer.close()


async def test_close_writes_everything_buffered(ledger: SqliteLedger) -> None:
    records = [make_record(index) for index in range(10_000)]
    writer = LedgerWriter(ledger, flush_interval_s=3600)  # the periodic flush never fires
    writer.start()
    for record in records:
        writer.record(record)
    assert writer.pending == 10_000
    await writer.close()
    assert writer.pending == 0
    assert ledger.count() == 10_000
    assert ledger.total_cost() == pytest.approx(math.fsum(record.cost_total for record in records))
    with pytest.raises(RuntimeError, match="closed"):
        writer.record(make_record(10_000))


async def test_context_manager_and_explicit_flush(ledger: SqliteLedger) -> None:
    async with LedgerWriter(ledger, flush_interval_s=3600) as writer:
        writer.record(make_record(0))
        writer.record(make_record(1))
        assert await writer.flush() == 2
        assert await writer.flush() == 0
        writer.record(make_record(2))
    assert ledger.count() == 3


async def test_failed_write_keeps_the_batch_in_order(ledger: SqliteLedger, caplog: pytest.LogCaptureFixture) -> None:
    sink = FlakyLedger(ledger, failures=1)
    writer = LedgerWriter(sink, flush_interval_s=3600)
    for index in range(3):
        writer.record(make_record(index))
    with caplog.at_level(logging.ERROR, logger="costing.ledger"), pytest.raises(sqlite3.OperationalError):
        await writer.flush()
    assert "kept for the next flush" in caplog.text
    assert writer.pending == 3 and ledger.count() == 0

    writer.record(make_record(3))
    assert await writer.flush() == 4
    assert sink.batches[-1] == ["req-000000", "req-000001", "req-000002", "req-000003"]
    await writer.close()
    assert [record.request_id for record in ledger.records()] == sink.batches[-1]


async def test_periodic_flush_survives_write_errors(ledger: SqliteLedger) -> None:
    sink = FlakyLedger(ledger, failures=2)
    writer = LedgerWriter(sink, flush_interval_s=0.02)
    writer.start()
    try:
        for index in range(50):
            writer.record(make_record(index))
        await wait_until(lambda: ledger.count() == 50)
        assert len(sink.batches) >= 3  # two failures, then the retry that landed
    finally:
        await writer.close()


async def test_failed_close_can_be_retried(ledger: SqliteLedger) -> None:
    sink = FlakyLedger(ledger, failures=1)
    writer = LedgerWriter(sink, flush_interval_s=3600)
    writer.start()
    writer.record(make_record(0))
    with pytest.raises(sqlite3.OperationalError):
        await writer.close()
    assert writer.pending == 1
    await writer.close()
    assert writer.pending == 0 and ledger.count() == 1


def test_flush_interval_must_be_positive(ledger: SqliteLedger) -> None:
    with pytest.raises(ValueError, match="positive"):
        LedgerWriter(ledger, flush_interval_s=0)


# --- the journal: no answered request without a durable record -----------------------------


async def test_a_failing_database_sends_batches_to_the_journal_and_they_are_replayed(ledger, tmp_path) -> None:
    sink = FlakyLedger(ledger, failures=3)
    states: list[tuple[WriterState, int]] = []
    journal = Journal(tmp_path / "journal.jsonl")
    writer = LedgerWriter(sink, flush_interval_s=3600, journal=journal, on_state=lambda s, n: states.append((s, n)))
    records = [make_record(index) for index in range(30)]
    for batch in (records[:10], records[10:20]):
        for record in batch:
            writer.record(record)
        assert await writer.flush() == 0, "nothing reached the database..."
        assert writer.pending == 0, "...but nothing waits in memory either"
    assert journal.count() == 20 and writer.state is WriterState.JOURNALING and writer.healthy
    assert [r.request_id for r in Journal(journal.path).read()] == [r.request_id for r in records[:20]]
    sink.failures = 0  # the database is back
    for record in records[20:]:
        writer.record(record)
    assert await writer.flush() == 30, "the new batch and the 20 journalled records"
    assert journal.count() == 0 and not journal.path.exists()
    assert sorted(r.request_id for r in ledger.records()) == [r.request_id for r in records]
    assert [s for s, _ in states] == [WriterState.JOURNALING, WriterState.OK]
    await writer.close()


async def test_a_replay_is_idempotent_when_some_records_already_landed(ledger, tmp_path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append([make_record(0), make_record(1)])
    ledger.write([make_record(0)])  # e.g. the write landed but its acknowledgement was lost
    writer = LedgerWriter(ledger, flush_interval_s=3600, journal=journal)
    assert await writer.flush() == 1
    assert ledger.count() == 2


async def test_when_the_journal_fails_too_the_writer_is_unhealthy_and_keeps_the_records(ledger) -> None:
    sink = FlakyLedger(ledger, failures=1)
    writer = LedgerWriter(sink, flush_interval_s=3600, journal=Journal(Path("/dev/full/journal.jsonl")))
    writer.record(make_record(0))
    with pytest.raises(sqlite3.OperationalError):
        await writer.flush()
    assert not writer.healthy and writer.state is WriterState.FAILING and writer.pending == 1
    await writer.flush()  # the database answers again
    assert writer.healthy and ledger.count() == 1


async def test_close_never_raises_with_a_journal_and_logs_what_nothing_took(ledger, caplog) -> None:
    sink = FlakyLedger(ledger, failures=10)
    writer = LedgerWriter(sink, flush_interval_s=3600, journal=Journal(Path("/dev/full/journal.jsonl")))
    writer.start()
    writer.record(make_record(7))
    with caplog.at_level(logging.ERROR, logger="costing.ledger"):
        await writer.close()
    assert "req-000007" in caplog.text, "the unwritten record is in the log, as JSON"


async def test_memory_is_bounded_while_nothing_can_be_written(ledger) -> None:
    dropped = []
    writer = LedgerWriter(FlakyLedger(ledger, failures=10), flush_interval_s=3600, max_pending=5, on_drop=dropped.append)
    for index in range(8):
        writer.record(make_record(index))
    assert writer.pending == 5 and sum(dropped) == 3


def test_a_torn_journal_line_is_left_out(tmp_path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append([make_record(0), make_record(1)])
    with journal.path.open("a") as out:
        out.write('{"request_id": "req-torn"')  # a crash in the middle of an append
    assert [r.request_id for r in Journal(journal.path).read()] == ["req-000000", "req-000001"]
    assert Journal(journal.path).read()[0] == make_record(0), "a record survives the round trip exactly"
