"""Monthly budgets: alerts at 80 % and 100 % (log + metric, once each), shedding, month
rollover, and the month-to-date baseline from the shared ledger without double counting."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
from test_costing_ledger import make_record

from costing.budgets import ALLOW, BudgetConfig, BudgetTracker, refresh_from_ledger
from costing.ledger import SqliteLedger
from costing.metrics import CostMetrics

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
FEED = BudgetConfig(scope="feature", name="home_feed", usd_per_month=10.0, shed=True)
ACME = BudgetConfig(scope="tenant", name="acme", usd_per_month=100.0)


def spend(index: int, amount: float, *, feature: str = "home_feed", tenant: str = "acme", at: dt.datetime = NOW):
    return make_record(
        index, feature=feature, tenant=tenant, cost_compute=amount, cost_gateway=0.0, cost_cache=0.0, timestamp=at
    )


def tracker(metrics: CostMetrics | None = None, now: dt.datetime = NOW) -> BudgetTracker:
    return BudgetTracker([FEED, ACME], metrics=metrics, clock=lambda: now)


def gauge(metrics: CostMetrics, name: str) -> float:
    return next(s.value for f in metrics.budget_used.collect() for s in f.samples if s.labels["name"] == name)


def test_alerts_at_80_and_100_percent_once_each(caplog: pytest.LogCaptureFixture) -> None:
    metrics = CostMetrics()
    budgets = tracker(metrics)
    assert budgets.observe(spend(0, 7.9)) == []
    assert gauge(metrics, "home_feed") == pytest.approx(0.79)
    with caplog.at_level(logging.WARNING, logger="costing.budgets"):
        (alert,) = budgets.observe(spend(1, 0.2))
    assert (alert.scope, alert.name, alert.threshold, alert.month) == ("feature", "home_feed", 0.8, "2026-11")
    assert alert.spent == pytest.approx(8.1) and "81 %" in caplog.text
    assert budgets.observe(spend(2, 0.1)) == []  # still above 80 %: no second alert
    (alert,) = budgets.observe(spend(3, 5.0))
    assert alert.threshold == 1.0
    assert metrics.total(metrics.budget_alerts) == 2
    assert budgets.spent("tenant", "acme") == pytest.approx(13.2)  # the tenant's budget counts it too


def test_a_spent_budget_with_shed_sheds_only_its_own_traffic() -> None:
    budgets = tracker()
    budgets.observe(spend(0, 9.99))
    assert budgets.should_shed("home_feed", "acme") == ALLOW
    budgets.observe(spend(1, 0.01))
    decision = budgets.should_shed("home_feed", "globex")
    assert decision.shed and (decision.scope, decision.name) == ("feature", "home_feed")
    assert "home_feed" in decision.message and "10 of 10" in decision.message
    assert not budgets.should_shed("cart_upsell", "acme").shed  # other features go on
    # acme is over its budget without shed: alerts, but its traffic is served.
    budgets.observe(spend(2, 95.0, feature="search_box"))
    assert budgets.spent("tenant", "acme") >= 100 and not budgets.should_shed("search_box", "acme").shed


def test_a_new_month_starts_from_zero() -> None:
    moment = [NOW]
    budgets = BudgetTracker([FEED], clock=lambda: moment[0])
    budgets.observe(spend(0, 20.0))
    assert budgets.should_shed("home_feed", "acme").shed
    moment[0] = dt.datetime(2026, 12, 1, 0, 0, 1, tzinfo=dt.UTC)
    assert budgets.spent("feature", "home_feed") == 0.0 and not budgets.should_shed("home_feed", "acme").shed
    (alert,) = budgets.observe(spend(1, 8.0, at=moment[0]))  # alerts fire again in the new month
    assert alert.month == "2026-12"
    assert budgets.observe(spend(2, 50.0, at=NOW)) == []  # a late record of last month does not count


def test_the_ledger_baseline_counts_other_replicas_and_restarts_without_double_counting(tmp_path: Path) -> None:
    with SqliteLedger(tmp_path / "ledger.sqlite") as ledger:
        earlier = NOW - dt.timedelta(days=3)
        ledger.write([spend(0, 4.0, at=earlier), spend(1, 3.0, at=earlier, tenant="globex")])  # another replica
        ledger.write([spend(2, 100.0, at=dt.datetime(2026, 10, 31, 23, 59, tzinfo=dt.UTC))])  # last month
        budgets = tracker()
        local = spend(3, 1.0, at=NOW - dt.timedelta(seconds=1))
        budgets.observe(local)  # recorded here, not yet flushed
        (alert,) = refresh_from_ledger(budgets, ledger, lag_s=5, now=NOW)
        assert budgets.spent("feature", "home_feed") == pytest.approx(4.0 + 3.0 + 1.0)
        assert alert.threshold == 0.8 and alert.spent == pytest.approx(8.0)  # crossed by the baseline
        assert budgets.spent("tenant", "acme") == pytest.approx(5.0)

        ledger.write([local])  # flushed; a later refresh moves it into the baseline, once
        assert refresh_from_ledger(budgets, ledger, lag_s=5, now=NOW + dt.timedelta(seconds=10)) == []
        assert budgets.spent("feature", "home_feed") == pytest.approx(8.0)  # not 9.0
        assert budgets.observe(spend(4, 0.5, at=NOW + dt.timedelta(seconds=11))) == []
        assert budgets.spent("feature", "home_feed") == pytest.approx(8.5)


def test_budgets_are_validated() -> None:
    with pytest.raises(ValueError):
        BudgetConfig(scope="model", name="x", usd_per_month=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        BudgetConfig(scope="feature", name="x", usd_per_month=0)
    with pytest.raises(ValueError, match="two budgets"):
        BudgetTracker([FEED, FEED])


def test_a_fully_loaded_budget_counts_the_allocated_charges_of_booked_windows(tmp_path: Path) -> None:
    """home_feed's budget on fully-loaded cost: the allocated charges of this month's booked
    windows (overhead, idle, fixed costs included) plus the direct cost of what no window booked
    yet; acme's direct budget ignores the allocations."""
    from costing.price_book import load_price_book
    from costing.reconciliation.booking import BookingState, book_window, opening

    book = load_price_book(Path(__file__).resolve().parents[2] / "costing" / "price_book.toml")
    loaded = BudgetConfig(scope="feature", name="home_feed", usd_per_month=10.0, basis="fully_loaded")
    start = NOW - dt.timedelta(hours=1)
    with SqliteLedger(tmp_path / "ledger.sqlite") as ledger:
        ledger.write([spend(0, 0.001, at=start + dt.timedelta(minutes=1))])  # booked below
        ledger.book(lambda cursor: cursor.store(opening(start, book, "r", {}), [], []))

        def work(cursor):
            usage = cursor.take_records(start, start + dt.timedelta(minutes=30))
            result = book_window(start, start + dt.timedelta(minutes=30), usage, book, BookingState(), triton={})
            cursor.store(result.booking, result.charges, result.allocated)
            return result

        booked = ledger.book(work)
        ledger.write([spend(1, 0.002, at=NOW - dt.timedelta(minutes=5))])  # not booked yet
        budgets = BudgetTracker([loaded, ACME], clock=lambda: NOW)
        refresh_from_ledger(budgets, ledger, lag_s=5, now=NOW)
    allocated = sum(a.total_pico for a in booked.allocated if a.feature == "home_feed")
    # 30 minutes of operations and storage alone are far more than the window's direct cost.
    assert allocated > 1_000_000_000 * 100
    assert budgets.spent_pico("feature", "home_feed") == allocated + 2_000_000_000
    assert budgets.spent_pico("tenant", "acme") == 1_000_000_000 + 2_000_000_000  # direct only
