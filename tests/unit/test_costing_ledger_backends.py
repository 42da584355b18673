"""The same ledger semantics on SQLite and PostgreSQL: records, outcomes, reconciled windows,
summaries, idempotency and the upgrade of an older ledger.

PostgreSQL tests run in a schema of their own (unique suffix) and drop only that schema.
"""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_costing_ledger import T0, make_record

from costing.ledger import LedgerError, SqlLedger, open_ledger, sqlite_url
from costing.ledger import SqliteLedger
from costing.records import Allocation, Outcome, PoolWindow
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


def window(start: dt.datetime, pool: str, *, direct: int = 40, overhead: int = 10, idle: int = 70) -> PoolWindow:
    return PoolWindow(
        window_start=start, window_end=start + dt.timedelta(minutes=1), pool=pool, currency="USD",
        price_book_version="test-1", provisioned_units=2.0, provisioned_pico=direct + overhead + idle,
        capacity_pico=direct + overhead + idle, direct_pico=direct, overhead_pico=overhead, idle_pico=idle,
        storage_pico=0, operations_pico=0, requests=3, attributed_compute_ns=40, triton_compute_ns=50,
        triton_infer_ns=45, triton_executions=2, attributed_vs_triton_difference=-5 / 45,
    )  # fmt: skip


def allocation(start: dt.datetime, pool: str, feature: str, direct: int, overhead: int, idle: int) -> Allocation:
    return Allocation(start, pool, feature, "acme", "recommender", "cpu", "USD", direct, direct, overhead, idle, 0, 0)


def test_records_round_trip_with_egress_and_are_idempotent(backend: SqlLedger) -> None:
    records = [make_record(index, response_bytes=1000 * index, cost_egress=1e-9 * index) for index in range(20)]
    assert backend.write(records) == 20
    assert backend.write(records[:5] + [make_record(20)]) == 1
    stored = backend.records()
    assert stored[:20] == records and len(stored) == 21
    assert backend.count() == 21
    assert backend.total_cost() == pytest.approx(math.fsum(r.cost_total for r in stored), rel=1e-12)
    (sums,) = backend.summarize(["day", "cache_hit"])
    assert sums.group == {"day": "2026-11-01", "cache_hit": False}
    assert sums.response_bytes == sum(r.response_bytes for r in stored)
    assert sums.cost_egress == pytest.approx(math.fsum(r.cost_egress for r in stored))
    assert sums.requests == 21 and sums.compute_ns == sum(r.compute_ns for r in stored)


def test_owner_usage_and_spend_sum_a_time_range(backend: SqlLedger) -> None:
    backend.write([make_record(index, feature="home_feed" if index % 2 else "search_box") for index in range(10)])
    usage = backend.owner_usage(T0, T0 + dt.timedelta(seconds=6))  # records 0..5
    assert {(u.feature, u.requests) for u in usage} == {("home_feed", 3), ("search_box", 3)}
    assert sum(u.compute_ns for u in usage) == sum(1_000_000 * (i + 1) for i in range(6))
    spend = backend.spend("feature", T0, T0 + dt.timedelta(seconds=6))
    assert spend["home_feed"] == pytest.approx(math.fsum(make_record(i).cost_total for i in (1, 3, 5)))
    assert backend.spend("tenant", T0, T0 + dt.timedelta(hours=1)) == {"acme": pytest.approx(backend.total_cost())}


def test_outcomes_are_idempotent_and_join_their_requests(backend: SqlLedger) -> None:
    backend.write([make_record(0, feature="home_feed"), make_record(1, feature="search_box")])
    outcomes = [
        Outcome("o-1", "req-000000", T0, "click", 0.0, "USD"),
        Outcome("o-2", "req-000000", T0, "purchase", 25.5, "USD"),
        Outcome("o-3", "req-000001", T0, "purchase", 10.0, "USD"),
        Outcome("o-4", "req-unknown", T0, "purchase", 99.0, "USD"),  # no such request: not attributed
        Outcome("o-5", "req-000001", T0, "purchase", 7.0, "EUR"),  # another currency: not added to USD
    ]
    assert backend.write_outcomes(outcomes) == 5
    assert backend.write_outcomes([Outcome("o-2", "req-000000", T0, "purchase", 1e6, "USD")]) == 0  # a retry
    assert [o.outcome_id for o in backend.outcomes()] == ["o-1", "o-2", "o-3", "o-4", "o-5"]
    sums = {s.group["feature"]: s for s in backend.summarize_outcomes(["feature"])}
    assert (sums["home_feed"].clicks, sums["home_feed"].conversions, sums["home_feed"].revenue) == (1, 1, 25.5)
    assert (sums["search_box"].outcomes, sums["search_box"].conversions, sums["search_box"].revenue) == (1, 1, 10.0)


def test_windows_are_stored_once_with_their_allocations(backend: SqlLedger) -> None:
    start = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
    first = [
        allocation(start, "cpu-local", "home_feed", 30, 7, 53),
        allocation(start, "cpu-local", "search_box", 10, 3, 17),
    ]
    assert backend.write_windows([window(start, "cpu-local")], first) == 1
    # Another replica's copy of the same window: skipped whole, allocations included.
    other = [allocation(start, "cpu-local", "home_feed", 40, 10, 70)]
    assert (
        backend.write_windows([window(start, "cpu-local"), window(start + dt.timedelta(minutes=1), "cpu-local")], other)
        == 1
    )
    assert backend.windows() == [window(start, "cpu-local"), window(start + dt.timedelta(minutes=1), "cpu-local")]
    assert backend.allocations() == first
    (by_day,) = backend.summarize_allocations(["day"])
    assert by_day.group == {"day": "2026-11-23"}
    assert (by_day.direct_pico, by_day.overhead_pico, by_day.idle_pico) == (40, 10, 70)
    assert [s.group["feature"] for s in backend.summarize_allocations(["feature", "pool", "device"])] == [
        "home_feed",
        "search_box",
    ]
    assert backend.windows(since=start + dt.timedelta(seconds=1)) == [
        window(start + dt.timedelta(minutes=1), "cpu-local")
    ]


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
    with SqliteLedger(path, create=False) as ledger:  # a report opening it is enough
        (old,) = ledger.records()
        assert (old.response_bytes, old.cost_egress) == (0, 0.0)
        assert ledger.write([make_record(1, response_bytes=512, cost_egress=1e-9)]) == 1
        assert ledger.windows() == [] and ledger.outcomes() == []


def test_an_older_postgres_ledger_is_upgraded_in_place(postgres_url: str) -> None:
    ledger = new_postgres_ledger(postgres_url)
    try:
        ledger._run(lambda cursor: cursor.execute("ALTER TABLE cost_records DROP COLUMN cost_egress"))  # type: ignore[attr-defined]
        ledger._run(lambda cursor: cursor.execute("DROP TABLE outcomes"))  # type: ignore[attr-defined]
        reopened = open_ledger(postgres_url, schema=ledger.schema, create=False)  # type: ignore[attr-defined]
        assert reopened.write([make_record(0, cost_egress=2e-9)]) == 1
        assert reopened.records()[0].cost_egress == 2e-9 and reopened.outcomes() == []
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
