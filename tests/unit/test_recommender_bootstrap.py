"""The paired bootstrap on toy users whose answers are known without resampling."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.recommender.bootstrap import paired_bootstrap


def test_identical_rankers_differ_by_exactly_zero() -> None:
    figures = np.array([0.0, 0.5, 1.0, 0.25])
    interval = paired_bootstrap(figures, figures, resamples=500, confidence=0.95, seed=1)
    assert (interval.mean, interval.low, interval.high) == (0.0, 0.0, 0.0)
    assert not interval.excludes_zero


def test_a_constant_per_user_gain_has_a_zero_width_interval() -> None:
    """Pairing removes the users' own variance: every user gains 0.1, so every resample's mean is 0.1,
    although the users' figures range from 0 to 0.9."""
    reference = np.linspace(0.0, 0.8, 9)
    interval = paired_bootstrap(reference + 0.1, reference, resamples=500, confidence=0.95, seed=1)
    assert interval.mean == pytest.approx(0.1)
    assert interval.low == pytest.approx(0.1) and interval.high == pytest.approx(0.1)
    assert interval.excludes_zero


def test_two_users_one_better_one_worse() -> None:
    """Differences +1 and -1: a resample of 2 users has mean -1 (both draws the loser, p = 1/4),
    0 (p = 1/2) or +1 (p = 1/4), so the 95 % percentile interval is [-1, +1] and holds 0."""
    interval = paired_bootstrap(np.array([1.0, 0.0]), np.array([0.0, 1.0]), resamples=4000, confidence=0.95, seed=7)
    assert interval.mean == 0.0
    assert (interval.low, interval.high) == (-1.0, 1.0)
    assert not interval.excludes_zero


def test_a_clear_gain_excludes_zero_and_the_interval_is_reproducible() -> None:
    rng = np.random.default_rng(0)
    reference = rng.random(400)
    candidate = reference + rng.normal(0.05, 0.05, size=400)
    first = paired_bootstrap(candidate, reference, resamples=1000, confidence=0.95, seed=3)
    again = paired_bootstrap(candidate, reference, resamples=1000, confidence=0.95, seed=3)
    assert first == again
    assert 0 < first.low < first.mean < first.high
    assert first.high - first.low == pytest.approx(2 * 1.96 * 0.05 / np.sqrt(400), rel=0.2)


def test_unpaired_input_is_refused() -> None:
    with pytest.raises(ValueError):
        paired_bootstrap(np.array([]), np.array([]), resamples=100, confidence=0.95, seed=0)
