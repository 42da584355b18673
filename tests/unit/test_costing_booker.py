"""The booker: contiguous windows on the clock (partial first and last ones), booked once by
whichever replica gets there first, the gap while no gateway ran booked when one starts again,
and the accounting that wires it into a gateway process."""

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
from costing.money import NS_PER_HOUR, PICO_PER_UNIT, exact, round_half_up
from costing.price_book import load_price_book
from costing.reconciliation.booker import WindowBooker
from costing.reconciliation.replica import ReplicaMeter
from costing.reconciliation.summary import resource_summary, tie_out
from costing.reconciliation.triton_stats import TritonReader
from costing.settings import CostingSettings
from tests.support import port_for_later_bind

BOOK = Path(__file__).resolve().parents[2] / "costing" / "price_book.toml"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
RATE = exact(0.044625) * PICO_PER_UNIT / NS_PER_HOUR  # cpu-local in the default book, pico-$ per ns
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

    async def get_model_config(self, model_name: str, as_json: bool = False) -> dict[str, Any]:
        return {"config": {"backend": "python"}}


def booker(ledger: SqliteLedger, triton: MeasuringTriton, name: str, window_s: float = 0.4) -> WindowBooker:
    return WindowBooker(
        ledger, load_price_book(BOOK), [TritonReader([triton], ["recommender"], "cpu-local")],
        ReplicaMeter(0.5, replica=name), window_s=window_s, grace_s=0.1,
    )  # fmt: skip


def assert_contiguous(ledger: SqliteLedger) -> list:
    bookings = ledger.bookings()
    assert bookings[0].kind == "opening" and bookings[0].window_start == bookings[0].window_end
    for earlier, later in zip(bookings, bookings[1:]):
        assert later.window_start == earlier.window_end, "every booking starts where the last one ended"
    return bookings


async def test_windows_are_booked_on_the_clock_contiguous_and_exact(tmp_path: Path) -> None:
    triton = MeasuringTriton()
    with SqliteLedger(tmp_path / "ledger.sqlite") as ledger:
        first, second = booker(ledger, triton, "replica-a"), booker(ledger, triton, "replica-b")
        await first.start()
        await second.start()  # a second replica on the same ledger: every window is booked once
        deadline = asyncio.get_running_loop().time() + 2.4
        index = 0
        while asyncio.get_running_loop().time() < deadline:
            compute_ns = 1_000_000 + index
            record = make_record(
                index, timestamp=dt.datetime.now(dt.UTC), compute_ns=compute_ns, replica="replica-a",
                cost_compute_pico=round_half_up(RATE * compute_ns),
            )  # fmt: skip
            ledger.write([record])  # a ledger written at once: the grace covers a real writer's flush
            triton.run(record.compute_ns)
            index += 1
            await asyncio.sleep(0.01)
        await second.close()  # replica-a still runs: no partial window yet
        await first.close()  # the last one books the last, partial window
        bookings = assert_contiguous(ledger)
        windows = bookings[1:]
        assert len(windows) >= 5
        assert sum(b.booked_by == "replica-a" for b in windows) and sum(b.booked_by == "replica-b" for b in windows)
        for window in windows[1:-1]:  # whole windows: aligned to the clock from the epoch
            assert window.window_end - window.window_start == dt.timedelta(seconds=0.4)
            assert (window.window_start - EPOCH) % dt.timedelta(seconds=0.4) == dt.timedelta(0)
        assert ledger.unbooked() == (0, 0), "every record is booked, the last ones by the final window"
        (charge,) = [s for s in resource_summary(ledger) if s.resource == "triton/cpu-local/recommender"]
        assert charge.identity_exact and charge.requests == index
        # What the requests metered and the overhead add up to Triton's measure x price exactly,
        # less any metered excess still carried at the end (carry <= 0).
        assert charge.direct_pico + charge.overhead_pico + charge.carry_pico == round_half_up(RATE * triton.infer_ns)
        assert charge.measured_quantity == triton.infer_ns
        (tied,) = tie_out(ledger)
        assert tied.difference_pico == 0


async def test_a_stretch_without_any_gateway_is_booked_when_one_starts_again(tmp_path: Path) -> None:
    triton = MeasuringTriton()
    with SqliteLedger(tmp_path / "ledger.sqlite") as ledger:
        before = booker(ledger, triton, "before", window_s=0.3)
        await before.start()
        await asyncio.sleep(0.5)
        await before.close()
        stopped_at = ledger.booked_until()
        await asyncio.sleep(1.0)  # nobody runs for over three windows
        triton.run(1_000_000)  # someone else's work on the pool meanwhile: booked, unallocated
        after = booker(ledger, triton, "after", window_s=0.3)
        await after.start()
        started = dt.datetime.now(dt.UTC)
        await asyncio.sleep(0.5)
        await after.close()
        bookings = assert_contiguous(ledger)
        (gap,) = [b for b in bookings if b.window_start == stopped_at]
        assert gap.booked_by == "after" and gap.window_end <= started
        assert (gap.window_end - gap.window_start).total_seconds() >= 0.9
        gap_charges = {c.resource: c for c in ledger.charges() if c.window_start == stopped_at}
        assert gap_charges["triton/cpu-local/recommender"].overhead_pico > 0
        assert gap_charges["storage"].capacity_pico > 0 and "gateway/before" not in gap_charges


def test_booker_settings_are_checked(tmp_path: Path) -> None:
    with SqliteLedger(tmp_path / "l.sqlite") as ledger:
        with pytest.raises(ValueError, match="grace_s"):
            WindowBooker(ledger, load_price_book(BOOK), [], ReplicaMeter(0.5), window_s=1, grace_s=1)
        with pytest.raises(ValueError, match="window_s"):
            WindowBooker(ledger, load_price_book(BOOK), [], ReplicaMeter(0.5), window_s=0, grace_s=0)


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
            accounting.writer.record(make_record(index, timestamp=now, cost_compute=1e-7, cost_gateway=0.0, cost_cache=0.0))
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
        assert any(c.pool == "cpu-local" for c in ledger.charges())
        assert {c.resource for c in ledger.charges()} >= {f"gateway/{accounting.meter.replica}", "cache/redis", "storage"}
        assert ledger.unbooked() == (0, 0), "the last replica books the last, partial window on close"
    assert rows[-1].requests == 100 and rows[-1].conversions == 1 and rows[-1].revenue == 9.5
