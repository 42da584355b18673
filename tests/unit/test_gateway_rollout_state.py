"""The rollout state machine, the canary split and the SLO window (pure logic; expected values
worked out by hand in each test)."""

from __future__ import annotations

import math

import pytest

from gateway.errors import FailedPrecondition, InvalidArgument
from gateway.rollout import jaccard
from gateway.rollout_state import EvenSplit, RolloutState, promote, rollback, start
from gateway.rollout_window import OutcomeWindow, Slo, nearest_rank
from gateway.triton_model import serving_version, version_build_id

IDLE = RolloutState("recommender")


def test_shadow_then_canary_then_promote():
    shadow = start(IDLE, "shadow", "2", 0.5, serving="1")
    assert (shadow.serving, shadow.candidate, shadow.mode, shadow.share, shadow.revision) == ("1", "2", "shadow", 0.5, 1)
    canary = start(shadow, "canary", "2", 0.1, serving="1")
    assert (canary.mode, canary.share, canary.revision) == ("canary", 0.1, 2)
    promoted = promote(canary)
    assert (promoted.serving, promoted.candidate, promoted.mode, promoted.share, promoted.revision) == ("2", "", "none", 0.0, 3)
    assert not promoted.active
    assert promoted.note == "promoted version 2 (was 1)"


def test_rollback_keeps_the_serving_version_and_says_why():
    canary = start(IDLE, "canary", "3", 0.1, serving="1")
    back = rollback(canary, "error_rate", "40 calls, 50% errors")
    assert (back.serving, back.candidate, back.mode, back.revision) == ("1", "", "none", 2)
    assert back.note == "rolled back version 3 (error_rate: 40 calls, 50% errors)"


@pytest.mark.parametrize("share", [-0.01, 1.01, math.nan])
def test_a_share_outside_zero_to_one_names_the_field(share):
    with pytest.raises(InvalidArgument) as refused:
        start(IDLE, "canary", "2", share, serving="1")
    assert refused.value.field == "share"


def test_promote_or_rollback_without_a_candidate_is_a_failed_precondition():
    with pytest.raises(FailedPrecondition, match="no candidate to promote"):
        promote(IDLE)
    with pytest.raises(FailedPrecondition, match="no rollout to roll back"):
        rollback(IDLE, "operator")


def test_another_candidate_waits_until_the_first_is_promoted_or_rolled_back():
    shadow = start(IDLE, "shadow", "2", 0.5, serving="1")
    with pytest.raises(FailedPrecondition, match="rollout of version 2 .* in progress"):
        start(shadow, "canary", "3", 0.1, serving="1")


def test_the_serving_version_is_no_candidate():
    with pytest.raises(FailedPrecondition, match="is the serving version"):
        start(IDLE, "canary", "1", 0.1, serving="1")


def test_the_state_survives_json_and_a_foreign_value_is_refused():
    state = start(IDLE, "canary", "2", 0.1, serving="1")
    assert RolloutState.from_json(state.to_json()) == state
    with pytest.raises(ValueError):
        RolloutState.from_json('{"model": "recommender", "mode": "blue-green"}')


@pytest.mark.parametrize(("share", "calls", "selected"), [(0.1, 1000, 100), (0.1, 15, 1), (0.25, 10, 2), (1.0, 7, 7), (0.0, 50, 0)])
def test_the_even_split_selects_the_share_of_calls_to_within_one(share, calls, selected):
    # floor(calls * share) calls are selected among the first `calls`: 1000 x 0.1 = 100,
    # 15 x 0.1 = 1.5 -> 1, 10 x 0.25 = 2.5 -> 2.
    split = EvenSplit(share)
    assert sum(split.take() for _ in range(calls)) == selected


def test_the_even_split_spreads_the_canary_calls():
    split = EvenSplit(0.1)
    taken = [n for n in range(30) if split.take()]
    assert taken == [9, 19, 29]  # one call in every ten


SLO = Slo(window_s=10.0, min_calls=5, max_error_rate=0.2, max_p99_ms=100.0)


def test_no_verdict_below_the_minimum_number_of_calls():
    window = OutcomeWindow(SLO)
    for second in range(4):
        window.record(float(second), ok=False, latency_ms=1.0)
    assert window.verdict(4.0) is None  # 4 failed calls < 5


def test_an_error_rate_above_the_slo_breaks_it():
    window = OutcomeWindow(SLO)
    for second, ok in enumerate([True, True, False, True, False]):  # 2 / 5 = 40 % > 20 %
        window.record(float(second), ok, latency_ms=10.0)
    verdict = window.verdict(5.0)
    assert verdict is not None
    assert (verdict.breach, verdict.calls, verdict.error_rate, verdict.p99_ms) == ("error_rate", 5, 0.4, 10.0)


def test_an_error_rate_at_the_slo_does_not_break_it():
    window = OutcomeWindow(SLO)
    for second, ok in enumerate([True, True, True, True, False]):  # 1 / 5 = 20 %, not above
        window.record(float(second), ok, latency_ms=10.0)
    assert window.verdict(5.0) is None


def test_a_p99_above_the_slo_breaks_it():
    window = OutcomeWindow(SLO)
    # 100 calls: 98 at 10 ms, 2 at 150 ms. Nearest rank of p99 = the 99th smallest = 150 ms.
    for n in range(100):
        window.record(n * 0.01, ok=True, latency_ms=150.0 if n in (10, 60) else 10.0)
    verdict = window.verdict(1.0)
    assert verdict is not None and (verdict.breach, verdict.p99_ms) == ("p99", 150.0)


def test_calls_older_than_the_window_are_forgotten():
    window = OutcomeWindow(SLO)
    for second in range(5):
        window.record(float(second), ok=False, latency_ms=1.0)  # at 0..4 s
    for second in range(15, 20):
        window.record(float(second), ok=True, latency_ms=1.0)  # at 15..19 s
    # At 20 s the window is [10 s, 20 s]: the 5 good calls only.
    assert window.summary(20.0) == (5, 0, 1.0)
    assert window.verdict(20.0) is None


def test_nearest_rank_percentile():
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert nearest_rank(values, 0.99) == 99.0
    assert nearest_rank(values, 0.5) == 50.0
    assert nearest_rank([7.0], 0.99) == 7.0


def test_jaccard_overlap_of_item_ids():
    assert jaccard({"a", "b", "c"}, {"b", "c", "d"}) == 2 / 4
    assert jaccard({"a"}, {"a"}) == 1.0
    assert jaccard(set(), set()) == 1.0
    assert jaccard({"a"}, {"b"}) == 0.0


def test_the_serving_version_is_the_rollouts_then_the_configs_then_the_highest_loaded():
    configured = {"serving_version": {"string_value": "1"}}
    assert serving_version(["1", "2"], {}, None) == "2"
    assert serving_version(["9", "10"], {}, None) == "10", "by number, not by text"
    assert serving_version(["1", "2"], configured, None) == "1", "a loaded candidate is not served"
    assert serving_version(["1", "2"], configured, "2") == "2"


def test_a_versions_build_id_is_its_own_else_the_models():
    parameters = {"build_id": {"string_value": "b-serving"}, "build_id.2": {"string_value": "b-two"}}
    assert version_build_id(parameters, "2") == "b-two"
    assert version_build_id(parameters, "1") == "b-serving"
