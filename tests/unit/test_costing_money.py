"""Exact money: decimal prices read exactly, and allocations that add up to the unit."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest

from costing.money import PICO_PER_UNIT, allocate, exact, from_pico, to_pico


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
