import math

from benchmarks.goals import GOALS, INFORMATION, MET, NOT_MEASURED, NOT_MET, Goal, evaluate, evaluate_all
from benchmarks.stats import spread


def figure(values):
    return {**spread(values), "values": values}


AT_LEAST = Goal("g", "f", "throughput ratio", ">=", 0.85)
AT_MOST = Goal("p", "f", "p99 overhead", "<=", 2.0, "ms")


def test_a_goal_is_met_on_the_median_and_says_whether_every_repetition_met_it():
    solid = evaluate(AT_LEAST, figure([0.9, 0.95, 0.88]))
    assert solid.status == MET and solid.every_repetition
    shaky = evaluate(AT_LEAST, figure([0.8, 0.9, 0.87]))
    assert shaky.status == MET and not shaky.every_repetition
    assert evaluate(AT_LEAST, figure([0.5, 0.6, 0.55])).status == NOT_MET


def test_upper_bound_goals_compare_the_other_way():
    assert evaluate(AT_MOST, figure([1.5, 1.9])).status == MET
    result = evaluate(AT_MOST, figure([2.5, 3.0]))
    assert result.status == NOT_MET and result.target == "<= 2 ms"


def test_missing_or_nan_figures_are_not_measured_rather_than_failed():
    assert evaluate(AT_LEAST, None).status == NOT_MEASURED
    result = evaluate(AT_LEAST, figure([]))
    assert result.status == NOT_MEASURED and math.isnan(result.median)


def test_evaluate_all_reads_each_goal_s_figure_by_name():
    results = evaluate_all({"f": figure([1.0])}, (AT_LEAST, Goal("other", "missing", "x", ">=", 1.0)))
    assert [r.status for r in results] == [MET, NOT_MEASURED]


def test_the_issue_s_thresholds():
    thresholds = {goal.id: (goal.op, goal.threshold) for goal in GOALS}
    thresholds.pop("shared_box")
    assert thresholds == {
        "overhead_miss": ("<=", 1.3),
        "overhead_hit": ("<=", 1.3),
        "dedicated_throughput": (">=", 0.9),
        "dedicated_p50_added": ("<=", 1.0),
        "dedicated_p99_added": ("<=", 2.0),
        "dedicated_hit_p99": ("<=", 2.0),
        "tracing_default": (">=", 0.97),
        "tracing_all": (">=", 0.85),
        "cache_hit_throughput": (">=", 5.0),
        "int8_speedup": (">=", 2.0),
        "int8_recall_loss": ("<=", 1.0),
    }


def test_an_information_goal_is_shown_beside_its_bound_and_never_fails():
    goal = Goal("i", "f", "shared box", "info", math.nan, bound_figure="b")
    [result] = evaluate_all({"f": figure([0.5, 0.6]), "b": figure([0.55])}, (goal,))
    assert result.status == INFORMATION and result.target == "bound 0.55"
    [result] = evaluate_all({"f": figure([0.5])}, (goal,))
    assert result.status == INFORMATION and result.target == "bound not measured"
