"""The ledger's reads and writes, one implementation for every SQL backend.

``SqlLedger`` holds every query; a backend (``SqliteLedger``, ``PostgresLedger``) only opens
the connection, creates or upgrades the schema, and runs a unit of work in a transaction
(``_run``) or in a transaction that excludes every other booker (``_run_exclusive``). Every
write of records and outcomes is idempotent: a row whose key is already stored is skipped.
Money is integer pico-units everywhere (``costing.money``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, TypeVar

from costing.ledger.schema import (
    ALLOCATED_CHARGES,
    COST_BOOKINGS,
    COST_RECORDS,
    ORIGIN_CHARGES,
    OUTCOMES,
    REPLICAS,
    TABLES,
    Dialect,
    Table,
    migrations,
)
from costing.money import from_pico
from costing.records import (
    CONVERSION_KINDS,
    AllocatedCharge,
    Booking,
    CostRecord,
    OriginCharge,
    Outcome,
    ReplicaReading,
    as_utc,
)

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
    "traffic",
)
# What allocated charges carry, hence what fully-loaded cost can be grouped by.
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
    cost_total_pico: int
    cost_compute_pico: int
    cost_gateway_pico: int
    cost_cache_pico: int
    cost_avoided_pico: int
    response_bytes: int = 0
    cost_egress_pico: int = 0
    cost_avoided_non_cash_pico: int = 0

    cost_total = property(lambda self: from_pico(self.cost_total_pico))
    cost_egress = property(lambda self: from_pico(self.cost_egress_pico))


@dataclass(frozen=True)
class AllocationSums:
    """Allocated charges of one group, in pico-units of ``currency``, by part."""

    group: Mapping[str, str]
    currency: str
    compute_pico: int  # direct, per kind of resource
    gateway_pico: int
    cache_pico: int
    egress_pico: int
    overhead_pico: int  # of compute, gateway and cache charges
    idle_pico: int
    storage_pico: int
    operations_pico: int
    late_pico: int  # of the direct amounts: records booked after their own window

    @property
    def direct_pico(self) -> int:
        return self.compute_pico + self.gateway_pico + self.cache_pico + self.egress_pico

    @property
    def total_pico(self) -> int:
        return self.direct_pico + self.overhead_pico + self.idle_pico + self.storage_pico + self.operations_pico


@dataclass(frozen=True)
class OutcomeSums:
    """Outcomes joined to the requests they followed, per group of those requests."""

    group: Mapping[str, str | bool]
    currency: str
    outcomes: int
    clicks: int
    conversions: int
    revenue_pico: int


@dataclass(frozen=True)
class BookedUsage:
    """What one owner used in one window on one pool and replica, from the records the window
    booked (``late``: records written after their own window was booked)."""

    feature: str
    tenant: str
    model: str
    pool: str
    replica: str
    egress_path: str
    late: bool
    unknown_compute: bool  # failed calls that reached a pool without a known COMPUTE_NS
    requests: int
    measured_requests: int  # requests with COMPUTE_NS > 0
    compute_ns: int
    compute_pico: int
    gateway_cpu_ns: int
    gateway_pico: int
    cache_ops: int
    cache_pico: int
    response_bytes: int
    egress_pico: int

    @property
    def owner(self) -> tuple[str, str, str]:
        return (self.feature, self.tenant, self.model)

    @property
    def direct_pico(self) -> int:
        return self.compute_pico + self.gateway_pico + self.cache_pico + self.egress_pico


class BookingCursor:
    """The ledger as one booking transaction sees it (``SqlLedger.book``): nobody else books
    until it ends."""

    def __init__(self, ledger: SqlLedger, cursor: Any) -> None:
        self._ledger = ledger
        self._cursor = cursor

    def last_booking(self) -> Booking | None:
        d = self._ledger.dialect
        names = ", ".join(COST_BOOKINGS.column_names)
        self._cursor.execute(d.sql(f"SELECT {names} FROM {COST_BOOKINGS.name} ORDER BY window_end DESC LIMIT 1"))
        row = self._cursor.fetchone()
        return d.from_row(COST_BOOKINGS, row) if row else None

    def replicas(self) -> list[ReplicaReading]:
        d = self._ledger.dialect
        self._cursor.execute(d.sql(f"SELECT {', '.join(REPLICAS.column_names)} FROM {REPLICAS.name} ORDER BY replica"))
        return [d.from_row(REPLICAS, row) for row in self._cursor.fetchall()]

    def take_records(self, start: dt.datetime, end: dt.datetime) -> list[BookedUsage]:
        """Book every record not booked yet whose time is before ``end`` into the window ending
        at ``end``, and return what they used, per owner, pool, replica and path."""
        d = self._ledger.dialect
        table = COST_RECORDS.name
        end_param, start_param = d.timestamp_param(end), d.timestamp_param(start)
        self._cursor.execute(
            d.sql(f"UPDATE {table} SET booked_in = ? WHERE booked_in IS NULL AND timestamp < ?"), (end_param, end_param)
        )
        true = d.bool_param(True)
        self._cursor.execute(
            d.sql(
                f"""
                SELECT feature, tenant, model, pool, replica, egress_path,
                       CASE WHEN timestamp < ? THEN 1 ELSE 0 END AS late,
                       CASE WHEN status <> 'OK' AND compute_ns = 0 AND cache_hit <> ? AND pool <> '' THEN 1 ELSE 0 END
                         AS unknown,
                       COUNT(*), SUM(CASE WHEN compute_ns > 0 THEN 1 ELSE 0 END), SUM(compute_ns),
                       SUM(cost_compute_pico), SUM(gateway_cpu_ns), SUM(cost_gateway_pico), SUM(cache_ops),
                       SUM(cost_cache_pico), SUM(response_bytes), SUM(cost_egress_pico)
                FROM {table} WHERE booked_in = ?
                GROUP BY feature, tenant, model, pool, replica, egress_path, late, unknown
                ORDER BY feature, tenant, model, pool, replica, egress_path, late, unknown
                """
            ),
            (start_param, true, end_param),
        )
        return [
            BookedUsage(
                row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6]), bool(row[7]),
                *(int(value) for value in row[8:]),
            )  # fmt: skip
            for row in self._cursor.fetchall()
        ]

    def store(self, booking: Booking, charges: Sequence[OriginCharge], allocated: Sequence[AllocatedCharge]) -> None:
        d = self._ledger.dialect
        self._cursor.execute(d.insert_ignore(COST_BOOKINGS), d.to_row(COST_BOOKINGS, booking))
        if self._cursor.rowcount != 1:
            raise LedgerError(f"a window ending {booking.window_end} is already booked")
        if booking.kind == "opening":  # records from before bookings began (an older ledger) open nothing
            end = d.timestamp_param(booking.window_end)
            self._cursor.execute(
                d.sql(f"UPDATE {COST_RECORDS.name} SET booked_in = ? WHERE booked_in IS NULL AND timestamp < ?"),
                (end, end),
            )
        if charges:
            self._cursor.executemany(d.insert_ignore(ORIGIN_CHARGES), [d.to_row(ORIGIN_CHARGES, c) for c in charges])
        if allocated:
            self._cursor.executemany(
                d.insert_ignore(ALLOCATED_CHARGES), [d.to_row(ALLOCATED_CHARGES, a) for a in allocated]
            )


class SqlLedger:
    """Cost records, outcomes, bookings and charges in a SQL database (see the backends)."""

    dialect: Dialect
    description: str  # where the ledger is, for messages

    # --- backend hooks ----------------------------------------------------------------------

    def _run(self, work: Callable[[Any], T]) -> T:
        """Run ``work(cursor)`` in one transaction (committed when it returns)."""
        raise NotImplementedError

    def _run_exclusive(self, work: Callable[[Any], T]) -> T:
        """Like ``_run``, but no other connection books (or writes, on SQLite) until it ends."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _columns(self, table: str) -> set[str]:
        """The column names of ``table`` (empty when it does not exist)."""
        raise NotImplementedError

    def _create_or_upgrade_schema(self, execute: Callable[[str], object]) -> None:
        """Add the columns an older ledger lacks (its float money converted to integer pico),
        then create what is missing; ``execute`` runs one statement inside the caller's
        transaction. Raises LedgerError for a database whose tables are not a ledger's."""
        converted_records = False
        for table in TABLES:
            existing = self._columns(table.name)
            if not existing:
                continue
            try:
                missing = migrations(table, existing)
            except ValueError as exc:
                raise LedgerError(f"{self.description} is not a cost ledger ({exc})") from None
            legacy = self.dialect.legacy_money_statements(table, existing)
            for statement in legacy:
                execute(statement)
            converted_records |= bool(legacy) and table is COST_RECORDS
            converted = {new for old, new in table.legacy_money if old in existing}
            for column in missing:
                if column.name not in converted:
                    execute(self.dialect.add_column(table, column))
        if converted_records:
            # Each float part was rounded on its own: the total is their sum, as for new records.
            execute(
                f"UPDATE {COST_RECORDS.name} SET cost_total_pico = "
                "cost_compute_pico + cost_gateway_pico + cost_cache_pico + cost_egress_pico"
            )
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

    def publish_replica(self, reading: ReplicaReading) -> None:
        """Store (replace) a gateway replica's latest process CPU reading."""
        sql = self.dialect.upsert(REPLICAS)
        row = self.dialect.to_row(REPLICAS, reading)
        self._run(lambda cursor: cursor.execute(sql, row))

    def book(self, work: Callable[[BookingCursor], T]) -> T:
        """Run ``work`` as the only booker of the ledger (see ``costing.reconciliation.booker``)."""
        return self._run_exclusive(lambda cursor: work(BookingCursor(self, cursor)))

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

    def total_cost_pico(self) -> int:
        """Sum of the direct cost of all records (the ledger holds one currency per price book)."""
        return int(self._fetch(f"SELECT COALESCE(SUM(cost_total_pico), 0) FROM {COST_RECORDS.name}")[0][0])

    def total_cost(self) -> float:
        """``total_cost_pico`` as a float, for display."""
        return from_pico(self.total_cost_pico())

    def records(
        self, since: dt.datetime | dt.date | None = None, until: dt.datetime | dt.date | None = None
    ) -> list[CostRecord]:
        """Records with ``since <= timestamp < until``, oldest first."""
        return self._select(COST_RECORDS, "timestamp", since, until, order="timestamp, request_id")

    def outcomes(self) -> list[Outcome]:
        """Every outcome, oldest first."""
        return self._select(OUTCOMES, "timestamp", None, None, order="timestamp, outcome_id")

    def bookings(
        self, since: dt.datetime | dt.date | None = None, until: dt.datetime | dt.date | None = None
    ) -> list[Booking]:
        """Bookings (windows and openings) starting in [since, until), in order."""
        return self._select(COST_BOOKINGS, "window_start", since, until, order="window_end")

    def charges(
        self, since: dt.datetime | dt.date | None = None, until: dt.datetime | dt.date | None = None
    ) -> list[OriginCharge]:
        """Origin charges of the windows starting in [since, until), by start then resource."""
        return self._select(ORIGIN_CHARGES, "window_start", since, until, order="window_start, resource")

    def allocated(
        self, since: dt.datetime | dt.date | None = None, until: dt.datetime | dt.date | None = None
    ) -> list[AllocatedCharge]:
        """Allocated charges of the windows starting in [since, until)."""
        order = "window_start, resource, feature, tenant, model, late"
        return self._select(ALLOCATED_CHARGES, "window_start", since, until, order=order)

    def replicas(self) -> list[ReplicaReading]:
        return self._select(REPLICAS, "seen_at", None, None, order="replica")

    def booked_until(self) -> dt.datetime | None:
        """End of the last booked window (None: nothing booked yet)."""
        rows = self._fetch(f"SELECT MAX(window_end) FROM {COST_BOOKINGS.name}")
        value = rows[0][0] if rows else None
        return None if value is None else self.dialect.timestamp_value(value)

    def unbooked(self) -> tuple[int, int]:
        """Records not booked into any window yet: (count, direct pico)."""
        rows = self._fetch(
            f"SELECT COUNT(*), COALESCE(SUM(cost_total_pico), 0) FROM {COST_RECORDS.name} WHERE booked_in IS NULL"
        )
        return int(rows[0][0]), int(rows[0][1])

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
        false = self.dialect.bool_param(False)
        rows = self._fetch(
            f"""
            SELECT {grouping}, COUNT(*), SUM(CASE WHEN r.cache_hit THEN 1 ELSE 0 END),
                   SUM(CASE WHEN r.status <> 'OK' THEN 1 ELSE 0 END), SUM(r.compute_ns),
                   SUM(r.cost_total_pico), SUM(r.cost_compute_pico), SUM(r.cost_gateway_pico),
                   SUM(r.cost_cache_pico), SUM(r.cost_avoided_pico), SUM(r.response_bytes), SUM(r.cost_egress_pico),
                   SUM(CASE WHEN r.avoided_is_cash = ? THEN r.cost_avoided_pico ELSE 0 END)
            FROM {COST_RECORDS.name} r {where} GROUP BY {grouping} ORDER BY {grouping}
            """,
            [false, *params],
        )
        width = len(keys)
        return [
            GroupSums(
                _group_values(group_by, row), row[width],
                *(int(value) for value in row[width + 1 : width + 13]),
            )  # fmt: skip
            for row in rows
        ]

    def summarize_allocated(
        self,
        group_by: Sequence[str],
        since: dt.datetime | dt.date | None = None,
        until: dt.datetime | dt.date | None = None,
        tenant: str | None = None,
    ) -> list[AllocationSums]:
        """Allocated charges per group of ``group_by`` (ALLOCATION_KEYS; ``day`` is the window's
        start day) and currency, for windows starting in [since, until)."""
        unknown = [key for key in group_by if key not in ALLOCATION_KEYS]
        if unknown:
            raise ValueError(f"cannot allocate by {', '.join(unknown)}; allowed: {', '.join(ALLOCATION_KEYS)}")
        keys = [self.dialect.day_of("a.window_start") if key == "day" else f"a.{key}" for key in group_by]
        grouping = ", ".join([*keys, "a.currency"])
        where, params = self._time_filter("a.window_start", since, until, tenant, "a.tenant")
        true = self.dialect.bool_param(True)

        def direct_of(kind: str) -> str:
            return f"SUM(CASE WHEN a.kind = '{kind}' THEN a.direct_pico ELSE 0 END)"

        def total_of(kind: str) -> str:
            return f"SUM(CASE WHEN a.kind = '{kind}' THEN a.direct_pico + a.overhead_pico + a.idle_pico ELSE 0 END)"

        fixed = "a.kind IN ('storage', 'operations')"
        rows = self._fetch(
            f"""
            SELECT {grouping}, {direct_of("compute")}, {direct_of("gateway")}, {direct_of("cache")}, {direct_of("egress")},
                   SUM(CASE WHEN {fixed} THEN 0 ELSE a.overhead_pico END),
                   SUM(CASE WHEN {fixed} THEN 0 ELSE a.idle_pico END),
                   {total_of("storage")}, {total_of("operations")},
                   SUM(CASE WHEN a.late = ? THEN a.direct_pico ELSE 0 END)
            FROM {ALLOCATED_CHARGES.name} a {where} GROUP BY {grouping} ORDER BY {grouping}
            """,
            [true, *params],
        )
        width = len(keys)
        return [
            AllocationSums(dict(zip(group_by, row)), row[width], *(int(value) for value in row[width + 1 :]))
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
                   SUM(CASE WHEN o.kind IN ({conversions}) THEN 1 ELSE 0 END), SUM(o.revenue_pico)
            FROM {OUTCOMES.name} o
            JOIN {COST_RECORDS.name} r ON r.request_id = o.request_id AND r.currency = o.currency
            {where} GROUP BY {grouping} ORDER BY {grouping}
            """,
            params,
        )
        width = len(keys)
        return [
            OutcomeSums(_group_values(group_by, row), row[width], *(int(value) for value in row[width + 1 :]))
            for row in rows
        ]

    def request_tenant(self, request_id: str) -> str | None:
        """The tenant of a recorded request, or None when the ledger has no such request."""
        rows = self._fetch(f"SELECT tenant FROM {COST_RECORDS.name} WHERE request_id = ?", (request_id,))
        return rows[0][0] if rows else None

    def spend(self, scope: BudgetScope, since: dt.datetime, until: dt.datetime) -> dict[str, int]:
        """Direct cost (pico) per feature or per tenant of the records in [since, until) (budgets)."""
        _check_scope(scope)
        where, params = self._time_filter("timestamp", since, until)
        rows = self._fetch(
            f"SELECT {scope}, SUM(cost_total_pico) FROM {COST_RECORDS.name} {where} GROUP BY {scope}", params
        )
        return {row[0]: int(row[1]) for row in rows}

    def fully_loaded_spend(self, scope: BudgetScope, since: dt.datetime, until: dt.datetime) -> dict[str, int]:
        """Fully-loaded cost (pico) per feature or tenant over [since, until): the allocated
        charges of the windows booked from ``since``, plus the direct cost of the records in the
        range that no window has booked yet (their overhead is not known until it is)."""
        _check_scope(scope)
        where, params = self._time_filter("window_start", since, until)
        result: dict[str, int] = {}
        for name, amount in self._fetch(
            f"SELECT {scope}, SUM(direct_pico + overhead_pico + idle_pico) FROM {ALLOCATED_CHARGES.name} {where} "
            f"GROUP BY {scope}",
            params,
        ):
            result[name] = result.get(name, 0) + int(amount)
        where, params = self._time_filter("timestamp", since, until)
        where += (" AND " if where else "WHERE ") + "booked_in IS NULL"
        for name, amount in self._fetch(
            f"SELECT {scope}, SUM(cost_total_pico) FROM {COST_RECORDS.name} {where} GROUP BY {scope}", params
        ):
            result[name] = result.get(name, 0) + int(amount)
        return result

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


def _check_scope(scope: str) -> None:
    if scope not in ("feature", "tenant"):
        raise ValueError(f"scope must be feature or tenant, got {scope!r}")


def _group_values(group_by: Sequence[str], row: Sequence[Any]) -> dict[str, str | bool]:
    return {key: bool(value) if key == "cache_hit" else value for key, value in zip(group_by, row)}


def schema_statements(dialect: Dialect) -> list[str]:
    return [statement for table in TABLES for statement in dialect.create_table(table)]
