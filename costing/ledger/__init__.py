"""The cost ledger: where priced requests, outcomes, booked windows and their charges are kept.

Two backends with the same tables and semantics, chosen by URL (``open_ledger``):
``sqlite:///path`` (the embedded default, one gateway, ``sqlite.py``) and ``postgresql://...``
(shared by several gateway replicas, ``postgres.py``); both run the SQL of ``sql.py`` on the
tables of ``schema.py``. ``LedgerWriter`` (``writer.py``) keeps the blocking writes off the
event loop. This module is the public face: import from ``costing.ledger``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, TypeVar
from urllib.parse import parse_qsl

from costing.ledger.schema import COST_RECORDS
from costing.ledger.sql import (
    ALLOCATION_KEYS,
    GROUP_KEYS,
    AllocationSums,
    BookedUsage,
    BookingCursor,
    BudgetScope,
    GroupSums,
    LedgerError,
    OutcomeSums,
    SqlLedger,
)
from costing.ledger.sqlite import SqliteLedger
from costing.ledger.writer import LedgerSink, LedgerWriter
from costing.records import AllocatedCharge, Booking, CostRecord, OriginCharge, Outcome, ReplicaReading, as_utc

T = TypeVar("T")

TABLE = COST_RECORDS.name
COLUMNS: tuple[str, ...] = COST_RECORDS.column_names

SQLITE_SCHEME = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")

__all__ = [
    "ALLOCATION_KEYS",
    "COLUMNS",
    "GROUP_KEYS",
    "AllocationSums",
    "BookedUsage",
    "BookingCursor",
    "CostRecord",
    "GroupSums",
    "LedgerBackend",
    "LedgerError",
    "LedgerSink",
    "LedgerWriter",
    "OutcomeSums",
    "SqlLedger",
    "SqliteLedger",
    "as_utc",
    "open_ledger",
    "sqlite_url",
]


class LedgerBackend(Protocol):
    """What the gateway, the reconciliation and the reports need from a ledger."""

    description: str

    def write(self, records: Sequence[CostRecord]) -> int: ...
    def write_outcomes(self, outcomes: Sequence[Outcome]) -> int: ...
    def publish_replica(self, reading: ReplicaReading) -> None: ...
    def book(self, work: Callable[[BookingCursor], T]) -> T: ...
    def count(self) -> int: ...
    def total_cost_pico(self) -> int: ...
    def records(
        self, since: dt.datetime | dt.date | None = None, until: dt.datetime | dt.date | None = None
    ) -> list[CostRecord]: ...
    def outcomes(self) -> list[Outcome]: ...
    def bookings(
        self, since: dt.datetime | dt.date | None = None, until: dt.datetime | dt.date | None = None
    ) -> list[Booking]: ...
    def charges(
        self, since: dt.datetime | dt.date | None = None, until: dt.datetime | dt.date | None = None
    ) -> list[OriginCharge]: ...
    def allocated(
        self, since: dt.datetime | dt.date | None = None, until: dt.datetime | dt.date | None = None
    ) -> list[AllocatedCharge]: ...
    def booked_until(self) -> dt.datetime | None: ...
    def unbooked(self) -> tuple[int, int]: ...
    def summarize(
        self,
        group_by: Sequence[str],
        since: dt.datetime | dt.date | None = None,
        until: dt.datetime | dt.date | None = None,
        tenant: str | None = None,
    ) -> list[GroupSums]: ...
    def summarize_allocated(
        self,
        group_by: Sequence[str],
        since: dt.datetime | dt.date | None = None,
        until: dt.datetime | dt.date | None = None,
        tenant: str | None = None,
    ) -> list[AllocationSums]: ...
    def summarize_outcomes(
        self,
        group_by: Sequence[str],
        since: dt.datetime | dt.date | None = None,
        until: dt.datetime | dt.date | None = None,
        tenant: str | None = None,
    ) -> list[OutcomeSums]: ...
    def request_tenant(self, request_id: str) -> str | None: ...
    def spend(self, scope: BudgetScope, since: dt.datetime, until: dt.datetime) -> dict[str, int]: ...
    def fully_loaded_spend(self, scope: BudgetScope, since: dt.datetime, until: dt.datetime) -> dict[str, int]: ...
    def close(self) -> None: ...


def sqlite_url(path: Path | str) -> str:
    """The ledger URL of a SQLite file."""
    return SQLITE_SCHEME + str(Path(path).resolve())


def open_ledger(url: str, *, create: bool = True, schema: str | None = None) -> SqlLedger:
    """Open the ledger at ``url``: ``sqlite:///relative/path`` or ``sqlite:////absolute/path``
    (SQLAlchemy's convention; ``?max_pages=N`` caps the file at N SQLite pages, a bound on its
    disk use), or ``postgresql://user@host:port/db`` (``schema``: the PostgreSQL schema to use).
    Without ``create`` the ledger must exist (reports)."""
    if url.startswith(SQLITE_SCHEME):
        path, _, query = url[len(SQLITE_SCHEME) :].partition("?")
        if not path:
            raise LedgerError(f"ledger URL {url!r} names no file")
        options = dict(parse_qsl(query))
        unknown = set(options) - {"max_pages"}
        if unknown or not options.get("max_pages", "1").isdigit():
            raise LedgerError(f"ledger URL {url!r}: the only SQLite option is max_pages=<number of pages>")
        max_pages = int(options["max_pages"]) if "max_pages" in options else None
        return SqliteLedger(Path(path), create=create, max_pages=max_pages)
    if url.startswith(POSTGRES_SCHEMES):
        from costing.ledger.postgres import PostgresLedger  # psycopg is needed only for this backend

        return PostgresLedger(url, schema=schema, create=create)
    raise LedgerError(f"unsupported ledger URL {url!r}: use sqlite:///PATH or postgresql://...")
