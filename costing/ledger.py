"""The cost ledger: one row per priced request, kept in SQLite and written in batches.

``SqliteLedger`` is the storage (stdlib sqlite3, WAL mode, idempotent by request id);
``LedgerWriter`` keeps the blocking writes off the event loop: the request path only appends
to a buffer, and a background task writes the buffer every ``flush_interval_s`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol

log = logging.getLogger(__name__)

TABLE = "cost_records"

# Timestamps are stored as fixed-width UTC text, so that text order is time order and the
# first 10 characters are the UTC day.
_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    request_id         TEXT PRIMARY KEY,
    timestamp          TEXT NOT NULL,
    rpc                TEXT NOT NULL,
    feature            TEXT NOT NULL,
    tenant             TEXT NOT NULL,
    model              TEXT NOT NULL,
    model_version      TEXT NOT NULL,
    pool               TEXT NOT NULL,
    device             TEXT NOT NULL,
    cache_hit          INTEGER NOT NULL,
    status             TEXT NOT NULL,
    compute_ns         INTEGER NOT NULL,
    gateway_cpu_ns     INTEGER NOT NULL,
    cache_ops          INTEGER NOT NULL,
    cost_total         REAL NOT NULL,
    cost_compute       REAL NOT NULL,
    cost_gateway       REAL NOT NULL,
    cost_cache         REAL NOT NULL,
    cost_avoided       REAL NOT NULL,
    currency           TEXT NOT NULL,
    price_book_version TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS {TABLE}_timestamp ON {TABLE} (timestamp);
CREATE INDEX IF NOT EXISTS {TABLE}_feature ON {TABLE} (feature);
"""

# What a summary may group by, and the SQL that computes each key. A fixed map, never
# caller text, is what reaches the SQL.
GROUP_KEYS: Mapping[str, str] = {
    "feature": "feature",
    "tenant": "tenant",
    "model": "model",
    "model_version": "model_version",
    "pool": "pool",
    "device": "device",
    "rpc": "rpc",
    "day": "substr(timestamp, 1, 10)",
    "cache_hit": "cache_hit",
}


class LedgerError(Exception):
    """The ledger file is missing or is not a Tollgate cost ledger."""


@dataclass(frozen=True)
class CostRecord:
    """One priced request, as finance sees it."""

    request_id: str
    timestamp: dt.datetime  # timezone-aware; normalised to UTC
    rpc: str
    feature: str
    tenant: str
    model: str
    model_version: str
    pool: str
    device: str
    cache_hit: bool
    status: str  # gRPC status name: "OK", "INVALID_ARGUMENT", ...
    compute_ns: int
    gateway_cpu_ns: int
    cache_ops: int
    cost_total: float
    cost_compute: float
    cost_gateway: float
    cost_cache: float
    cost_avoided: float
    currency: str
    price_book_version: str

    def __post_init__(self) -> None:
        if self.timestamp.utcoffset() is None:
            raise ValueError(f"CostRecord {self.request_id}: timestamp must be timezone-aware")
        object.__setattr__(self, "timestamp", self.timestamp.astimezone(dt.UTC))


COLUMNS: tuple[str, ...] = tuple(field.name for field in dataclasses.fields(CostRecord))
_TIMESTAMP_COLUMN = COLUMNS.index("timestamp")
_CACHE_HIT_COLUMN = COLUMNS.index("cache_hit")


@dataclass(frozen=True)
class GroupSums:
    """Sums over the records of one group (and one currency: amounts are never mixed)."""

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


def as_utc(moment: dt.datetime | dt.date) -> dt.datetime:
    """A time bound as an aware UTC datetime: a date is its UTC midnight, a naive time is UTC."""
    if not isinstance(moment, dt.datetime):
        return dt.datetime.combine(moment, dt.time(), dt.UTC)
    if moment.utcoffset() is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


