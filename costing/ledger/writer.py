"""The ledger's writer: keeps the blocking ledger writes off the event loop.

The request path only appends to a buffer; a background task writes the buffer every
``flush_interval_s`` seconds, so a crash loses at most the records of one flush interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Protocol

from costing.records import CostRecord

log = logging.getLogger(__name__)


class LedgerSink(Protocol):
    """Where a LedgerWriter writes: any LedgerBackend, or any store with the same write()."""

    def write(self, records: Sequence[CostRecord]) -> int: ...


class LedgerWriter:
    """Buffers cost records on the event loop and writes them to the ledger in batches.

    ``record()`` is a list append, safe on the request path; the blocking write runs in a
    worker thread. Nothing is dropped and nothing is capped: a flush writes the whole buffer,
    a batch whose write fails is logged and put back ahead of newer records for the next
    flush, and ``close()`` writes whatever is left. Use it from the event loop's thread only.

    ``observers`` (e.g. ``CostMetrics.observe``, ``BudgetTracker.observe``) are called once
    with each record as it is recorded, so that counters and budgets see exactly what the
    ledger gets.
    """

    def __init__(
        self,
        ledger: LedgerSink,
        flush_interval_s: float,
        observers: Sequence[Callable[[CostRecord], object]] = (),
    ) -> None:
        if flush_interval_s <= 0:
            raise ValueError(f"flush_interval_s must be positive, got {flush_interval_s}")
        self._ledger = ledger
        self._observers = tuple(observers)
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

    def pending_tenant(self, request_id: str) -> str | None:
        """The tenant of a record still waiting in the buffer (None: not buffered)."""
        return next((r.tenant for r in self._buffer if r.request_id == request_id), None)

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
        for observe in self._observers:
            try:
                observe(record)
            except Exception:  # an observer's bug must not fail the request or lose the record
                log.exception("cost record observer %r failed on %s", observe, record.request_id)

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
