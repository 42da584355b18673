"""Exact money: decimal prices read exactly, and allocations that add up to the unit."""

from __future__ import annotations

import datetime as dt
import random
import time
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from costing.money import (
    pico_of,
    PICO_PER_UNIT,
    allocate,
    decimal_text,
    exact,
    from_pico,
    month_bounds,
    ns_since_epoch,
    prorate_hourly,
    prorate_monthly,
    to_pico,
)


def test_prices_are_read_as_the_decimals_they_were_written_as() -> None:
    assert exact(0.044625) == Fraction(44625, 1_000_000)
    assert exact(0.1) + exact(0.2) == exact(0.3)  # not the binary 0.30000000000000004
    assert to_pico(0.044625) == 44_625_000_000
    assert to_pico(Fraction(1, 3)) == 333_333_333_333
    assert to_pico(Fraction(1, 2 * PICO_PER_UNIT)) == 1  # half a pico rounds up
    assert from_pico(1_500_000_000_000) == 1.5
    with pytest.raises(ValueError):
        exact(float("nan"))


def test_allocation_is_proportional_and_adds_up() -> None:
    assert allocate(100, {"a": 1, "b": 1, "c": 2}) == {"a": 25, "b": 25, "c": 50}
    assert allocate(0, {"a": 3, "b": 0}) == {"a": 0, "b": 0}
    # 10 / 3: the remainder unit goes to the largest fractional part, ties to the smaller key.
    assert allocate(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}
    assert allocate(11, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 4, "c": 3}
    assert allocate(7, {"x": 2, "y": 5}) == {"x": 2, "y": 5}
    assert allocate(1, {"x": 1, "y": 2}) == {"x": 0, "y": 1}  # 1/3 vs 2/3


def test_allocation_is_exact_and_deterministic_on_random_cases() -> None:
    rng = random.Random(7)
    for _ in range(500):
        weights = {f"owner-{index}": rng.randrange(0, 10**12) for index in range(rng.randrange(1, 12))}
        weights["owner-0"] += 1  # at least one positive weight
        amount = rng.randrange(0, 10**15)
        parts = allocate(amount, weights)
        assert sum(parts.values()) == amount
        assert parts == allocate(amount, dict(reversed(list(weights.items()))))  # order of keys does not matter
        total = sum(weights.values())
        for key, weight in weights.items():
            assert abs(parts[key] - Fraction(amount * weight, total)) < 1  # never off by a whole unit


@pytest.mark.parametrize("weights", [{}, {"a": 0}, {"a": -1, "b": 2}])
def test_allocation_needs_positive_weights(weights: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        allocate(10, weights)


def test_monthly_prices_follow_calendar_months_to_the_unit() -> None:
    """Σ of any contiguous windows over February, and over a 31-day month, is the monthly
    price exactly: no 730-hour month (which made February 7.9 % low and a 31-day month 1.9 % high)."""
    monthly = Fraction(55_113, 100)  # 551.13 $
    for first, following in ((dt.datetime(2026, 2, 1, tzinfo=dt.UTC), dt.datetime(2026, 3, 1, tzinfo=dt.UTC)),
                             (dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 2, 1, tzinfo=dt.UTC))):  # fmt: skip
        windows = []
        moment = first
        while moment < following:  # minute windows, with a few odd partial ones
            step = dt.timedelta(minutes=1) if moment.minute % 7 else dt.timedelta(seconds=37)
            end = min(following, moment + step)
            windows.append(prorate_monthly(monthly, moment, end))
            moment = end
        assert sum(windows) == to_pico(monthly) == 551_130_000_000_000
    # Half of February (14 of 28 days) is half the price; half of January less.
    feb = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    assert prorate_monthly(Fraction(28), feb, feb + dt.timedelta(days=14)) == 14 * PICO_PER_UNIT
    jan = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert prorate_monthly(Fraction(31), jan, jan + dt.timedelta(days=14)) == 14 * PICO_PER_UNIT
    # A span across a month end takes each month's share at its own length.
    assert prorate_monthly(Fraction(28), feb - dt.timedelta(days=1), feb + dt.timedelta(days=1)) == to_pico(
        Fraction(28, 31) + 1
    )


@given(st.lists(st.integers(1, 10**6), min_size=1, max_size=40), st.integers(0, 10**6))
def test_contiguous_windows_add_up_to_the_span_exactly(steps_ms: list[int], offset_ms: int) -> None:
    start = dt.datetime(2026, 11, 30, tzinfo=dt.UTC) + dt.timedelta(milliseconds=offset_ms)
    moments = [start]
    for step in steps_ms:
        moments.append(moments[-1] + dt.timedelta(milliseconds=step))
    hourly, monthly = Fraction(44_625, 1_000_000), Fraction(605_125, 1_000)
    assert sum(prorate_hourly(hourly, a, b) for a, b in zip(moments, moments[1:])) == prorate_hourly(
        hourly, moments[0], moments[-1]
    )
    assert sum(prorate_monthly(monthly, a, b) for a, b in zip(moments, moments[1:])) == prorate_monthly(
        monthly, moments[0], moments[-1]
    )


