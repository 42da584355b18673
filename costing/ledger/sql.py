"""The ledger's reads and writes, one implementation for every SQL backend.

``SqlLedger`` holds every query; a backend (``SqliteLedger``, ``PostgresLedger``) only opens
the connection, creates or upgrades the schema, and runs a unit of work in a transaction.
Every write is idempotent: a row whose key is already stored is skipped, never replaced.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, TypeVar

from costing.ledger.schema import (
    COST_ALLOCATIONS,
    COST_RECORDS,
    COST_WINDOWS,
    OUTCOMES,
    TABLES,
    Dialect,
    Table,
    migrations,
)
from costing.records import CONVERSION_KINDS, Allocation, CostRecord, Outcome, PoolWindow, as_utc

T = TypeVar("T")

# What a summary of cost records may group by.
GROUP_KEYS: tuple[str, ...] = (
    "feature",
    "tenant",
    "model",
    "model_version",
    "pool",
    "device",
    "rpc",
    "day",
    "cache_hit",
)
# What reconciled windows are allocated by, hence what fully-loaded cost can be grouped by.
ALLOCATION_KEYS: tuple[str, ...] = ("feature", "tenant", "model", "pool", "device", "day")

BudgetScope = Literal["feature", "tenant"]


class LedgerError(Exception):
    """The ledger is missing, unreachable, or is not a Tollgate cost ledger."""


@dataclass(frozen=True)
class GroupSums:
    """Sums over the cost records of one group (and one currency: amounts are never mixed)."""

    group: Mapping[str, str | bool]
    currency: str
    requests: int
    cache_hits: int
    errors: int
    compute_ns: int
    cost_total: float
    cost_compute: float
    cost_gateway: float
    cost_cache: float
    cost_avoided: float
    response_bytes: int = 0
    cost_egress: float = 0.0


@dataclass(frozen=True)
class AllocationSums:
    """Sums over the window allocations of one group, in pico-units of ``currency``."""

    group: Mapping[str, str]
    currency: str
    compute_ns: int
    direct_pico: int
    overhead_pico: int
    idle_pico: int
    storage_pico: int
    operations_pico: int


@dataclass(frozen=True)
class OutcomeSums:
    """Outcomes joined to the requests they followed, per group of those requests."""

    group: Mapping[str, str | bool]
    currency: str
    outcomes: int
    clicks: int
    conversions: int
    revenue: float


@dataclass(frozen=True)
class OwnerUsage:
    """What one owner (feature, tenant, model) used on one pool over a time range."""

    pool: str
    feature: str
    tenant: str
    model: str
    currency: str
    requests: int
    compute_ns: int
    cost_total: float  # direct cost


class SqlLedger:
    """Cost records, outcomes and reconciled windows in a SQL database (see the backends)."""

    dialect: Dialect
    description: str  # where the ledger is, for messages

    # --- backend hooks ----------------------------------------------------------------------

    def _run(self, work: Callable[[Any], T]) -> T:
        """Run ``work(cursor)`` in one transaction (committed when it returns)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _columns(self, table: str) -> set[str]:
        """The column names of ``table`` (empty when it does not exist)."""
        raise NotImplementedError

    def _create_or_upgrade_schema(self, execute: Callable[[str], object]) -> None:
        """Add the columns an older ledger lacks, then create what is missing; ``execute`` runs
        one statement inside the caller's transaction. Raises LedgerError for a database whose
        tables are not a ledger's."""
        for table in TABLES:
            existing = self._columns(table.name)
            if not existing:
                continue
            try:
                missing = migrations(table, existing)
            except ValueError as exc:
                raise LedgerError(f"{self.description} is not a cost ledger ({exc})") from None
            for column in missing:
                execute(self.dialect.add_column(table, column))
        for statement in schema_statements(self.dialect):
            execute(statement)

    # --- writes -----------------------------------------------------------------------------

    def write(self, records: Sequence[CostRecord]) -> int:
        """Insert ``records`` in one transaction; a request id already present is skipped.
        Returns the number of rows actually inserted."""
        return self._insert(COST_RECORDS, records)

    def write_outcomes(self, outcomes: Sequence[Outcome]) -> int:
        """Insert ``outcomes``; an outcome id already present is skipped. Returns rows inserted."""
        return self._insert(OUTCOMES, outcomes)

    def write_windows(self, windows: Sequence[PoolWindow], allocations: Sequence[Allocation]) -> int:
        """Store reconciled windows with their allocations, in one transaction. A (window, pool)
        already stored, e.g. by another gateway replica, is kept with its own allocations and
        the new one skipped. Returns the number of windows stored."""
        by_key: dict[tuple[dt.datetime, str], list[Allocation]] = {}
        for allocation in allocations:
            by_key.setdefault((allocation.window_start, allocation.pool), []).append(allocation)
        window_sql = self.dialect.insert_ignore(COST_WINDOWS)
        allocation_sql = self.dialect.insert_ignore(COST_ALLOCATIONS)

        def work(cursor: Any) -> int:
            stored = 0
            for window in windows:
                cursor.execute(window_sql, self.dialect.to_row(COST_WINDOWS, window))
                if cursor.rowcount != 1:
                    continue
                stored += 1
                members = by_key.get((window.window_start, window.pool), [])
                if members:
                    cursor.executemany(allocation_sql, [self.dialect.to_row(COST_ALLOCATIONS, a) for a in members])
            return stored

        return self._run(work)

    def _insert(self, table: Table, items: Sequence[object]) -> int:
        if not items:
            return 0
        sql = self.dialect.insert_ignore(table)
        # In key order: two writers inserting overlapping keys then wait for each other, never deadlock.
        ordered = sorted(items, key=lambda item: tuple(getattr(item, column) for column in table.key))
        rows = [self.dialect.to_row(table, item) for item in ordered]

        def work(cursor: Any) -> int:
            cursor.executemany(sql, rows)
            return cursor.rowcount

        return self._run(work)

    # --- reads ------------------------------------------------------------------------------

    def count(self) -> int:
        return self._fetch(f"SELECT COUNT(*) FROM {COST_RECORDS.name}")[0][0]

    def total_cost(self) -> float:
        """Sum of cost_total over all records (the ledger holds one currency per price book)."""
        return float(self._fetch(f"SELECT COALESCE(SUM(cost_total), 0) FROM {COST_RECORDS.name}")[0][0])

    def records(
        self, since: dt.datetime | dt.date | None = None, until: dt.datetime | dt.date | None = None
    ) -> list[CostRecord]:
        """Records with ``since <= timestamp < until``, oldest first."""
        return self._select(COST_RECORDS, "timestamp", since, until, order="timestamp, request_id")

    def outcomes(self) -> list[Outcome]:
        """Every outcome, oldest first."""
        return self._select(OUTCOMES, "timestamp", None, None, order="timestamp, outcome_id")

    def windows(
        self, since: dt.datetime | dt.date | None = None, until: dt.datetime | dt.date | None = None
    ) -> list[PoolWindow]:
        """Reconciled windows starting in [since, until), by start then pool."""
        return self._select(COST_WINDOWS, "window_start", since, until, order="window_start, pool")

    def allocations(
        self, since: dt.datetime | dt.date | None = None, until: dt.datetime | dt.date | None = None
    ) -> list[Allocation]:
        """Allocations of the windows starting in [since, until)."""
        order = "window_start, pool, feature, tenant, model"
        return self._select(COST_ALLOCATIONS, "window_start", since, until, order=order)

    def summarize(
        self,
        group_by: Sequence[str],
        since: dt.datetime | dt.date | None = None,
        until: dt.datetime | dt.date | None = None,
        tenant: str | None = None,
    ) -> list[GroupSums]:
        """Sums per group of ``group_by`` keys (see GROUP_KEYS) and currency, ordered by group."""
        keys = self._record_keys(group_by, GROUP_KEYS)
        grouping = ", ".join([*keys, "r.currency"])
        where, params = self._time_filter("r.timestamp", since, until, tenant, "r.tenant")
        rows = self._fetch(
            f"""
            SELECT {grouping}, COUNT(*), SUM(CASE WHEN r.cache_hit THEN 1 ELSE 0 END),
                   SUM(CASE WHEN r.status <> 'OK' THEN 1 ELSE 0 END), SUM(r.compute_ns),
                   SUM(r.cost_total), SUM(r.cost_compute), SUM(r.cost_gateway), SUM(r.cost_cache),
                   SUM(r.cost_avoided), SUM(r.response_bytes), SUM(r.cost_egress)
            FROM {COST_RECORDS.name} r {where} GROUP BY {grouping} ORDER BY {grouping}
            """,
            params,
        )
        width = len(keys)
        return [
            GroupSums(
                group=_group_values(group_by, row),
                currency=row[width],
                requests=int(row[width + 1]),
                cache_hits=int(row[width + 2]),
                errors=int(row[width + 3]),
                compute_ns=int(row[width + 4]),
                cost_total=float(row[width + 5]),
                cost_compute=float(row[width + 6]),
                cost_gateway=float(row[width + 7]),
                cost_cache=float(row[width + 8]),
                cost_avoided=float(row[width + 9]),
                response_bytes=int(row[width + 10]),
                cost_egress=float(row[width + 11]),
            )
            for row in rows
        ]

    def summarize_allocations(
        self,
        group_by: Sequence[str],
        since: dt.datetime | dt.date | None = None,
        until: dt.datetime | dt.date | None = None,
        tenant: str | None = None,
    ) -> list[AllocationSums]:
        """Allocated window amounts per group of ``group_by`` (ALLOCATION_KEYS; ``day`` is the
        window's start day) and currency, for windows starting in [since, until)."""
        unknown = [key for key in group_by if key not in ALLOCATION_KEYS]
        if unknown:
            raise ValueError(f"cannot allocate by {', '.join(unknown)}; allowed: {', '.join(ALLOCATION_KEYS)}")
        keys = [self.dialect.day_of("a.window_start") if key == "day" else f"a.{key}" for key in group_by]
        grouping = ", ".join([*keys, "a.currency"])
        where, params = self._time_filter("a.window_start", since, until, tenant, "a.tenant")
        rows = self._fetch(
            f"""
            SELECT {grouping}, SUM(a.compute_ns), SUM(a.direct_pico), SUM(a.overhead_pico), SUM(a.idle_pico),
                   SUM(a.storage_pico), SUM(a.operations_pico)
            FROM {COST_ALLOCATIONS.name} a {where} GROUP BY {grouping} ORDER BY {grouping}
            """,
            params,
        )
        width = len(keys)
        return [
            AllocationSums(
                group=dict(zip(group_by, row)),
                currency=row[width],
                compute_ns=int(row[width + 1]),
                direct_pico=int(row[width + 2]),
                overhead_pico=int(row[width + 3]),
                idle_pico=int(row[width + 4]),
                storage_pico=int(row[width + 5]),
                operations_pico=int(row[width + 6]),
            )
            for row in rows
        ]

    def summarize_outcomes(
        self,
        group_by: Sequence[str],
        since: dt.datetime | dt.date | None = None,
        until: dt.datetime | dt.date | None = None,
        tenant: str | None = None,
    ) -> list[OutcomeSums]:
        """Outcomes per group of the requests they followed (joined by request id, in the
        request's currency), for requests made in [since, until)."""
        keys = self._record_keys(group_by, GROUP_KEYS)
        grouping = ", ".join([*keys, "r.currency"])
        where, params = self._time_filter("r.timestamp", since, until, tenant, "r.tenant")
        conversions = ", ".join(f"'{kind}'" for kind in sorted(CONVERSION_KINDS))
        rows = self._fetch(
            f"""
            SELECT {grouping}, COUNT(*), SUM(CASE WHEN o.kind = 'click' THEN 1 ELSE 0 END),
                   SUM(CASE WHEN o.kind IN ({conversions}) THEN 1 ELSE 0 END), SUM(o.revenue)
            FROM {OUTCOMES.name} o
            JOIN {COST_RECORDS.name} r ON r.request_id = o.request_id AND r.currency = o.currency
            {where} GROUP BY {grouping} ORDER BY {grouping}
            """,
            params,
        )
        width = len(keys)
        return [
            OutcomeSums(
                group=_group_values(group_by, row),
                currency=row[width],
                outcomes=int(row[width + 1]),
                clicks=int(row[width + 2]),
                conversions=int(row[width + 3]),
                revenue=float(row[width + 4]),
            )
            for row in rows
        ]

    def request_tenant(self, request_id: str) -> str | None:
        """The tenant of a recorded request, or None when the ledger has no such request."""
        rows = self._fetch(f"SELECT tenant FROM {COST_RECORDS.name} WHERE request_id = ?", (request_id,))
        return rows[0][0] if rows else None

    def owner_usage(self, since: dt.datetime, until: dt.datetime) -> list[OwnerUsage]:
        """What each (pool, feature, tenant, model) used in [since, until): the input of a
        reconciliation window."""
        where, params = self._time_filter("timestamp", since, until)
        rows = self._fetch(
            f"""
            SELECT pool, feature, tenant, model, currency, COUNT(*), SUM(compute_ns), SUM(cost_total)
            FROM {COST_RECORDS.name} {where}
            GROUP BY pool, feature, tenant, model, currency ORDER BY pool, feature, tenant, model, currency
            """,
            params,
        )
        return [
            OwnerUsage(row[0], row[1], row[2], row[3], row[4], int(row[5]), int(row[6]), float(row[7])) for row in rows
        ]

    def spend(self, scope: BudgetScope, since: dt.datetime, until: dt.datetime) -> dict[str, float]:
        """Direct cost per feature or per tenant over [since, until) (budgets)."""
        if scope not in ("feature", "tenant"):
            raise ValueError(f"scope must be feature or tenant, got {scope!r}")
        where, params = self._time_filter("timestamp", since, until)
        rows = self._fetch(f"SELECT {scope}, SUM(cost_total) FROM {COST_RECORDS.name} {where} GROUP BY {scope}", params)
        return {row[0]: float(row[1]) for row in rows}

    # --- helpers ----------------------------------------------------------------------------

    def _fetch(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        text = self.dialect.sql(sql)

        def work(cursor: Any) -> list[tuple[Any, ...]]:
            cursor.execute(text, params)
            return cursor.fetchall()

        return self._run(work)

    def _select(
        self,
        table: Table,
        time_column: str,
        since: dt.datetime | dt.date | None,
        until: dt.datetime | dt.date | None,
        order: str,
    ) -> list[Any]:
        where, params = self._time_filter(time_column, since, until)
        rows = self._fetch(f"SELECT {', '.join(table.column_names)} FROM {table.name} {where} ORDER BY {order}", params)
        return [self.dialect.from_row(table, row) for row in rows]

    def _record_keys(self, group_by: Sequence[str], allowed: Sequence[str]) -> list[str]:
        unknown = [key for key in group_by if key not in allowed]
        if unknown:
            raise ValueError(f"cannot group by {', '.join(unknown)}; allowed: {', '.join(allowed)}")
        return [self.dialect.day_of("r.timestamp") if key == "day" else f"r.{key}" for key in group_by]

    def _time_filter(
        self,
        column: str,
        since: dt.datetime | dt.date | None,
        until: dt.datetime | dt.date | None,
        tenant: str | None = None,
        tenant_column: str = "tenant",
    ) -> tuple[str, list[object]]:
        """WHERE clause for ``since <= column < until`` (either bound optional), and for one
        tenant's rows only when ``tenant`` is given (a tenant's finance sees its own costs)."""
        if since is not None and until is not None and as_utc(since) >= as_utc(until):
            raise ValueError(f"empty time range: since {since} is not before until {until}")
        conditions, params = [], []
        if since is not None:
            conditions.append(f"{column} >= ?")
            params.append(self.dialect.timestamp_param(as_utc(since)))
        if until is not None:
            conditions.append(f"{column} < ?")
            params.append(self.dialect.timestamp_param(as_utc(until)))
        if tenant is not None:
            conditions.append(f"{tenant_column} = ?")
            params.append(tenant)
        return ("WHERE " + " AND ".join(conditions) if conditions else ""), params

    def __enter__(self) -> SqlLedger:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _group_values(group_by: Sequence[str], row: Sequence[Any]) -> dict[str, str | bool]:
    return {key: bool(value) if key == "cache_hit" else value for key, value in zip(group_by, row)}


def schema_statements(dialect: Dialect) -> list[str]:
    return [statement for table in TABLES for statement in dialect.create_table(table)]
