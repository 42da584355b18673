"""Boundaries of the gateway's small guards, on scripted clocks: the retry budget's window, an
ejection's end and its reset, a tenant's token refill, undeclared features; and Search's route
handing the caller's deadline and trace on, keying by the model's identity, and refusing an
ensemble answer whose outputs disagree."""

from __future__ import annotations

import pytest

from gateway.admission import Admission, Overloaded, TokenBucket
from gateway.api import common_pb2, search_pb2
from gateway.errors import BackendFailed, InvalidArgument
from gateway.outlier_detection import OutlierDetector
from gateway.result_cache import CacheKeys, CacheSecret
from gateway.retry_budget import RetryBudget
from gateway.router import Placement
from gateway.search_route import SearchRoute, search_answer
from gateway.tenants import TenantConfig, TenantRate, TenantRegistry
from gateway.triton_model import ModelState
from gateway.validation import SearchQuery
from tests.support import search_outputs


class Clock:
    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- retry budget ---------------------------------------------------------------------------------


def test_a_request_exactly_one_window_old_no_longer_earns_retries():
    """ratio 0.5, no floor, 10 s window: 4 requests at t=0 allow 2 retries until t=10, none at t=10."""
    clock = Clock(0.0)
    budget = RetryBudget(0.5, 0, 10.0, clock=clock)
    for _ in range(4):
        budget.record_request()
    clock.now = 9.99
    assert budget.try_acquire()
    clock.now = 10.0
    assert not budget.try_acquire(), "the t=0 requests left the window at t=10"


def test_requests_keep_being_recorded_after_the_window_moves_on():
    """The record path forgets old requests itself: 2 at t=0, 2 at t=10 (the first two gone):
    ratio 0.5 of 2 = 1 retry."""
    clock = Clock(0.0)
    budget = RetryBudget(0.5, 0, 10.0, clock=clock)
    budget.record_request()
    budget.record_request()
    clock.now = 10.0
    budget.record_request()
    budget.record_request()
    assert budget.try_acquire()
    assert not budget.try_acquire()


# --- outlier detection ---------------------------------------------------------------------------


def test_a_new_endpoint_is_not_ejected_and_an_ejection_ends_at_its_instant():
    clock = Clock(0.5)
    detector = OutlierDetector(1, base_ejection_s=2.0, max_ejection_s=30.0, clock=clock)
    assert not detector.is_ejected()
    assert detector.record_failure()
    clock.now = 2.49
    assert detector.is_ejected()
    clock.now = 2.5
    assert not detector.is_ejected(), "ejected for [0.5, 2.5)"


def test_a_success_resets_the_doubling_of_ejections():
    """Ejections double (2 s, 4 s) until a success; the next one is 2 s again."""
    clock = Clock(0.0)
    detector = OutlierDetector(1, base_ejection_s=2.0, max_ejection_s=30.0, clock=clock)
    detector.record_failure()
    assert detector.ejected_for_s == 2.0
    clock.now = 2.0
    detector.record_failure()
    assert detector.ejected_for_s == 4.0
    clock.now = 6.0
    detector.record_success()
    detector.record_failure()
    assert detector.ejected_for_s == 2.0


# --- a tenant's rate -------------------------------------------------------------------------------


def test_tokens_refill_at_the_rate_per_second_from_the_last_take():
    """2 tokens a second, burst 1, clock starting at 100 s: a token every 0.5 s."""
    clock = Clock(100.0)
    bucket = TokenBucket(TenantRate(2.0, 1.0), clock=clock)
    assert bucket.take()
    clock.now = 100.25
    assert not bucket.take(), "half a token"
    clock.now = 100.5
    assert bucket.take(), "0.5 + 0.5 = one token"
    assert not bucket.take()


def test_the_concurrency_limit_counts_every_call_in_flight():
    admission = Admission(3, {})
    for tenant in ("acme", "globex", "acme"):
        admission.enter(tenant)
    assert admission.in_flight == 3
    with pytest.raises(Overloaded) as raised:
        admission.enter("initech")
    assert raised.value.message == "the gateway is at its limit of 3 concurrent calls; retry with backoff"
    admission.leave()
    admission.enter("initech")
    assert admission.in_flight == 3


