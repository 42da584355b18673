import math

import pytest

from benchmarks.stats import latency_summary, paired_differences, paired_ratios, percentile, spread


def test_percentiles_interpolate_like_numpy():
    values = list(range(1, 101))  # 1..100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 0) == 1 and percentile(values, 100) == 100


def test_percentile_of_nothing_is_nan_and_bad_q_is_refused():
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_latency_summary_has_the_reported_percentiles():
    summary = latency_summary([1.0] * 98 + [10.0, 20.0])
    assert summary["n"] == 100
    assert summary["p50_ms"] == 1.0
    assert summary["p99_ms"] == pytest.approx(10.1)
    assert summary["max_ms"] == 20.0
    assert summary["mean_ms"] == pytest.approx(1.28)


def test_spread_is_median_with_min_max_and_relative_spread():
    figure = spread([10.0, 12.0, 11.0])
    assert (figure["median"], figure["min"], figure["max"], figure["n"]) == (11.0, 10.0, 12.0, 3)
    assert figure["rel_spread"] == pytest.approx(2 / 11, rel=1e-3)


def test_spread_ignores_missing_values_and_survives_none_at_all():
    assert spread([1.0, float("nan"), 3.0])["n"] == 2
    empty = spread([])
    assert empty["n"] == 0 and math.isnan(empty["median"])


def test_ratios_and_differences_are_taken_per_repetition_pair():
    assert paired_ratios([2.0, 9.0], [1.0, 3.0]) == [2.0, 3.0]
    assert paired_differences([5.0, 7.0], [1.0, 3.0]) == [4.0, 4.0]
    assert math.isnan(paired_ratios([1.0], [0.0])[0])
    with pytest.raises(ValueError, match="as many repetitions"):
        paired_ratios([1.0, 2.0], [1.0])