class SqliteLedger:
    """Cost records in one SQLite file. One connection, guarded by a lock, so that it can be
    used from a worker thread (``asyncio.to_thread``) as well as from the thread that made it."""

    def __init__(self, path: Path | str, *, create: bool = True) -> None:
        """Open the ledger at ``path``; with ``create`` make its directory and schema if needed,
        without it raise LedgerError unless an existing ledger is there (for read-only use)."""
        self.path = Path(path)
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.is_file():
            raise LedgerError(f"no cost ledger at {self.path}")
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False)
        try:
            if create:
                self._create_schema()
            else:
                self._check_schema()
        except (sqlite3.DatabaseError, LedgerError) as exc:
            self._conn.close()
            if isinstance(exc, LedgerError):
                raise
            raise LedgerError(f"{self.path} is not a usable cost ledger: {exc}") from exc

    def _create_schema(self) -> None:
        # WAL: the report CLI can read while the gateway writes. synchronous=FULL: a committed
        # batch survives power loss; it costs one fsync per batch, i.e. per flush interval.
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)

    def _check_schema(self) -> None:
        found = {row[1] for row in self._conn.execute(f"PRAGMA table_info({TABLE})")}
        missing = set(COLUMNS) - found
        if missing:
            raise LedgerError(f"{self.path} is not a cost ledger (missing columns: {', '.join(sorted(missing))})")

    def write(self, records: Sequence[CostRecord]) -> int:
        """Insert ``records`` in one transaction; a request id already present is skipped.
        Returns the number of rows actually inserted."""
        if not records:
            return 0
        rows = [_to_row(record) for record in records]
        placeholders = ", ".join("?" * len(COLUMNS))
        sql = f"INSERT OR IGNORE INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({placeholders})"
        with self._lock, self._conn:
            before = self._conn.total_changes
            self._conn.executemany(sql, rows)
            return self._conn.total_changes - before

    def count(self) -> int:
        with self._lock:
            return self._conn.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0]

    def total_cost(self) -> float:
        """Sum of cost_total over all records (the ledger holds one currency per price book)."""
        with self._lock:
            return self._conn.execute(f"SELECT TOTAL(cost_total) FROM {TABLE}").fetchone()[0]

    def records(
        self, since: dt.datetime | dt.date | None = None, until: dt.datetime | dt.date | None = None
    ) -> list[CostRecord]:
        """Records with ``since <= timestamp < until``, oldest first."""
        where, params = _time_filter(since, until)
        sql = f"SELECT {', '.join(COLUMNS)} FROM {TABLE} {where} ORDER BY timestamp, request_id"
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [_from_row(row) for row in rows]

    def summarize(
        self,
        group_by: Sequence[str],
        since: dt.datetime | dt.date | None = None,
        until: dt.datetime | dt.date | None = None,
    ) -> list[GroupSums]:
        """Sums per group of ``group_by`` keys (see GROUP_KEYS) and currency, ordered by group."""
        unknown = [key for key in group_by if key not in GROUP_KEYS]
        if unknown:
            raise ValueError(f"cannot group by {', '.join(unknown)}; allowed: {', '.join(GROUP_KEYS)}")
        expressions = [GROUP_KEYS[key] for key in group_by] + ["currency"]
        grouping = ", ".join(expressions)
        where, params = _time_filter(since, until)
        sql = f"""
            SELECT {grouping}, COUNT(*), SUM(cache_hit), SUM(status != 'OK'), SUM(compute_ns),
                   TOTAL(cost_total), TOTAL(cost_compute), TOTAL(cost_gateway), TOTAL(cost_cache),
                   TOTAL(cost_avoided)
            FROM {TABLE} {where} GROUP BY {grouping} ORDER BY {grouping}
        """
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        width = len(group_by)
        return [
            GroupSums(
                group={key: bool(value) if key == "cache_hit" else value for key, value in zip(group_by, row)},
                currency=row[width],
                requests=row[width + 1],
                cache_hits=row[width + 2],
                errors=row[width + 3],
                compute_ns=row[width + 4],
                cost_total=row[width + 5],
                cost_compute=row[width + 6],
                cost_gateway=row[width + 7],
                cost_cache=row[width + 8],
                cost_avoided=row[width + 9],
            )
            for row in rows
        ]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SqliteLedger:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _to_row(record: CostRecord) -> list[object]:
    row = [getattr(record, name) for name in COLUMNS]
    row[_TIMESTAMP_COLUMN] = record.timestamp.strftime(_TIMESTAMP_FORMAT)
    row[_CACHE_HIT_COLUMN] = int(record.cache_hit)
    return row


