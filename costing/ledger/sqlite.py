"""The embedded ledger: one SQLite file (stdlib sqlite3, WAL mode).

The default for a single gateway. Several replicas need the shared ``PostgresLedger``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from costing.ledger.schema import COST_RECORDS, SQLITE
from costing.ledger.sql import LedgerError, SqlLedger

T = TypeVar("T")


class SqliteLedger(SqlLedger):
    """The ledger in one SQLite file. One connection, guarded by a lock, so that it can be used
    from a worker thread (``asyncio.to_thread``) as well as from the thread that made it."""

    dialect = SQLITE

    def __init__(self, path: Path | str, *, create: bool = True, max_pages: int | None = None) -> None:
        """Open the ledger at ``path``; with ``create`` make its directory and schema if needed,
        without it raise LedgerError unless an existing ledger is there (for read-only use).
        An older ledger is upgraded in place (missing tables and columns are added).
        ``max_pages`` caps the file (SQLite's max_page_count): a write past it fails as on a
        full disk."""
        self.path = Path(path)
        self._max_pages = max_pages
        self.description = str(self.path)
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.is_file():
            raise LedgerError(f"no cost ledger at {self.path}")
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False)
        try:
            if not create:
                self._require_ledger()
            self._prepare()
        except (sqlite3.DatabaseError, LedgerError) as exc:
            self._conn.close()
            if isinstance(exc, LedgerError):
                raise
            raise LedgerError(f"{self.path} is not a usable cost ledger: {exc}") from exc

    def _require_ledger(self) -> None:
        if not self._columns(COST_RECORDS.name):
            raise LedgerError(
                f"{self.path} is not a cost ledger (missing columns: {', '.join(COST_RECORDS.column_names)})"
            )

    def _prepare(self) -> None:
        # WAL: the report CLI can read while the gateway writes. synchronous=FULL: a committed
        # batch survives power loss; it costs one fsync per batch, i.e. per flush interval.
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        if self._max_pages is not None:
            self._conn.execute(f"PRAGMA max_page_count={int(self._max_pages)}")
        with self._conn:
            self._create_or_upgrade_schema(self._conn.execute)
        self._conn.execute("PRAGMA busy_timeout=5000")

    def _columns(self, table: str) -> set[str]:
        return {row[1] for row in self._conn.execute(f"PRAGMA table_info({table})")}

    def _run(self, work: Callable[[Any], T]) -> T:
        """One transaction; any database failure (locked, disk full, ...) is a LedgerError."""
        return self._transaction(work, exclusive=False)

    def _run_exclusive(self, work: Callable[[Any], T]) -> T:
        """One transaction that takes SQLite's write lock first (BEGIN IMMEDIATE), so that two
        processes on one file never book the same window."""
        return self._transaction(work, exclusive=True)

    def _transaction(self, work: Callable[[Any], T], *, exclusive: bool) -> T:
        try:
            with self._lock, self._conn:
                cursor = self._conn.cursor()
                try:
                    if exclusive:
                        cursor.execute("BEGIN IMMEDIATE")
                    return work(cursor)
                finally:
                    cursor.close()
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SqliteLedger:
        return self
