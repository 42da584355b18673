"""A PostgreSQL database of a local run's own, on the machine's server: created on entry,
dropped on exit.

psycopg is installed with the PostgreSQL ledger's dependencies (and by
deploy/tools/install-deploy-tools.sh); it is imported only when a database is made.
"""

from __future__ import annotations

import contextlib
import logging
import urllib.parse
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CONNECT_TIMEOUT_S = 5
START_HINT = "on these machines: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


def _psycopg() -> Any:
    import psycopg

    return psycopg


def database_url(admin_url: str, database: str) -> str:
    """``admin_url`` with its database replaced by ``database``."""
    parts = urllib.parse.urlsplit(admin_url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + database))


@contextlib.contextmanager
def postgres_database(admin_url: str, name: str, *, keep: bool = False) -> Iterator[str]:
    """Creates database ``name`` on the server of ``admin_url``, yields its URL, drops it on
    exit (FORCE: a killed gateway's connection may linger) unless ``keep``."""
    psycopg = _psycopg()
    sql = psycopg.sql
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as exc:
        raise RuntimeError(
            f"PostgreSQL does not answer at {admin_url} ({exc}); start it ({START_HINT}) or pass --postgres-admin-url"
        ) from exc
    log.info("created database %s", name)
    try:
        yield database_url(admin_url, name)
    finally:
        if keep:
            log.info("kept database %s", name)
        else:
            with psycopg.connect(admin_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            log.info("dropped database %s", name)
