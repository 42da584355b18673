"""Everything the gateway needs from costing, wired from the settings in one object.

    accounting = CostAccounting.from_settings(settings, book)     # settings: CostingSettings
    await accounting.start(triton_clients={"cpu-local": [aio_client, ...]},  # in the event loop
                           models=["recommender", "product_search"])
    settlement = Settlement(book, accounting.writer, pricer=accounting.pricer)  # records -> ledger, ...
    decision = accounting.should_shed(feature, tenant)   # before serving: RESOURCE_EXHAUSTED if .shed
    outcome = accounting.outcomes.build(...); await accounting.outcomes.record(outcome)
    rows = await accounting.report(["feature"], since, until)   # the CostReport RPC
    await accounting.close()                             # on shutdown: final flush, nothing lost

Each part also works alone (``LedgerWriter``, ``CostMetrics``, ``BudgetTracker``,
``OutcomeStore``, ``WindowBooker``, ``RequestPricer``); this module only assembles them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Mapping, Sequence

from costing.budgets import BudgetDecision, BudgetTracker, refresh_from_ledger
from costing.ledger import LedgerWriter, SqlLedger, open_ledger
from costing.ledger.journal import Journal
from costing.metrics import CostMetrics, MetricsServer, start_metrics_server
from costing.outcomes import OutcomeStore
from costing.price_book import PriceBook
from costing.reconciliation.booker import WindowBooker
from costing.reconciliation.booking import BookedWindow
from costing.reconciliation.replica import ReplicaMeter
from costing.reconciliation.triton_stats import StatsClient, TritonReader
from costing.report import ReportRow, build_report
from costing.request_pricer import RequestPricer
from costing.settings import CostingSettings

log = logging.getLogger(__name__)


def open_settings_ledger(settings: CostingSettings, *, create: bool = True) -> SqlLedger:
    """The ledger the settings name (``effective_ledger_url``, in ``ledger_schema``)."""
    return open_ledger(settings.effective_ledger_url(), create=create, schema=settings.ledger_schema)


class CostAccounting:
    """The ledger, its writer, the cost metrics, the budgets, the outcomes and the per-window
    reconciliation of one gateway process."""

    def __init__(self, settings: CostingSettings, book: PriceBook, ledger: SqlLedger, metrics: CostMetrics) -> None:
        self.settings = settings
        self.book = book
        self.ledger = ledger
        self.metrics = metrics
        self.budgets = BudgetTracker(settings.budgets, alert_ratios=settings.budget_alert_ratios, metrics=metrics)
        self.writer = LedgerWriter(
            ledger,
            settings.ledger_flush_interval_s,
            observers=(metrics.observe, self.budgets.observe),
            journal=Journal(settings.effective_journal_path()),
            on_state=lambda state, journalled: metrics.observe_ledger(state.value, journalled),
            max_pending=settings.ledger_max_pending,
            on_drop=metrics.ledger_dropped.inc,
        )
        self.outcomes = OutcomeStore(ledger, book.currency)
        self.meter = ReplicaMeter(book.gateway.provisioned_vcpus)
        self.pricer = RequestPricer(
            book, replica=self.meter.replica, egress_path=settings.egress_path, egress_paths=settings.egress_paths
        )
        self.reconciler: WindowBooker | None = None
        self._metrics_server: MetricsServer | None = None
        self._budget_task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls, settings: CostingSettings, book: PriceBook, metrics: CostMetrics | None = None
    ) -> CostAccounting:
        """Open the ledger the settings name (creating its schema); nothing runs until start()."""
        return cls(settings, book, open_settings_ledger(settings), metrics or CostMetrics())

    async def start(
        self,
        triton_clients: Mapping[str, Sequence[StatsClient]],
        models: Sequence[str],
        stats_headers: Mapping[str, str] | None = None,
    ) -> None:
        """Start the periodic ledger flush, the metrics exporter (``metrics_port``), the budget
        refresh and, with ``reconciliation_enabled``, the booking of windows: origin charges of
        the pools of ``triton_clients`` (pool name -> one tritonclient per endpoint, owned by the
        caller) per served model of ``models`` (an ensemble = its composing models;
        ``stats_headers`` go with every statistics call, e.g. Triton's admin key), of this
        gateway replica, the cache, egress, storage and operations."""
        settings = self.settings
        self.writer.start()
        self._metrics_server = start_metrics_server(self.metrics, settings.metrics_port, settings.metrics_host)
        if self.budgets.budgets:
            await self.refresh_budgets()
            self._budget_task = asyncio.get_running_loop().create_task(self._refresh_budgets_periodically())
        if settings.reconciliation_enabled:
            await self._start_reconciler(triton_clients, models, stats_headers)

    def should_shed(self, feature: str, tenant: str) -> BudgetDecision:
        """Whether a call of ``feature`` for ``tenant`` must be shed (RESOURCE_EXHAUSTED, with
        ``decision.message``) because a budget with ``shed`` is spent."""
        return self.budgets.should_shed(feature, tenant)

    async def refresh_budgets(self) -> None:
        """Re-read month-to-date spend from the ledger (records older than two flush intervals)."""
        lag_s = 2 * self.settings.ledger_flush_interval_s
        await asyncio.to_thread(refresh_from_ledger, self.budgets, self.ledger, lag_s)

    async def report(
        self,
        by: Sequence[str],
        since: dt.datetime | dt.date | None = None,
        until: dt.datetime | dt.date | None = None,
        tenant: str | None = None,
    ) -> list[ReportRow]:
        """The cost report rows (``costing.report.build_report``), off the event loop; one
        tenant's only when ``tenant`` is given."""
        return await asyncio.to_thread(build_report, self.ledger, by, since, until, tenant)

    async def request_tenant(self, request_id: str) -> str | None:
        """The tenant of a recorded request (None: no such request), whether its record is still
        buffered, written, or in the middle of a flush."""
        tenant = self.writer.pending_tenant(request_id)
        if tenant is None:
            tenant = await asyncio.to_thread(self.ledger.request_tenant, request_id)
        if tenant is None:
            await self.writer.flush()  # it may have been between the buffer and the database
            tenant = await asyncio.to_thread(self.ledger.request_tenant, request_id)
        return tenant

    async def close(self) -> None:
        """Stop everything and write what is buffered (raises if that last write fails); the
        last replica to stop books the last, partial window after its final flush."""
        if self.reconciler is not None:
            try:
                await self.writer.flush()
                flushed = True
            except Exception:  # noqa: BLE001 - the records are kept for the close below
                flushed = False
            await self.reconciler.close(final_booking=flushed)
        if self._budget_task is not None:
            self._budget_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._budget_task
        if self._metrics_server is not None:
            self._metrics_server.close()
        await self.writer.close()
        self.ledger.close()

    async def _start_reconciler(
        self,
        clients: Mapping[str, Sequence[StatsClient]],
        models: Sequence[str],
        headers: Mapping[str, str] | None,
    ) -> None:
        settings = self.settings
        if settings.reconciliation_grace_s < 2 * settings.ledger_flush_interval_s:
            log.warning(
                "reconciliation_grace_s %.1f s is under two ledger flush intervals (%.1f s): records written "
                "after their window is booked are booked in the next one, as late adjustments",
                settings.reconciliation_grace_s, 2 * settings.ledger_flush_interval_s,
            )  # fmt: skip
        readers = [
            TritonReader(pool_clients, models, pool, headers=headers)
            for pool, pool_clients in clients.items()
            if pool_clients
        ]
        await asyncio.to_thread(self._learn_last_window)
        self.reconciler = WindowBooker(
            self.ledger,
            self.book,
            readers,
            self.meter,
            window_s=settings.reconciliation_window_s,
            grace_s=settings.reconciliation_grace_s,
            on_booked=self._observe_window,
        )
        await self.reconciler.start()

    def _learn_last_window(self) -> None:
        last = self.ledger.booked_until()
        if last is not None:
            self.pricer.learn(charge for charge in self.ledger.charges(since=last - dt.timedelta(days=1)))

    def _observe_window(self, result: BookedWindow) -> None:
        self.pricer.learn(result.charges)
        for charge in result.charges:
            if charge.kind != "compute" or not charge.model:
                continue
            used = charge.direct_pico + charge.overhead_pico
            unmetered = charge.overhead_pico / used if used else 0.0
            self.metrics.observe_difference(charge.pool, -unmetered)
            if unmetered > self.settings.reconciliation_tolerance:
                log.info(
                    "%s window %s: requests metered %.1f %% of the compute Triton measured",
                    charge.resource, charge.window_start.isoformat(), 100 * (1 - unmetered),
                )  # fmt: skip

    async def _refresh_budgets_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.settings.budget_refresh_s)
            try:
                await self.refresh_budgets()
            except Exception:  # noqa: BLE001 - keep the last figures; try again next time
                log.exception("budget refresh from the ledger failed")
