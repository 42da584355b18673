"""The same ledger semantics on SQLite and PostgreSQL: records, outcomes, reconciled windows,
summaries, idempotency and the upgrade of an older ledger.

PostgreSQL tests run in a schema of their own (unique suffix) and drop only that schema.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_costing_ledger import T0, make_record

from costing.ledger import LedgerError, SqlLedger, open_ledger, sqlite_url
from costing.ledger import SqliteLedger
from costing.price_book import load_price_book
from costing.reconciliation.booking import BookingState, book_window, opening
from costing.records import Outcome, ReplicaReading
from tests.support import TEST_POSTGRES_URL, postgres_unavailable


def new_postgres_ledger(postgres_url: str) -> SqlLedger:
    return open_ledger(postgres_url, schema=f"tollgate_test_{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlLedger]:
    if request.param == "sqlite":
        ledger: SqlLedger = SqliteLedger(tmp_path / "ledger.sqlite")
    else:
        ledger = new_postgres_ledger(request.getfixturevalue("postgres_url"))
    try:
        yield ledger
    finally:
        if request.param == "postgresql":
            ledger.drop_schema()  # type: ignore[attr-defined]
        ledger.close()


BOOK = load_price_book(Path(__file__).resolve().parents[2] / "costing" / "price_book.toml")


def test_records_round_trip_with_egress_and_are_idempotent(backend: SqlLedger) -> None:
    records = [make_record(index, response_bytes=1000 * index, cost_egress=1e-9 * index) for index in range(20)]
    assert backend.write(records) == 20
    assert backend.write(records[:5] + [make_record(20)]) == 1
    stored = backend.records()
    assert stored[:20] == records and len(stored) == 21
    assert backend.count() == 21
    assert backend.total_cost_pico() == sum(r.cost_total_pico for r in stored)  # exact
    (sums,) = backend.summarize(["day", "cache_hit"])
    assert sums.group == {"day": "2026-11-01", "cache_hit": False}
    assert sums.response_bytes == sum(r.response_bytes for r in stored)
    assert sums.cost_egress_pico == sum(r.cost_egress_pico for r in stored)
    assert sums.requests == 21 and sums.compute_ns == sum(r.compute_ns for r in stored)


def test_spend_sums_a_time_range_exactly(backend: SqlLedger) -> None:
    backend.write([make_record(index, feature="home_feed" if index % 2 else "search_box") for index in range(10)])
    spend = backend.spend("feature", T0, T0 + dt.timedelta(seconds=6))  # records 0..5
    assert spend["home_feed"] == sum(make_record(i).cost_total_pico for i in (1, 3, 5))
    assert backend.spend("tenant", T0, T0 + dt.timedelta(hours=1)) == {"acme": backend.total_cost_pico()}


def test_a_booking_takes_each_record_once_and_stores_its_charges(backend: SqlLedger) -> None:
    """Records before the window's end are booked into it (late ones flagged); a second booking
    of the same end is refused; fully-loaded spend = allocated + what no window booked yet."""
    backend.write([make_record(index, feature="home_feed", replica="r1") for index in range(4)])
    backend.publish_replica(ReplicaReading("r1", T0, T0 + dt.timedelta(seconds=2), 10**9, 0.5))
    backend.publish_replica(ReplicaReading("r1", T0, T0 + dt.timedelta(seconds=3), 2 * 10**9, 0.5))  # replaced
    assert [r.process_cpu_ns for r in backend.replicas()] == [2 * 10**9]
    backend.book(lambda cursor: cursor.store(opening(T0, BOOK, "r1", {}), [], []))
    end = T0 + dt.timedelta(seconds=2)

    def book(cursor):
        last = cursor.last_booking()
        usage = cursor.take_records(last.window_end, end)
        result = book_window(last.window_end, end, usage, BOOK, BookingState.from_json(last.state), triton={},
                             replicas=cursor.replicas(), booked_by="r1")  # fmt: skip
        cursor.store(result.booking, result.charges, result.allocated)
        return usage

    (usage,) = backend.book(book)
    assert (usage.requests, usage.late) == (2, False)  # records 0 and 1
    assert backend.booked_until() == end
    assert backend.unbooked() == (2, sum(make_record(i).cost_total_pico for i in (2, 3)))
    with pytest.raises(LedgerError, match="already booked"):
        backend.book(lambda cursor: cursor.store(opening(end, BOOK, "r2", {}), [], []))
    charges, allocated = backend.charges(), backend.allocated()
    assert sum(c.capacity_pico for c in charges) == sum(a.total_pico for a in allocated)
    # Storage, 60 GB x 0.08 $ = 4.8 $ a month (November: 2_592_000 s), for the 2 s from 12:00 on
    # the 1st: round(4.8e12 x 43_202 / 2_592_000) - 4.8e12 x 43_200 / 2_592_000 = 3_703_704 pico-$.
    (storage,) = [c for c in charges if c.resource == "storage"]
    assert storage.capacity_pico == 3_703_704
    assert {a.feature for a in allocated if a.resource == "storage"} == {"home_feed"}
    (by_day,) = backend.summarize_allocated(["day"])
    assert by_day.group == {"day": "2026-11-01"} and by_day.total_pico == sum(a.total_pico for a in allocated)
    loaded = backend.fully_loaded_spend("feature", T0, T0 + dt.timedelta(hours=1))
    assert loaded == {"home_feed": sum(a.total_pico for a in allocated) + backend.unbooked()[1]}


def test_outcomes_are_idempotent_and_join_their_requests(backend: SqlLedger) -> None:
    backend.write([make_record(0, feature="home_feed"), make_record(1, feature="search_box")])
    outcomes = [
        Outcome("o-1", "req-000000", T0, "click", 0, "USD"),
        Outcome("o-2", "req-000000", T0, "purchase", 25_500_000_000_000, "USD"),
        Outcome("o-3", "req-000001", T0, "purchase", 10_000_000_000_000, "USD"),
        Outcome("o-4", "req-unknown", T0, "purchase", 99_000_000_000_000, "USD"),  # no such request: not attributed
        Outcome("o-5", "req-000001", T0, "purchase", 7_000_000_000_000, "EUR"),  # another currency: not added to USD
    ]
    assert backend.write_outcomes(outcomes) == 5
    assert backend.write_outcomes([Outcome("o-2", "req-000000", T0, "purchase", 1, "USD")]) == 0  # a retry
    assert [o.outcome_id for o in backend.outcomes()] == ["o-1", "o-2", "o-3", "o-4", "o-5"]
    sums = {s.group["feature"]: s for s in backend.summarize_outcomes(["feature"])}
    assert (sums["home_feed"].clicks, sums["home_feed"].conversions, sums["home_feed"].revenue_pico) == (
        1, 1, 25_500_000_000_000,
    )  # fmt: skip
    assert (sums["search_box"].outcomes, sums["search_box"].conversions, sums["search_box"].revenue_pico) == (
        1, 1, 10_000_000_000_000,
    )  # fmt: skip


def test_an_older_sqlite_ledger_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    old_columns = [c for c in ("request_id", "timestamp", "rpc", "feature", "tenant", "model", "model_version", "pool",
                               "device", "cache_hit", "status", "compute_ns", "gateway_cpu_ns", "cache_ops",
                               "cost_total", "cost_compute", "cost_gateway", "cost_cache", "cost_avoided", "currency",
                               "price_book_version")]  # fmt: skip
    with sqlite3.connect(path) as conn:
        conn.execute(f"CREATE TABLE cost_records ({', '.join(old_columns)}, PRIMARY KEY (request_id))")
        conn.execute(
            f"INSERT INTO cost_records VALUES ({', '.join('?' * len(old_columns))})",
            ["req-old", "2026-11-01T12:00:00.000000Z", "Recommend", "home_feed", "acme", "recommender", "1",
             "cpu-local", "cpu", 0, "OK", 1000, 10, 2, 3e-8, 2e-8, 5e-9, 5e-9, 0.0, "USD", "2026.11.0"],
        )  # fmt: skip
        # Parts of 0.4 pico-$ each round to 0 one by one, their float total of 1.2 to 1.
        conn.execute(
            f"INSERT INTO cost_records VALUES ({', '.join('?' * len(old_columns))})",
            ["req-tiny", "2026-11-01T12:00:01.000000Z", "Recommend", "home_feed", "acme", "recommender", "1",
             "cpu-local", "cpu", 0, "OK", 1, 1, 1, 1.2e-12, 0.4e-12, 0.4e-12, 0.4e-12, 0.0, "USD", "2026.11.0"],
        )  # fmt: skip
    with SqliteLedger(path, create=False) as ledger:  # a report opening it is enough
        old, tiny = ledger.records()
        assert tiny.cost_total_pico == 0, "the total is the sum of the converted parts, so the record loads"
        assert (old.response_bytes, old.cost_egress_pico) == (0, 0)
        # Float money becomes integer pico-units, to the pico: 3e-8 $ = 30,000 pico-$.
        assert (old.cost_total_pico, old.cost_compute_pico, old.cost_gateway_pico) == (30_000, 20_000, 5_000)
        assert ledger.write([make_record(1, response_bytes=512, cost_egress=1e-9)]) == 1
        assert ledger.charges() == [] and ledger.outcomes() == [] and ledger.bookings() == []
    with sqlite3.connect(path) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(cost_records)")}
    assert "cost_total" not in columns and "cost_total_pico" in columns


def test_an_older_postgres_ledger_is_upgraded_in_place(postgres_url: str) -> None:
    ledger = new_postgres_ledger(postgres_url)
    try:
        ledger.write([make_record(0, cost_egress=2e-9)])
        # The float money of an older ledger: egress 2e-9 $, total 3.2e-8 $.
        for statement in (
            "ALTER TABLE cost_records ADD COLUMN cost_egress DOUBLE PRECISION NOT NULL DEFAULT 0",
            "UPDATE cost_records SET cost_egress = 2e-9",
            "ALTER TABLE cost_records DROP COLUMN cost_egress_pico",
            "DROP TABLE outcomes",
        ):
            ledger._run(lambda cursor, sql=statement: cursor.execute(sql))  # type: ignore[attr-defined]
        reopened = open_ledger(postgres_url, schema=ledger.schema, create=False)  # type: ignore[attr-defined]
        assert reopened.records()[0].cost_egress_pico == 2_000 and reopened.outcomes() == []
        reopened.close()
        reopened = open_ledger(postgres_url, schema=ledger.schema)  # type: ignore[attr-defined]
        reopened.close()
    finally:
        ledger.drop_schema()  # type: ignore[attr-defined]
        ledger.close()


def test_ledger_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absolute = tmp_path / "a" / "ledger.sqlite"
    assert sqlite_url(absolute) == f"sqlite:///{absolute}"
    with open_ledger(sqlite_url(absolute)) as ledger:
        assert isinstance(ledger, SqliteLedger) and ledger.path == absolute
    monkeypatch.chdir(tmp_path)
    with open_ledger("sqlite:///relative/ledger.sqlite") as ledger:
        assert ledger.path.resolve() == tmp_path / "relative" / "ledger.sqlite"
    with pytest.raises(LedgerError, match="unsupported ledger URL"):
        open_ledger("mysql://somewhere/db")
    with pytest.raises(LedgerError, match="no cost ledger"):
        open_ledger("sqlite:///absent.sqlite", create=False)
    if postgres_unavailable() is None:
        with pytest.raises(LedgerError, match="no cost ledger"):
            open_ledger(TEST_POSTGRES_URL, schema=f"tollgate_absent_{uuid.uuid4().hex[:8]}", create=False)
