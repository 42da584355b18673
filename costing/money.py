"""Exact money: integer pico-units, decimal text, prorating and a deterministic allocation.

Every amount Tollgate stores or reports is an integer number of pico-units (1e-12 of the
currency). A single request's compute is around 1e-8 USD, so rounding a request moves it by at
most 1e-4 of its cost, and sums of integers are exact: an identity that holds when written
holds when read, whatever the grouping. Floats appear only in Prometheus metrics, span
attributes and the proto's ``Cost`` message (derived from the integers, for display).

Time-based prices (per hour, per calendar month) are *prorated by telescoping*: the amount of
an interval is ``round(rate x end) - round(rate x start)`` on a fixed origin, so the amounts of
contiguous intervals add up to exactly what the whole span costs (a month's windows add up to
the monthly price to the unit, however many there are).
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import math
from collections.abc import Hashable, Mapping
from decimal import Decimal
from fractions import Fraction
from typing import TypeVar

PICO_PER_UNIT = 10**12
PICO_DIGITS = 12
NS_PER_SECOND = 1_000_000_000
NS_PER_HOUR = 3_600 * NS_PER_SECOND
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

Key = TypeVar("Key", bound=Hashable)


def exact(amount: float | int | Fraction | Decimal | str) -> Fraction:
    """A float read as the decimal it was written as (0.044625 -> 44625/1000000), not its
    binary approximation, so that prices from the book multiply exactly."""
    if type(amount) is Fraction:
        return amount  # immutable: no copy needed
    if isinstance(amount, Fraction | int):
        return Fraction(amount)
    if isinstance(amount, Decimal | str):
        value = Fraction(Decimal(amount))
        return value
    return _exact_float(amount)


@functools.lru_cache(maxsize=1024)
def _exact_float(amount: float) -> Fraction:
    """Cached: a price book's few rates are read on every request."""
    if not math.isfinite(amount):
        raise ValueError(f"not a finite amount: {amount}")
    return Fraction(repr(amount))


def pico_of(quantity: int, rate: Fraction, per: int = 1) -> int:
    """``quantity`` x ``rate`` / ``per`` currency units as pico-units, rounded half up: exactly
    ``to_pico(quantity * rate / per)``, in integer arithmetic (a request is priced with four of
    these; Fraction arithmetic cost ~10 µs each). Quantities are counts (ns, bytes, operations):
    TypeError for anything but an int."""
    if type(quantity) is not int:
        raise TypeError(f"a priced quantity is counted in integers, got {quantity!r}")
    numerator = quantity * rate.numerator * PICO_PER_UNIT
    denominator = rate.denominator * per
    return (2 * numerator + denominator) // (2 * denominator)


def round_half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


def to_pico(amount: float | int | Fraction | Decimal | str) -> int:
    """``amount`` (in currency units) as integer pico-units, rounded half up."""
    return round_half_up(exact(amount) * PICO_PER_UNIT)


def from_pico(pico: int) -> float:
    """Pico-units as a float amount of currency: only for metrics, spans and the proto."""
    return pico / PICO_PER_UNIT


def pico_to_decimal(pico: int) -> Decimal:
    """Pico-units as an exact Decimal amount of currency."""
    return Decimal(pico).scaleb(-PICO_DIGITS)


def decimal_text(pico: int) -> str:
    """The exact amount as plain decimal text (never scientific): 1234 -> '0.000000001234'."""
    sign = "-" if pico < 0 else ""
    whole, fraction = divmod(abs(pico), PICO_PER_UNIT)
    text = f"{sign}{whole}.{fraction:0{PICO_DIGITS}d}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def ns_since_epoch(moment: dt.datetime) -> int:
    delta = moment.astimezone(dt.UTC) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * NS_PER_SECOND + delta.microseconds * 1_000


def prorate_hourly(usd_per_hour: Fraction, start: dt.datetime, end: dt.datetime) -> int:
    """What ``usd_per_hour`` costs over [start, end), telescoped on the epoch (see the module doc)."""
    rate = exact(usd_per_hour) * PICO_PER_UNIT / NS_PER_HOUR
    return round_half_up(rate * ns_since_epoch(end)) - round_half_up(rate * ns_since_epoch(start))


def month_bounds(moment: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The UTC calendar month containing ``moment``: [first instant, first instant of the next)."""
    utc = moment.astimezone(dt.UTC)
    first = dt.datetime(utc.year, utc.month, 1, tzinfo=dt.UTC)
    days = calendar.monthrange(utc.year, utc.month)[1]
    return first, first + dt.timedelta(days=days)


def prorate_monthly(usd_per_month: Fraction, start: dt.datetime, end: dt.datetime) -> int:
    """What ``usd_per_month`` costs over [start, end) by *calendar* month: each month's share is
    its actual length (28 to 31 days), telescoped from the month's start so that the windows of
    a month add up to exactly the monthly price."""
    total = 0
    moment = start
    monthly = exact(usd_per_month) * PICO_PER_UNIT
    while moment < end:
        first, following = month_bounds(moment)
        segment_end = min(end, following)
        length = ns_since_epoch(following) - ns_since_epoch(first)
        offset_start = ns_since_epoch(moment) - ns_since_epoch(first)
        offset_end = ns_since_epoch(segment_end) - ns_since_epoch(first)
        total += round_half_up(monthly * offset_end / length) - round_half_up(monthly * offset_start / length)
        moment = segment_end
    return total


def allocate(amount: int, weights: Mapping[Key, int]) -> dict[Key, int]:
    """Split the integer ``amount`` in proportion to ``weights`` so that the parts add up to
    ``amount`` exactly (largest remainder method). Remainder units go to the largest fractional
    parts; ties go to the smaller key (sorted by ``repr``), so the result is deterministic.
    A negative ``amount`` is split as the negation of its opposite.

    Raises ValueError when ``weights`` is empty, has a negative weight, or sums to 0.
    """
    if any(weight < 0 for weight in weights.values()):
        raise ValueError("allocation weights must not be negative")
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("cannot allocate by weights that sum to 0")
    if amount < 0:
        return {key: -part for key, part in allocate(-amount, weights).items()}
    shares = {key: divmod(amount * weight, total) for key, weight in weights.items()}
    result = {key: quotient for key, (quotient, _) in shares.items()}
    leftover = amount - sum(result.values())
    by_remainder = sorted(shares, key=lambda key: (-shares[key][1], repr(key)))
    for key in by_remainder[:leftover]:
        result[key] += 1
    return result