def _from_row(row: Sequence[object]) -> CostRecord:
    values = dict(zip(COLUMNS, row))
    values["timestamp"] = dt.datetime.strptime(str(values["timestamp"]), _TIMESTAMP_FORMAT).replace(tzinfo=dt.UTC)
    values["cache_hit"] = bool(values["cache_hit"])
    return CostRecord(**values)  # type: ignore[arg-type]


def _time_filter(
    since: dt.datetime | dt.date | None, until: dt.datetime | dt.date | None
) -> tuple[str, list[str]]:
    """WHERE clause for ``since <= timestamp < until`` (either bound optional)."""
    if since is not None and until is not None and as_utc(since) >= as_utc(until):
        raise ValueError(f"empty time range: since {since} is not before until {until}")
    conditions, params = [], []
    if since is not None:
        conditions.append("timestamp >= ?")
        params.append(as_utc(since).strftime(_TIMESTAMP_FORMAT))
    if until is not None:
        conditions.append("timestamp < ?")
        params.append(as_utc(until).strftime(_TIMESTAMP_FORMAT))
    return ("WHERE " + " AND ".join(conditions) if conditions else ""), params


class LedgerSink(Protocol):
    """Where a LedgerWriter writes: SqliteLedger, or any store with the same write()."""

    def write(self, records: Sequence[CostRecord]) -> int: ...


class LedgerWriter:
    """Buffers cost records on the event loop and writes them to the ledger in batches.

    ``record()`` is a list append, safe on the request path; the blocking write runs in a
    worker thread. Nothing is dropped and nothing is capped: a batch whose write fails is
    logged and put back ahead of newer records for the next flush, and ``close()`` writes
    whatever is left. Use it from the event loop's thread only.
    """

    def __init__(self, ledger: LedgerSink, flush_interval_s: float) -> None:
        if flush_interval_s <= 0:
            raise ValueError(f"flush_interval_s must be positive, got {flush_interval_s}")
        self._ledger = ledger
        self._flush_interval_s = flush_interval_s
        self._buffer: list[CostRecord] = []
        self._flush_lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def pending(self) -> int:
        """Records recorded but not yet written."""
        return len(self._buffer)

    def start(self) -> None:
        """Launch the periodic flush on the running event loop."""
        if self._closed:
            raise RuntimeError("LedgerWriter is closed")
        if self._task is not None:
            raise RuntimeError("LedgerWriter is already started")
        self._task = asyncio.get_running_loop().create_task(self._flush_periodically(), name="ledger-writer")

    def record(self, record: CostRecord) -> None:
        """Buffer ``record`` for the next flush. Never blocks; raises once the writer is closed,
        since a record accepted then could no longer be written."""
        if self._closed:
            raise RuntimeError(f"LedgerWriter is closed; record {record.request_id} would be lost")
        self._buffer.append(record)

    async def flush(self) -> int:
        """Write everything buffered now. Returns the rows inserted (known request ids are
        skipped); on a write error the batch stays buffered and the error is raised."""
        async with self._flush_lock:
            if not self._buffer:
                return 0
            batch, self._buffer = self._buffer, []
            try:
                inserted = await asyncio.to_thread(self._ledger.write, batch)
            except BaseException as exc:
                # Back in front of newer records. Writing it again later is safe even if this
                # write did land (e.g. our wait was cancelled): the ledger skips known request ids.
                self._buffer[:0] = batch
                if isinstance(exc, Exception):
                    log.exception(
                        "ledger write of %d cost records failed; %d records kept for the next flush",
                        len(batch),
                        len(self._buffer),
                    )
                raise
            log.debug("wrote %d cost records (%d new)", len(batch), inserted)
            return inserted

    async def close(self) -> None:
        """Stop the periodic flush and write everything buffered. If that last write fails the
        error is raised, the records stay in ``pending``, and close() may be called again."""
        self._closed = True
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()

    async def _flush_periodically(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self._flush_interval_s)
                return  # close() takes the final flush
            except TimeoutError:
                pass
            with contextlib.suppress(Exception):  # flush() logged it and kept the batch
                await self.flush()

    async def __aenter__(self) -> LedgerWriter:
        self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
