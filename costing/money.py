"""Exact money for reconciliation: integer pico-units and a deterministic allocation.

Windows and allocations are kept in integer pico-units (1e-12 of the currency). A single
request's compute is around 1e-8 USD, so rounding moves any figure by at most 1e-4 of one
request, and sums of integers are exact: an identity that holds when written holds when read.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from fractions import Fraction
from typing import TypeVar

PICO_PER_UNIT = 10**12

Key = TypeVar("Key", bound=Hashable)


def exact(amount: float | int | Fraction) -> Fraction:
    """A float read as the decimal it was written as (0.044625 -> 44625/1000000), not its
    binary approximation, so that prices from the book multiply exactly."""
    if isinstance(amount, Fraction | int):
        return Fraction(amount)
    if not math.isfinite(amount):
        raise ValueError(f"not a finite amount: {amount}")
    return Fraction(repr(amount))


def to_pico(amount: float | int | Fraction) -> int:
    """``amount`` (in currency units) as integer pico-units, rounded half up."""
    return math.floor(exact(amount) * PICO_PER_UNIT + Fraction(1, 2))


def from_pico(pico: int) -> float:
    """Pico-units as a float amount of currency, for reports."""
    return pico / PICO_PER_UNIT


def allocate(amount: int, weights: Mapping[Key, int]) -> dict[Key, int]:
    """Split the integer ``amount`` in proportion to ``weights`` so that the parts add up to
    ``amount`` exactly (largest remainder method). Remainder units go to the largest fractional
    parts; ties go to the smaller key (sorted by ``repr``), so the result is deterministic.

    Raises ValueError when ``weights`` is empty, has a negative weight, or sums to 0.
    """
    if any(weight < 0 for weight in weights.values()):
        raise ValueError("allocation weights must not be negative")
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("cannot allocate by weights that sum to 0")
    shares = {key: divmod(amount * weight, total) for key, weight in weights.items()}
    result = {key: quotient for key, (quotient, _) in shares.items()}
    leftover = amount - sum(result.values())
    by_remainder = sorted(shares, key=lambda key: (-shares[key][1], repr(key)))
    for key in by_remainder[:leftover]:
        result[key] += 1
    return result
