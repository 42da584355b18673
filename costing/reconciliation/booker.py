"""Books the ledger's windows, one after another, from whichever replica is running.

Windows are calendar-aligned (window k is [k x window_s, (k + 1) x window_s) from the epoch, so
a window never straddles a day when window_s divides a day) and *contiguous by construction*:
every booking starts where the last one stored in the ledger ended, in a transaction that
excludes every other booker (``SqlLedger.book``). So several replicas sharing a ledger never
book a window twice, a window no replica booked is booked by the next one (the gap while no
gateway ran is booked when one starts again), and the first and last windows may be partial:

- the first gateway on an empty ledger stores an *opening* (Triton's counters at its start);
- at every boundary each replica reads Triton's counters and publishes its process CPU, waits
  ``grace_s`` for every replica's records to be flushed, then books up to that boundary
  unless another replica already has;
- on start, a replica that finds the last booking older than a window books the gap up to now;
- the last replica to stop books the partial window up to its stop, after its final flush.

Triton's deltas come from the counters stored with the previous booking, not from a replica's
memory; a counter that went backwards means Triton restarted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence

from costing.ledger import BookingCursor, LedgerBackend
from costing.money import EPOCH
from costing.price_book import PriceBook
from costing.reconciliation.booking import BookedWindow, BookingState, PoolReading, book_window, opening
from costing.reconciliation.replica import ReplicaMeter
from costing.reconciliation.triton_stats import TritonReader

log = logging.getLogger(__name__)


class WindowBooker:
    """Books windows of ``window_s`` seconds for the pools of ``readers``, with this process's
    ``meter`` as one gateway replica."""

    def __init__(
        self,
        ledger: LedgerBackend,
        book: PriceBook,
        readers: Sequence[TritonReader],
        meter: ReplicaMeter,
        *,
        window_s: float,
        grace_s: float,
        on_booked: Callable[[BookedWindow], object] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        if not 0 <= grace_s < window_s:
            raise ValueError(f"grace_s must be in [0, window_s), got {grace_s} for a window of {window_s}")
        self._ledger = ledger
        self._prices = book
        self._readers = tuple(readers)
        self.meter = meter
        self._window_s = window_s
        self._grace_s = grace_s
        self._on_booked = on_booked
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.booked: list[BookedWindow] = []

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the ledger's bookings if it has none, book the gap since the last booking if no
        replica booked for more than a window, then book every boundary in the background."""
        now = self._now()
        readings = await self.read_triton()
        await asyncio.to_thread(self._ledger.publish_replica, self.meter.reading(now))
        last = await asyncio.to_thread(self._ledger.booked_until)
        if last is None:
            await asyncio.to_thread(self._open, now, readings)
        elif (now - last).total_seconds() > self._window_s + self._grace_s:
            await self._book_until(now, readings)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="cost-booker")

    async def close(self, *, final_booking: bool = True) -> None:
        """Stop the loop, publish this replica's last reading and, when no other replica is
        running, book the last partial window (call it after the final ledger flush)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        now = self._now()
        await asyncio.to_thread(self._ledger.publish_replica, self.meter.reading(now, stopped=True))
        if final_booking and not await asyncio.to_thread(self._others_running, now):
            await self._book_until(now, await self.read_triton())

    # --- booking ------------------------------------------------------------------------------

    async def read_triton(self) -> dict[str, PoolReading | None]:
        results = await asyncio.gather(*(reader.read() for reader in self._readers))
        return {reader.pool: result for reader, result in zip(self._readers, results)}

    async def book_until(self, end: dt.datetime) -> BookedWindow | None:
        """Book from the last booking to ``end`` with Triton's counters read now (tests, tools)."""
        return await self._book_until(end, await self.read_triton())

    async def _book_until(self, end: dt.datetime, triton: Mapping[str, PoolReading | None]) -> BookedWindow | None:
        try:
            result = await asyncio.to_thread(self._ledger.book, lambda cursor: self._book_in(cursor, end, triton))
        except Exception:  # noqa: BLE001 - one failed booking must not stop the next ones
            log.exception("booking the window ending %s failed", end.isoformat())
            return None
        if result is not None:
            self.booked.append(result)
            if self._on_booked is not None:
                self._on_booked(result)
        return result

    def _book_in(self, cursor: BookingCursor, end: dt.datetime, triton: Mapping[str, PoolReading | None]) -> BookedWindow | None:
        last = cursor.last_booking()
        if last is None:
            cursor.store(opening(end, self._prices, self.meter.replica, _answered(triton)), [], [])
            return None
        if last.window_end >= end:
            return None  # another replica booked it
        usage = cursor.take_records(last.window_end, end)
        result = book_window(
            last.window_end,
            end,
            usage,
            self._prices,
            BookingState.from_json(last.state),
            triton=triton,
            replicas=cursor.replicas(),
            booked_by=self.meter.replica,
            booked_at=self._now(),
        )
        cursor.store(result.booking, result.charges, result.allocated)
        log.info(
            "booked %s .. %s: %d origin charges, %d allocated",
            last.window_end.isoformat(), end.isoformat(), len(result.charges), len(result.allocated),
        )  # fmt: skip
        return result

    def _open(self, now: dt.datetime, triton: Mapping[str, PoolReading | None]) -> None:
        def work(cursor: BookingCursor) -> None:
            if cursor.last_booking() is None:
                cursor.store(opening(now, self._prices, self.meter.replica, _answered(triton)), [], [])

        self._ledger.book(work)

    def _others_running(self, now: dt.datetime) -> bool:
        horizon = now - dt.timedelta(seconds=self._window_s + self._grace_s)
        return any(
            reading.replica != self.meter.replica and not reading.stopped and reading.seen_at >= horizon
            for reading in self._ledger.replicas()
        )

    async def _run(self) -> None:
        index = math.floor(self._clock() / self._window_s) + 1
        while True:
            boundary = index * self._window_s
            await self._sleep_until(boundary)
            end = _moment(boundary)
            triton = await self.read_triton()
            try:
                await asyncio.to_thread(self._ledger.publish_replica, self.meter.reading(end))
            except Exception:  # noqa: BLE001 - the next boundary publishes again
                log.exception("publishing the gateway's CPU reading failed")
            index = math.floor(self._clock() / self._window_s) + 1  # a late wake-up books up to now
            await asyncio.sleep(self._grace_s)
            await self._book_until(end, triton)

    async def _sleep_until(self, moment: float) -> None:
        delay = moment - self._clock()
        if delay > 0:
            await asyncio.sleep(delay)

    def _now(self) -> dt.datetime:
        return _moment(self._clock())


def _answered(triton: Mapping[str, PoolReading | None]) -> dict[str, PoolReading]:
    return {pool: reading for pool, reading in triton.items() if reading is not None}


def _moment(epoch_s: float) -> dt.datetime:
    """A moment as a datetime, to the microsecond (so that replicas compute the same key)."""
    return EPOCH + dt.timedelta(microseconds=round(epoch_s * 1_000_000))
