"""The ledger's writer: keeps the blocking ledger writes off the event loop, and no answered
request without a durable record.

The request path only appends to a buffer; a background task writes the buffer every
``flush_interval_s`` seconds, so a crash loses at most the records of one flush interval
(none with commit-before-answer). When the database cannot take a batch (down, locked, disk
full) and a journal is configured, the batch goes to the journal instead (appended and fsynced)
and is replayed into the database once it answers again. Only when the journal cannot be
written either is the writer *failing*: the batch stays in memory, bounded, and the gateway
refuses new calls (fail closed) until a write lands again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from enum import Enum
from types import TracebackType
from typing import Protocol

from costing.ledger.journal import Journal, JournalError
from costing.records import CostRecord

log = logging.getLogger(__name__)


class LedgerSink(Protocol):
    """Where a LedgerWriter writes: any LedgerBackend, or any store with the same write()."""

    def write(self, records: Sequence[CostRecord]) -> int: ...


class WriterState(Enum):
    """``ok``: records reach the database. ``journaling``: the database fails, records are
    durable in the journal. ``failing``: neither takes records; they wait in memory."""

    OK = 0
    JOURNALING = 1
    FAILING = 2


class LedgerWriter:
    """Buffers cost records on the event loop and writes them to the ledger in batches.

    ``record()`` is a list append, safe on the request path; the blocking write runs in a
    worker thread. A batch whose write fails goes to the journal (when there is one) or back
    ahead of newer records for the next flush; ``close()`` writes whatever is left. Use it from
    the event loop's thread only.

    ``observers`` (e.g. ``CostMetrics.observe``, ``BudgetTracker.observe``) are called once
    with each record as it is recorded, so that counters and budgets see exactly what the
    ledger gets. ``on_state`` is told every change of state.
    """

    def __init__(
        self,
        ledger: LedgerSink,
        flush_interval_s: float,
        observers: Sequence[Callable[[CostRecord], object]] = (),
        *,
        journal: Journal | None = None,
        on_state: Callable[[WriterState, int], object] | None = None,
        max_pending: int | None = None,
        on_drop: Callable[[int], object] | None = None,
    ) -> None:
        """``max_pending``: records kept in memory while they cannot be written; past it the
        oldest are dropped, logged and counted with ``on_drop(n)`` (only a fail-open gateway
        keeps recording then: a fail-closed one refuses calls first)."""
        if flush_interval_s <= 0:
            raise ValueError(f"flush_interval_s must be positive, got {flush_interval_s}")
        self._ledger = ledger
        self._observers = tuple(observers)
        self._flush_interval_s = flush_interval_s
        self._journal = journal
        self._on_state = on_state
        self._max_pending = max_pending
        self._on_drop = on_drop
        self._buffer: list[CostRecord] = []
        self._flush_lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.state = WriterState.OK

    @property
    def pending(self) -> int:
        """Records recorded but not yet written (to the database or the journal)."""
        return len(self._buffer)

    @property
    def journalled(self) -> int:
        """Records waiting in the journal for the database."""
        return self._journal.count() if self._journal is not None else 0

    @property
    def healthy(self) -> bool:
        """False while neither the database nor the journal takes records."""
        return self.state is not WriterState.FAILING

    def pending_tenant(self, request_id: str) -> str | None:
        """The tenant of a record still waiting in the buffer (None: not buffered)."""
        return next((r.tenant for r in self._buffer if r.request_id == request_id), None)

    def start(self) -> None:
        """Launch the periodic flush on the running event loop (a journal left by an earlier
        run is replayed by the first flush)."""
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
        if self._max_pending is not None and len(self._buffer) > self._max_pending:
            dropped = self._buffer.pop(0)
            log.error("cost record %s dropped: %d records wait unwritten", dropped.request_id, self._max_pending)
            if self._on_drop is not None:
                self._on_drop(1)
        for observe in self._observers:
            try:
                observe(record)
            except Exception:  # an observer's bug must not fail the request or lose the record
                log.exception("cost record observer %r failed on %s", observe, record.request_id)

    async def flush(self) -> int:
        """Write everything buffered now, and replay the journal once the database answers.
        Returns the rows inserted into the database (known request ids are skipped). A batch
        the database refuses goes to the journal (returns 0); without a journal, or when the
        journal fails too, it stays buffered and the database's error is raised."""
        async with self._flush_lock:
            batch, self._buffer = self._buffer, []
            try:
                inserted = await asyncio.to_thread(self._ledger.write, batch) if batch else 0
            except BaseException as exc:
                if isinstance(exc, Exception) and self._journal is not None and await self._journal_batch(batch, exc):
                    return 0
                # Back in front of newer records. Writing it again later is safe even if this
                # write did land (e.g. our wait was cancelled): the ledger skips known request ids.
                self._buffer[:0] = batch
                if isinstance(exc, Exception):
                    log.error(
                        "ledger write of %d cost records failed (%s); %d records kept for the next flush",
                        len(batch), exc, len(self._buffer),
                    )  # fmt: skip
                    self._set_state(WriterState.FAILING)
                raise
            inserted += await self._replay()
            log.debug("wrote %d cost records (%d new)", len(batch), inserted)
            return inserted

    async def _journal_batch(self, batch: list[CostRecord], cause: Exception) -> bool:
        assert self._journal is not None
        try:
            await asyncio.to_thread(self._journal.append, batch)
        except JournalError as error:
            log.error("ledger database failed (%s) and so did its journal (%s)", cause, error)
            return False
        if self.state is not WriterState.JOURNALING:
            log.warning("ledger database failed (%s): cost records go to the journal %s until it recovers", cause, self._journal.path)
        self._set_state(WriterState.JOURNALING)
        return True

    async def _replay(self) -> int:
        """Move the journal into the database (idempotent by request id); 0 if there is none."""
        if self._journal is None or not self._journal.count():
            self._set_state(WriterState.OK)
            return 0
        try:
            records = await asyncio.to_thread(self._journal.read)
            inserted = await asyncio.to_thread(self._ledger.write, records)
            await asyncio.to_thread(self._journal.clear)
        except Exception as error:  # noqa: BLE001 - the records stay journalled; try again next flush
            log.warning("ledger journal replay failed, retried at the next flush: %s", error)
            self._set_state(WriterState.JOURNALING)
            return 0
        log.info("replayed %d journalled cost records into the ledger (%d new)", len(records), inserted)
        self._set_state(WriterState.OK)
        return inserted

    def _set_state(self, state: WriterState) -> None:
        if state is self.state:
            return
        if state is WriterState.OK:
            log.info("ledger writes recovered (was %s)", self.state.name.lower())
        self.state = state
        if self._on_state is not None:
            self._on_state(state, self.journalled)

    async def close(self) -> None:
        """Stop the periodic flush and write everything buffered. Without a journal a failing
        last write raises (the records stay in ``pending``; close() may be called again). With
        one, close() never raises: what neither the database nor the journal takes is written
        to the log as JSON lines, the last place left to recover it from."""
        self._closed = True
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._journal is None:
            await self.flush()
            return
        with contextlib.suppress(Exception):
            await self.flush()
        if self._buffer:
            log.error("%d cost records could be written neither to the ledger nor to its journal; they follow as JSON", len(self._buffer))
            for record in self._buffer:
                log.error("unwritten cost record %s", json.dumps(dataclasses.asdict(record), default=str))

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
