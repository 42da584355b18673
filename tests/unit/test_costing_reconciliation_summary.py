"""The reconciliation summary and tie-out over hand-made charges stored in a real SQLite ledger:
sums per resource over windows, the last window's carry, whether each charge's allocations add
up to it, the metered share, and Σ allocated against Σ origin charges per currency."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from pathlib import Path

import pytest

from costing.ledger import SqliteLedger
from costing.records import AllocatedCharge, Booking, OriginCharge
from costing.reconciliation.summary import resource_summary, tie_out

A = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
B = A + dt.timedelta(minutes=1)
C = B + dt.timedelta(minutes=1)


def charge(start, resource, kind, *, direct=0, overhead=0, idle=0, provisioned=0, carry=0, late=0, requests=0,
           quantity=0, measured=None, currency="USD", model="") -> OriginCharge:  # fmt: skip
    return OriginCharge(
        window_start=start, window_end=start + dt.timedelta(minutes=1), resource=resource, kind=kind,
        pool=resource.split("/")[1] if kind == "compute" else kind, model=model, device="cpu", currency=currency,
        price_book_version="v1", provisioned_pico=provisioned, capacity_pico=direct + overhead + idle, direct_pico=direct,
        overhead_pico=overhead, idle_pico=idle, adjustment_pico=0, carry_pico=carry, requests=requests,
        usage_quantity=quantity, usage_unit="ns", measured_quantity=measured, late_direct_pico=late,
    )  # fmt: skip


def allocated(start, resource, kind, feature, direct=0, overhead=0, idle=0, currency="USD") -> AllocatedCharge:
    return AllocatedCharge(
        window_start=start, resource=resource, feature=feature, tenant="acme", model="recommender", late=False,
        kind=kind, pool="p", device="cpu", currency=currency, method="compute-share", requests=1, usage_quantity=0,
        direct_pico=direct, overhead_pico=overhead, idle_pico=idle,
    )  # fmt: skip


REC = "triton/cpu-local/recommender"


@pytest.fixture
def ledger(tmp_path: Path):
    """Window A: the recommender's charge (allocated 3:1 exactly) and the gateway's. Window B:
    the recommender again (its allocations 1 pico-$ short of the idle), storage, an egress path
    that cost nothing, and a cache charge in EUR."""
    a = [
        charge(A, REC, "compute", direct=4_000, overhead=1_000, idle=5_000, provisioned=10_000, requests=3, quantity=4_000,
               measured=5_000, model="recommender"),
        charge(A, "gateway/r1", "gateway", direct=200, requests=3, quantity=2_000_000_000),
    ]  # fmt: skip
    a_allocated = [
        allocated(A, REC, "compute", "home_feed", 3_000, 750, 3_750),
        allocated(A, REC, "compute", "cart", 1_000, 250, 1_250),
        allocated(A, "gateway/r1", "gateway", "home_feed", 200),
    ]
    b = [
        charge(B, REC, "compute", direct=6_000, idle=4_000, provisioned=10_000, carry=-500, late=1_000, requests=2,
               quantity=6_000, measured=5_500, model="recommender"),
        charge(B, "storage", "storage", overhead=300, provisioned=300),
        charge(B, "egress/same_zone", "egress", quantity=5_000),
        charge(B, "cache/redis", "cache", direct=50, currency="EUR"),
    ]  # fmt: skip
    b_allocated = [
        allocated(B, REC, "compute", "home_feed", 6_000, 0, 3_000),
        allocated(B, REC, "compute", "cart", 0, 0, 999),
        allocated(B, "storage", "storage", "__unallocated__", 0, 300),
        allocated(B, "cache/redis", "cache", "home_feed", 50, currency="EUR"),
    ]
    with SqliteLedger(tmp_path / "ledger.sqlite") as opened:
        for start, charges, allocations in ((A, a, a_allocated), (B, b, b_allocated)):
            end = start + dt.timedelta(minutes=1)
            booking = Booking(window_end=end, window_start=start, kind="window", booked_at=end, booked_by="r1",
                              price_book_version="v1", currency="USD", state="")  # fmt: skip
            opened.book(lambda cursor, x=(booking, charges, allocations): cursor.store(*x))
        yield opened


def test_each_resource_is_summed_over_its_windows(ledger: SqliteLedger) -> None:
    summary = {(item.resource, item.currency): item for item in resource_summary(ledger)}
    assert list(summary) == [
        ("cache/redis", "EUR"), ("egress/same_zone", "USD"), ("gateway/r1", "USD"), ("storage", "USD"), (REC, "USD"),
    ]  # fmt: skip
    rec = summary[(REC, "USD")]
    assert (rec.kind, rec.pool, rec.model, rec.windows, rec.requests) == ("compute", "cpu-local", "recommender", 2, 5)
    assert (rec.provisioned_pico, rec.capacity_pico, rec.direct_pico, rec.overhead_pico, rec.idle_pico) == (
        20_000, 20_000, 10_000, 1_000, 9_000,
    )  # fmt: skip
    assert (rec.carry_pico, rec.late_direct_pico, rec.usage_quantity, rec.measured_quantity) == (-500, 1_000, 10_000, 10_500)
    assert rec.identity_exact is False, "window B's allocations are 1 pico-$ short of its idle"
    assert rec.metered_share == Fraction(10, 11) and rec.metered_seconds == 10_000 / 1e9
    gateway = summary[("gateway/r1", "USD")]
    assert (gateway.windows, gateway.measured_quantity, gateway.identity_exact) == (1, None, True)
    assert (gateway.metered_share, gateway.metered_seconds) == (1, 2.0)
    storage = summary[("storage", "USD")]
    assert (storage.metered_share, storage.metered_seconds, storage.identity_exact) == (0, 0.0, True)
    egress = summary[("egress/same_zone", "USD")]
    assert (egress.metered_share, egress.metered_seconds, egress.usage_quantity) == (None, 0.0, 5_000)
    assert egress.identity_exact is True, "a charge of nothing, allocated nothing"
    assert summary[("cache/redis", "EUR")].identity_exact is True


def test_a_range_takes_the_windows_that_start_in_it(ledger: SqliteLedger) -> None:
    (rec,) = [item for item in resource_summary(ledger, B, C) if item.resource == REC]
    assert (rec.windows, rec.direct_pico, rec.carry_pico, rec.identity_exact) == (1, 6_000, -500, False)
    (only_a,) = [item for item in resource_summary(ledger, A, B) if item.resource == REC]
    assert (only_a.windows, only_a.carry_pico, only_a.identity_exact) == (1, 0, True)


def test_the_tie_out_compares_allocated_and_origin_per_currency(ledger: SqliteLedger) -> None:
    """USD: origin 10_000 + 200 + 10_000 + 300 + 0 = 20_500, allocated 20_499 (1 short), direct
    4_000 + 200 + 6_000 = 10_200; EUR: 50 each."""
    eur, usd = tie_out(ledger)
    assert (eur.currency, eur.origin_pico, eur.allocated_pico, eur.direct_pico, eur.difference_pico) == ("EUR", 50, 50, 50, 0)
    assert (usd.currency, usd.origin_pico, usd.allocated_pico, usd.direct_pico, usd.difference_pico) == (
        "USD", 20_500, 20_499, 10_200, -1,
    )  # fmt: skip
    (a_only,) = [t for t in tie_out(ledger, A, B)]
    assert (a_only.currency, a_only.origin_pico, a_only.allocated_pico, a_only.difference_pico) == ("USD", 10_200, 10_200, 0)


def test_the_tie_out_shows_a_currency_charged_but_not_allocated_and_the_reverse(tmp_path: Path) -> None:
    """A broken ledger: a JPY charge that nothing was allocated from, and GBP allocations of no
    charge. The tie-out states both, with the difference."""
    with SqliteLedger(tmp_path / "broken.sqlite") as ledger:
        booking = Booking(window_end=B, window_start=A, kind="window", booked_at=B, booked_by="r1",
                          price_book_version="v1", currency="USD", state="")  # fmt: skip
        charges = [charge(A, "cache/redis", "cache", direct=70, idle=30, currency="JPY")]
        allocations = [allocated(A, "storage", "storage", "home_feed", 0, 40, currency="GBP")]
        ledger.book(lambda cursor: cursor.store(booking, charges, allocations))
        gbp, jpy = tie_out(ledger)
    assert (gbp.currency, gbp.origin_pico, gbp.allocated_pico, gbp.direct_pico, gbp.difference_pico) == ("GBP", 0, 40, 0, 40)
    assert (jpy.currency, jpy.origin_pico, jpy.allocated_pico, jpy.direct_pico, jpy.difference_pico) == ("JPY", 100, 0, 70, -100)