def test_exact_amounts_print_as_plain_decimals() -> None:
    assert decimal_text(1) == "0.000000000001"
    assert decimal_text(1_500_000_000_000) == "1.5"
    assert decimal_text(-20_000_000) == "-0.00002"
    assert decimal_text(0) == "0.0"
    assert allocate(-10, {"a": 1, "b": 1, "c": 1}) == {"a": -4, "b": -3, "c": -3}


def test_decimal_text_and_decimals_are_read_exactly_too() -> None:
    assert exact("0.044625") == Fraction(44_625, 1_000_000)
    assert exact(Decimal("0.1")) == Fraction(1, 10)
    assert exact(Fraction(2, 3)) == Fraction(2, 3) and exact(7) == 7
    with pytest.raises(ValueError) as raised:
        exact(float("inf"))
    assert str(raised.value) == "not a finite amount: inf"


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({}, "cannot allocate by weights that sum to 0"),
        ({"a": 0}, "cannot allocate by weights that sum to 0"),
        ({"a": -1, "b": 2}, "allocation weights must not be negative"),
    ],
)
def test_allocation_refusals_say_why(weights: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        allocate(10, weights)
    assert str(raised.value) == message


def test_a_tie_goes_to_the_smaller_key_whatever_the_order_given() -> None:
    assert allocate(1, {"b": 1, "a": 1}) == {"a": 1, "b": 0}
    assert allocate(2, {"c": 1, "b": 1, "a": 1}) == {"a": 1, "b": 1, "c": 0}


def test_moments_count_in_nanoseconds_whatever_their_time_zone() -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    moment = dt.datetime(1970, 1, 1, 2, 0, 1, 123_456, tzinfo=plus_two)  # 00:00:01.123456 UTC
    assert ns_since_epoch(moment) == 1_123_456_000


@pytest.fixture
def far_east_local_time(monkeypatch: pytest.MonkeyPatch):
    """The machine's local time zone set to UTC+14 (Kiribati) for the test, then restored."""
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_calendar_months_are_utc_months_whatever_the_local_time_zone(far_east_local_time: None) -> None:
    """Nov 30 12:00 UTC is already Dec 1 in Kiribati: it is still November's."""
    first, following = month_bounds(dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC))
    assert (first, following) == (dt.datetime(2026, 11, 1, tzinfo=dt.UTC), dt.datetime(2026, 12, 1, tzinfo=dt.UTC))


@pytest.mark.parametrize(
    ("rate", "per"),
    [(Fraction(44625, 1_000_000), 3_600_000_000_000), (Fraction(2, 10), 1_000_000), (Fraction(9, 100), 10**9), (Fraction(1), 1)],
)
def test_pico_of_is_to_pico_in_integer_arithmetic(rate, per) -> None:
    quantities = [0, 1, 2, 3, 7, 999, 80_000, 250_000, 10**9, 3_600_000_000_000, 123_456_789_123]
    for quantity in quantities:
        assert pico_of(quantity, rate, per) == to_pico(quantity * rate / per), (quantity, rate, per)


def test_pico_of_rounds_exact_halves_up_and_just_below_them_down() -> None:
    # 1 unit x 1/2 pico: exactly half a pico-unit -> 1; 3/2 -> 2; just below a half -> 0.
    half_pico = Fraction(1, 2 * PICO_PER_UNIT)
    assert pico_of(1, half_pico) == 1
    assert pico_of(3, half_pico) == 2
    assert pico_of(1, half_pico, 2) == 0  # a quarter
    assert pico_of(5, Fraction(1, 10 * PICO_PER_UNIT)) == 1  # 0.5
    assert pico_of(4, Fraction(1, 10 * PICO_PER_UNIT)) == 0  # 0.4
    assert pico_of(6, Fraction(1, 10 * PICO_PER_UNIT)) == 1  # 0.6
    assert pico_of(15, Fraction(1, 10 * PICO_PER_UNIT)) == 2  # 1.5


@pytest.mark.parametrize("quantity", [0.5, Fraction(1, 4), Decimal("2"), True])
def test_pico_of_counts_quantities_in_integers_only(quantity) -> None:
    with pytest.raises(TypeError, match="integers"):
        pico_of(quantity, Fraction(2), 4)


def test_exact_keeps_a_fraction_and_reads_floats_as_written() -> None:
    rate = Fraction(3, 7)
    assert exact(rate) is rate
    assert exact(0.044625) == Fraction(44625, 1_000_000)
    assert exact(0.044625) == exact(0.044625)  # cached, still equal
    with pytest.raises(ValueError, match="finite"):
        exact(float("inf"))


@given(
    st.integers(min_value=0, max_value=10**15),
    st.fractions(min_value=0, max_value=1000, max_denominator=10**9),
    st.integers(min_value=1, max_value=10**13),
)
def test_pico_of_agrees_with_to_pico_everywhere(quantity: int, rate: Fraction, per: int) -> None:
    assert pico_of(quantity, rate, per) == to_pico(quantity * rate / per)