# --- tenants -------------------------------------------------------------------------------------


TENANTS = [TenantConfig(id="acme", features=["search_box", "home_feed"]), TenantConfig(id="globex", features=["home_feed"])]


def test_undeclared_features_are_rejected_by_default_naming_the_declared_ones():
    registry = TenantRegistry(TENANTS)
    with pytest.raises(InvalidArgument) as raised:
        registry.feature_label("acme", "checkout")
    assert raised.value.message == "feature: 'checkout' is not declared for tenant acme (declared: home_feed, search_box)"
    with pytest.raises(InvalidArgument) as raised:
        registry.feature_label("initech", "checkout")
    assert raised.value.message == "feature: 'checkout' is not declared for tenant initech (declared: )"
    assert TenantRegistry(TENANTS, "other").feature_label("initech", "checkout") == "other"


def test_a_budget_of_an_unknown_scope_is_reported():
    registry = TenantRegistry(TENANTS)
    assert registry.unknown_budget_names([("region", "eu"), ("tenant", "acme"), ("feature", "home_feed")]) == [
        "region 'eu'"
    ]


# --- Search's route ---------------------------------------------------------------------------------


PLACEMENT = Placement("cpu-local", "cpu", "private", "primary", 1)


class Ensemble:
    name = "product_search"

    def __init__(self, result):
        self.result = result
        self.given: list[tuple[float, object]] = []
        self.state = ModelState(True, "ready", "3", "b1")

    async def infer(self, tensors, timeout_s, metadata=None, version=None):
        self.given.append((timeout_s, metadata))
        return self.result, PLACEMENT

    def record_compute(self, placement, compute_ns):
        pass


async def test_search_hands_the_callers_deadline_and_trace_to_the_ensemble():
    model = Ensemble(search_outputs(["a"]))
    route = SearchRoute(model, CacheKeys("t:", CacheSecret(b"search-route-test-secret")))
    await route.answer(SearchQuery(text="red bag", k=1, feature="search_box", exclude_item_ids=()), 0.75, (("traceparent", "00-abc"),))
    assert model.given == [(0.75, (("traceparent", "00-abc"),))]


def test_the_search_key_names_the_model_and_its_build():
    secret = CacheSecret(b"search-route-test-secret")
    route = SearchRoute(Ensemble(search_outputs([])), CacheKeys("t:", secret))
    query = SearchQuery(text="red bag", k=5, feature="search_box", exclude_item_ids=())
    digest = secret.digest(["red bag", 5, ()])
    assert route.cache_key(query, ModelState(True, "ready", "3", "b7")) == f"t:search:v4:product_search:3:b7:{digest}"


@pytest.mark.parametrize(
    "broken",
    [
        {"ids": ["a", "b"], "titles": ["only one"]},
        {"ids": ["a", "b"], "scores": [1.0]},
    ],
)
def test_outputs_of_different_lengths_break_the_contract(broken):
    with pytest.raises(BackendFailed) as raised:
        search_answer(search_outputs(**broken), set(), 5, "3")
    assert raised.value.message == (
        "the search ensemble's answer breaks its contract: ValueError('ITEM_IDS, ITEM_TITLES and SCORES differ in length')"
    )


def test_the_items_are_the_kept_products_with_their_titles_back_to_back():
    answer = search_answer(search_outputs(["a", "b", "c"], titles=["A", "B", "C"], scores=[0.5, 0.25, 0.125]), {b"b"}, 5, "3")
    expected = search_pb2.SearchResponse(
        items=[common_pb2.Item(item_id="a", title="A", score=0.5), common_pb2.Item(item_id="c", title="C", score=0.125)]
    )
    assert answer.items_wire == expected.SerializeToString(), "the items' wire bytes, back to back, nothing between"
    assert (answer.item_count, answer.compute_ns) == (2, 120)


def test_a_bad_feature_is_quoted_up_to_80_characters():
    from gateway.validation import validate_feature

    with pytest.raises(InvalidArgument) as raised:
        validate_feature("F" * 100)
    assert raised.value.message == (
        f"feature: {'F' * 80!r} is not a feature label: use 1-64 lower-case letters, digits or '_', starting with a letter"
    )
