"""Helpers shared by the unit and end-to-end tests; shared fixtures are in tests/conftest.py.

Every loopback port a test picks goes through here. How a port reaches its server:

- a server in the test's own process binds port 0 and the test reads the port it got (bound
  once, nothing to race: tests/e2e/test_otlp_export.py);
- a server in another process (Triton, redis-server) is given a port from
  :func:`port_for_later_bind`, which another process may take before the server binds it; its
  start is therefore retried on fresh ports when it fails because the port was taken
  (:func:`retry_on_port_collision`);
- :func:`unreachable_address` is an address where nothing listens.

Not covered: the gateway's own port (gRPC binds with SO_REUSEPORT, so a collision does not fail
the bind, it would share the port: see tests/README.md).
"""

from __future__ import annotations

import asyncio
import os
import re
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from deploy.local.ports import LOOPBACK, free_port
from deploy.local.settings import get_local_settings
from gateway.protobuf_wire import bytes_tensor
from gateway.triton_infer import InferOutputs

# The PostgreSQL of the ledger tests; each test works in a schema of its own and drops it.
TEST_POSTGRES_URL = os.environ.get("TOLLGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
POSTGRES_CONNECT_TIMEOUT_S = 3

T = TypeVar("T")


def port_for_later_bind() -> int:
    """A loopback port free now, for a server that binds it later (a child process, or the
    component under test). Racy: another process may take it in between, so start that server
    through :func:`retry_on_port_collision`."""
    return free_port()


# Starts tried before a port collision fails the test (each on fresh ports).
PORT_COLLISION_ATTEMPTS = 3
# What a server says when its port was taken between choosing it and binding it.
_PORT_TAKEN = re.compile(r"address already in use|already in use|EADDRINUSE|errno 98", re.IGNORECASE)


def retry_on_port_collision(start: Callable[[], T], attempts: int = PORT_COLLISION_ATTEMPTS) -> T:
    """``start()`` picks fresh ports (port_for_later_bind) and starts a server on them; when it
    fails because a port was taken in between, it is called again, at most ``attempts`` times.
    Any other failure propagates at once."""
    for attempt in range(1, attempts + 1):
        try:
            return start()
        except Exception as error:
            if attempt == attempts or not _PORT_TAKEN.search(f"{error} {getattr(error, 'strerror', '')}"):
                raise
    raise AssertionError("unreachable")


def unreachable_address() -> str:
    """``host:port`` on the loopback where nothing listens, for calls that must fail to connect."""
    return f"{LOOPBACK}:{free_port()}"


def postgres_unavailable(url: str = TEST_POSTGRES_URL) -> str | None:
    """None when the PostgreSQL at ``url`` answers, else why not. Only "not reachable" is a
    reason to skip: a missing driver, bad credentials or any other error fails the test."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=POSTGRES_CONNECT_TIMEOUT_S):
            return None
    except psycopg.OperationalError as exc:
        if _unreachable(str(exc)):
            return f"PostgreSQL is not reachable at {url}: {exc}"
        raise


def _unreachable(message: str) -> bool:
    """psycopg's OperationalError covers refused connections and bad passwords alike."""
    return any(text in message for text in ("Connection refused", "could not connect", "timeout expired", "No such file"))


def e2e_log_path(name: str) -> Path:
    """Log file of a server that an e2e test starts: ``<run_dir>/logs/e2e-<name>.log``."""
    return get_local_settings().run_dir / "logs" / f"e2e-{name}.log"


async def wait_for_async(condition: Callable[[], T], timeout_s: float, what: str, poll_s: float = 0.05) -> T:
    """:func:`wait_for` inside an event loop (the loop keeps running while it waits)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(poll_s)


def wait_for(condition: Callable[[], T], timeout_s: float, what: str, poll_s: float = 0.1) -> T:
    """Polls ``condition`` until it returns something truthy (returned), or fails the test
    after ``timeout_s`` naming ``what`` it waited for."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)


def search_outputs(
    ids: list[str], titles: list[str] | None = None, scores: list[float] | None = None, *,
    encoder_ns: int = 100, index_ns: int = 20, version: str = "3",
) -> InferOutputs:
    """The raw outputs of one product_search request as the gateway's Triton stub hands them to
    Search's route (titles ``TITLE <id>`` and descending scores unless given)."""
    titles = [f"TITLE {i}" for i in ids] if titles is None else titles
    scores = [1.0 - n / 100 for n in range(len(ids))] if scores is None else scores
    return InferOutputs(version, {
        "ITEM_IDS": bytes_tensor(i.encode() for i in ids),
        "ITEM_TITLES": bytes_tensor(t.encode() for t in titles),
        "SCORES": struct.pack(f"<{len(scores)}f", *scores),
        "ENCODER_COMPUTE_NS": struct.pack("<q", encoder_ns),
        "INDEX_COMPUTE_NS": struct.pack("<q", index_ns),
    })  # fmt: skip


def triton_requests_and_rows(stats: dict) -> tuple[int, int]:
    """(requests, rows) Triton counted for a model: ``get_inference_statistics(model, as_json=True)``'s
    successful requests and its inferences (a request of several rows counts each row)."""
    model = stats["model_stats"][0]
    return int(model["inference_stats"]["success"].get("count", 0)), int(model.get("inference_count", 0))

