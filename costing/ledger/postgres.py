"""The shared ledger: PostgreSQL (psycopg 3), for several gateway replicas.

Same tables and semantics as the SQLite ledger. Every replica writes its own batches; the
primary keys make writes idempotent across replicas, and schema creation is serialised with an
advisory lock so that replicas starting together do not trip over each other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from costing.ledger.schema import COST_RECORDS, POSTGRES, TABLES, migrations
from costing.ledger.sql import LedgerError, SqlLedger

T = TypeVar("T")

# pg_advisory_xact_lock key of schema creation ("tollgate" in ASCII, as a number).
_SCHEMA_LOCK_KEY = 0x746F6C6C67617465
# ... and of booking windows ("tollbook"): one replica books at a time, per schema.
_BOOKING_LOCK_KEY = 0x746F6C6C626F6F6B


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise LedgerError("a postgresql:// ledger needs psycopg 3: pip install 'psycopg[binary]'") from exc
    return psycopg


class PostgresLedger(SqlLedger):
    """The ledger in a PostgreSQL database, in ``schema`` (default: the connection's search_path).

    One autocommit connection guarded by a lock; each write is one explicit transaction. A
    broken connection (server restart) is reopened on the next call; the LedgerWriter keeps a
    failed batch and writes it again.
    """

    dialect = POSTGRES

    def __init__(self, url: str, *, schema: str | None = None, create: bool = True, connect_timeout_s: int = 5) -> None:
        self._psycopg = _psycopg()
        self.url = url
        self.schema = schema
        self.description = _redacted(url) + (f" (schema {schema})" if schema else "")
        self._connect_timeout_s = connect_timeout_s
        self._lock = threading.Lock()
        self._conn: Any = None
        try:
            with self._lock:
                self._connect()
                if create:
                    self._prepare()
                else:
                    self._require_ledger()
        except self._psycopg.Error as exc:
            self._close_connection()
            raise LedgerError(f"cannot open the cost ledger at {self.description}: {exc}") from exc
        except LedgerError:
            self._close_connection()
            raise

    def _connect(self) -> None:
        psycopg = self._psycopg
        self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=self._connect_timeout_s)
        if self.schema:
            self._conn.execute(psycopg.sql.SQL("SET search_path TO {}").format(psycopg.sql.Identifier(self.schema)))

    def _prepare(self) -> None:
        psycopg = self._psycopg
        with self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
            if self.schema:
                self._conn.execute(
                    psycopg.sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(psycopg.sql.Identifier(self.schema))
                )
            self._create_or_upgrade_schema(self._conn.execute)

    def _require_ledger(self) -> None:
        if not self._columns(COST_RECORDS.name):
            raise LedgerError(f"no cost ledger at {self.description}")
        for table in TABLES:  # an older ledger is upgraded, as SQLite's is
            existing = self._columns(table.name)
            if not existing or migrations(table, existing):
                self._prepare()
                return

    def _columns(self, table: str) -> set[str]:
        rows = self._conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s",
            (table,),
        ).fetchall()
        return {row[0] for row in rows}

    def _run(self, work: Callable[[Any], T]) -> T:
        """One transaction; any database failure is a LedgerError."""
        return self._transaction(work, exclusive=False)

    def _run_exclusive(self, work: Callable[[Any], T]) -> T:
        """One transaction holding the booking advisory lock (of this schema) until it ends."""
        return self._transaction(work, exclusive=True)

    def _transaction(self, work: Callable[[Any], T], *, exclusive: bool) -> T:
        with self._lock:
            try:
                if self._conn is None or self._conn.closed or self._conn.broken:
                    self._close_connection()
                    self._connect()
                with self._conn.transaction(), self._conn.cursor() as cursor:
                    if exclusive:
                        cursor.execute(
                            "SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))",
                            (_BOOKING_LOCK_KEY & 0x7FFFFFFF,),
                        )
                    return work(cursor)
            except self._psycopg.Error as exc:
                raise LedgerError(f"{self.description}: {exc}") from exc

    def drop_schema(self) -> None:
        """Drop this ledger's own ``schema`` and everything in it (tests, teardown)."""
        if not self.schema:
            raise LedgerError("drop_schema needs a ledger opened with its own schema")
        psycopg = self._psycopg
        with self._lock:
            self._conn.execute(
                psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(self.schema))
            )

    def _close_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def close(self) -> None:
        with self._lock:
            self._close_connection()

    def __enter__(self) -> PostgresLedger:
        return self


def _redacted(url: str) -> str:
    """``url`` without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"
