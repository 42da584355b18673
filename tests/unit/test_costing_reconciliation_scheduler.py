"""The reconciliation loop on the clock: windows aligned to boundaries, persisted with their
allocations, the identity exact in every window; and CostAccounting, which wires it all."""

from __future__ import annotations

import asyncio
import datetime as dt
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from test_costing_ledger import make_record

from costing.accounting import CostAccounting
from costing.budgets import BudgetConfig
from costing.ledger import SqliteLedger
from costing.price_book import load_price_book
from costing.reconciliation.scheduler import WindowReconciler
from costing.reconciliation.summary import reconciliation_summary
from costing.reconciliation.triton_stats import TritonStatsPoller
from costing.settings import CostingSettings
from tests.support import port_for_later_bind

BOOK = Path(__file__).resolve().parents[2] / "costing" / "price_book.toml"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
TRITON_OVER_ATTRIBUTED = 1.25  # the fake Triton measures 25 % more than the requests (its IPC)


class MeasuringTriton:
    """A fake aio Triton whose compute_infer grows with every request the test records."""

    def __init__(self) -> None:
        self.executions = 0
        self.infer_ns = 0

    def run(self, compute_ns: int) -> None:
        self.executions += 1
        self.infer_ns += round(compute_ns * TRITON_OVER_ATTRIBUTED)

    async def get_inference_statistics(self, model_name: str = "", as_json: bool = False, **_: Any) -> dict[str, Any]:
        count, ns = str(self.executions), str(self.infer_ns)
        batch = {"batch_size": "1", "compute_infer": {"count": count, "ns": ns}}
        stats = {"name": "recommender", "execution_count": count, "inference_count": count, "batch_stats": [batch]}
        return {"model_stats": [stats]}


async def test_windows_are_reconciled_and_stored_on_the_clock(tmp_path: Path) -> None:
    triton = MeasuringTriton()
    with SqliteLedger(tmp_path / "ledger.sqlite") as ledger:
        reconciler = WindowReconciler(
            ledger, load_price_book(BOOK), [TritonStatsPoller([triton], ["recommender"], "cpu-local")],
            window_s=0.4, grace_s=0.1,
        )  # fmt: skip
        reconciler.start()
        deadline = asyncio.get_running_loop().time() + 2.4
        index = 0
        while asyncio.get_running_loop().time() < deadline:
            record = make_record(index, timestamp=dt.datetime.now(dt.UTC), compute_ns=1_000_000 + index)
            ledger.write([record])  # a ledger written at once: the grace covers a real writer's flush
            triton.run(record.compute_ns)
            index += 1
            await asyncio.sleep(0.01)
        await reconciler.close()
        windows = [w for w in ledger.windows() if w.pool == "cpu-local"]
        assert len(windows) >= 3 and reconciler.windows_stored >= 6  # cpu-local + shared per window
        for window in windows:
            assert window.window_end - window.window_start == dt.timedelta(seconds=0.4)
            assert (window.window_start - EPOCH) % dt.timedelta(seconds=0.4) == dt.timedelta(
                0
            )  # aligned: replicas agree
            assert window.triton_infer_ns and window.requests > 0
        (cpu,) = [pool for pool in reconciliation_summary(ledger) if pool.pool == "cpu-local"]
        assert cpu.identity_exact
        # Records and snapshots are a few ms apart at the boundaries; over the windows the
        # measured difference is the fake's 1/1.25 - 1 = -20 %.
        assert cpu.attributed_vs_triton_difference == pytest.approx(1 / TRITON_OVER_ATTRIBUTED - 1, abs=0.03)


def test_reconciler_settings_are_checked(tmp_path: Path) -> None:
    with SqliteLedger(tmp_path / "l.sqlite") as ledger:
        with pytest.raises(ValueError, match="grace_s"):
            WindowReconciler(ledger, load_price_book(BOOK), [], window_s=1, grace_s=1)
        with pytest.raises(ValueError, match="window_s"):
            WindowReconciler(ledger, load_price_book(BOOK), [], window_s=0, grace_s=0)


async def test_cost_accounting_wires_ledger_metrics_budgets_outcomes_and_reports(tmp_path: Path) -> None:
    port = port_for_later_bind()
    settings = CostingSettings(
        ledger_path=tmp_path / "ledger.sqlite", ledger_flush_interval_s=0.05, metrics_port=port,
        budgets=[BudgetConfig(scope="feature", name="home-feed", usd_per_month=1e-6, shed=True)],
        reconciliation_window_s=0.5, reconciliation_grace_s=0.15,
    )  # fmt: skip
    assert settings.effective_ledger_url() == f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    triton = MeasuringTriton()
    accounting = CostAccounting.from_settings(settings, load_price_book(BOOK))
    await accounting.start(triton_clients={"cpu-local": [triton]}, models=("recommender", "product_search"))
    try:
        now = dt.datetime.now(dt.UTC)
        assert not accounting.should_shed("home-feed", "acme").shed
        for index in range(100):
            accounting.writer.record(make_record(index, timestamp=now, cost_total=1e-7))
        decision = accounting.should_shed("home-feed", "acme")
        assert decision.shed and "home-feed" in decision.message  # 1e-5 spent of 1e-6
        outcome = accounting.outcomes.build("o-1", "req-000001", "purchase", revenue=9.5)
        assert await accounting.outcomes.record(outcome) and not await accounting.outcomes.record(outcome)
        with pytest.raises(ValueError, match="currency"):
            accounting.outcomes.build("o-2", "req-000001", "purchase", revenue=1.0, currency="EUR")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert "tollgate_budget_alerts_total" in response.read().decode()
        await asyncio.sleep(1.3)  # at least one reconciled window
        rows = await accounting.report(["feature"])
    finally:
        await accounting.close()
    assert accounting.metrics.total(accounting.metrics.requests) == 100
    with SqliteLedger(settings.ledger_path, create=False) as ledger:
        assert ledger.count() == 100 and len(ledger.outcomes()) == 1
        assert any(w.pool == "cpu-local" for w in ledger.windows())
    assert rows[-1].requests == 100 and rows[-1].conversions == 1 and rows[-1].revenue == 9.5
