"""Runs the reconciliation window after window, and persists each window in the ledger.

At every window boundary (aligned to the clock, so that gateway replicas agree on windows)
it snapshots the Triton statistics of every pool, waits ``grace_s`` for the ledger writers
of every replica to flush the window's records, then reconciles the window from the ledger
and stores it (``cost_windows`` and ``cost_allocations``). The first replica to store a
window wins; the others' copies are skipped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from costing.ledger import LedgerBackend
from costing.price_book import PriceBook
from costing.reconciliation.allocation import TritonCompute, WindowResult, reconcile_window
from costing.reconciliation.triton_stats import TritonStatsPoller

log = logging.getLogger(__name__)


class WindowReconciler:
    """Reconciles and persists consecutive windows of ``window_s`` seconds for the pools of
    ``pollers`` (plus ``pools`` without Triton statistics)."""

    def __init__(
        self,
        ledger: LedgerBackend,
        book: PriceBook,
        pollers: Sequence[TritonStatsPoller],
        *,
        window_s: float,
        grace_s: float,
        pools: Iterable[str] = (),
        on_window: Callable[[WindowResult], object] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        if not 0 <= grace_s < window_s:
            raise ValueError(f"grace_s must be in [0, window_s), got {grace_s} for a window of {window_s}")
        self._ledger = ledger
        self._book = book
        self._pollers = tuple(pollers)
        self._pools = sorted({*pools, *(poller.pool for poller in self._pollers)})
        self._window_s = window_s
        self._grace_s = grace_s
        self._on_window = on_window
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.windows_stored = 0

    def start(self) -> None:
        """Launch the loop on the running event loop. The first window starts at the next boundary."""
        if self._task is not None:
            raise RuntimeError("WindowReconciler is already started")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="cost-reconciler")

    async def close(self) -> None:
        """Stop the loop. The window in progress is not stored (a partial window would clash
        with the full one another replica stores)."""
        if self._task is None:
            return
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None

    async def poll(self) -> dict[str, TritonCompute]:
        """Snapshot every pool; what each computed since its previous snapshot (none the first time)."""
        results = await asyncio.gather(*(poller.poll() for poller in self._pollers))
        return {poller.pool: result for poller, result in zip(self._pollers, results) if result is not None}

    async def reconcile(
        self, start: dt.datetime, end: dt.datetime, triton: Mapping[str, TritonCompute]
    ) -> WindowResult:
        """Reconcile [start, end) from the ledger and store it; returns what was computed."""
        return await asyncio.to_thread(self._reconcile_and_store, start, end, dict(triton))

    def _reconcile_and_store(
        self, start: dt.datetime, end: dt.datetime, triton: dict[str, TritonCompute]
    ) -> WindowResult:
        usage = self._ledger.owner_usage(start, end)
        result = reconcile_window(start, end, usage, self._book, pools=self._pools, triton=triton)
        stored = self._ledger.write_windows(result.windows, result.allocations)
        self.windows_stored += stored
        for window in result.windows:
            if window.attributed_vs_triton_difference is not None:
                log.info(
                    "window %s pool %s: attributed %.3f s vs Triton compute_infer %.3f s (%+.1f %%)",
                    start.isoformat(), window.pool, window.attributed_compute_ns / 1e9,
                    (window.triton_infer_ns or 0) / 1e9, 100 * window.attributed_vs_triton_difference,
                )  # fmt: skip
        return result

    async def _run(self) -> None:
        # Windows are numbered from the epoch: window k is [k * window_s, (k + 1) * window_s).
        index = math.floor(self._clock() / self._window_s) + 1
        await self._sleep_until(index * self._window_s)
        await self.poll()  # primes every poller at the window start
        while True:
            end_s = (index + 1) * self._window_s
            await self._sleep_until(end_s)
            triton = await self.poll()
            start, end = _moment(index * self._window_s), _moment(end_s)
            index += 1
            late_s = self._clock() - end_s
            if late_s > self._window_s / 2:
                log.warning("Triton snapshot %.1f s late: window %s skipped", late_s, start.isoformat())
                continue
            await asyncio.sleep(self._grace_s)
            try:
                result = await self.reconcile(start, end, triton)
                if self._on_window is not None:
                    self._on_window(result)
            except Exception:  # noqa: BLE001 - one failed window must not stop the next ones
                log.exception("reconciliation of the window starting %s failed", start.isoformat())

    async def _sleep_until(self, moment: float) -> None:
        delay = moment - self._clock()
        if delay > 0:
            await asyncio.sleep(delay)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _moment(epoch_s: float) -> dt.datetime:
    """A boundary as a datetime, to the microsecond (so that replicas compute the same key)."""
    return _EPOCH + dt.timedelta(microseconds=round(epoch_s * 1_000_000))
