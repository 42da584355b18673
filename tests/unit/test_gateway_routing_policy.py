"""cheapest_within_slo and the reasons of routing_policy.choose, on hand-worked pool snapshots:
unknown latency and compute, the objective's boundary, and overflow versus fallback.

Expected costs are worked out here from price × compute per call, never by the policy itself.
"""

import pytest

from gateway.routing_policy import PoolView, choose, cheapest_within_slo, gpu_first, typical_compute_ns

OBJECTIVE_MS = 50.0


def view(name, *, location="private", price=1.0, rank=0, healthy=True, in_flight=0, limit=4, device="cpu", **extra):
    return PoolView(name, device, location, price, rank, healthy, in_flight, limit, **extra)


def order(pools, objective_ms=OBJECTIVE_MS):
    return [p.name for p in cheapest_within_slo(pools, objective_ms)]


# --- unknown compute ------------------------------------------------------------------------------


def test_a_pool_never_measured_is_not_ranked_as_if_it_computed_nothing():
    """measured: $1/h × 2 ms = 2e6; unmeasured at $3/h counts the measured mean (2 ms): 6e6.
    Counting unknown compute as 1 ns (3.0) would rank the 3× dearer pool first."""
    measured = view("measured", price=1.0, compute_ns=2_000_000.0, rank=0)
    unknown = view("unknown", price=3.0, rank=1)
    assert order([unknown, measured]) == ["measured", "unknown"]
    assert choose("cheapest_within_slo", [unknown, measured], OBJECTIVE_MS).pool == "measured"


def test_an_unmeasured_pool_counts_the_mean_compute_of_the_measured_ones():
    """a: 1 × 1e6 = 1e6; b: 2 × 3e6 = 6e6; mean compute (1e6 + 3e6) / 2 = 2e6, so c: 0.75 × 2e6 = 1.5e6."""
    a = view("a", price=1.0, compute_ns=1_000_000.0, rank=0)
    b = view("b", price=2.0, compute_ns=3_000_000.0, rank=1)
    c = view("c", price=0.75, rank=2)
    assert typical_compute_ns([a, b, c]) == 2_000_000.0
    assert order([b, c, a]) == ["a", "c", "b"]
    assert c.expected_cost(2_000_000.0) == 1_500_000.0
    assert a.expected_cost(123.0) == 1_000_000.0, "a measured pool keeps its own compute"


def test_a_cheap_unmeasured_pool_still_wins_on_price_against_the_measured_mean():
    """gpu: 20 × 100 ns = 2000; cpu: 1 × 5000 = 5000; unmeasured at $0.2/h: 0.2 × 2550 (mean) = 510."""
    gpu = view("gpu", device="gpu", price=20.0, compute_ns=100.0, rank=0)
    cpu = view("cpu", price=1.0, compute_ns=5000.0, rank=1)
    spare = view("spare", price=0.2, rank=2)
    assert order([gpu, cpu, spare]) == ["spare", "gpu", "cpu"]


def test_with_no_measurement_anywhere_pools_are_ranked_by_price_then_configuration_order():
    pools = [view("p3", price=3.0, rank=0), view("p1", price=1.0, rank=1), view("p2", price=2.0, rank=2)]
    assert typical_compute_ns(pools) == 1.0
    assert order(pools) == ["p1", "p2", "p3"]
    tied = [view("second", price=1.0, rank=1), view("first", price=1.0, rank=0)]
    assert order(tied) == ["first", "second"], "equal cost: configuration order"


# --- the objective --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("private_latency_ms", "expected"),
    [(49.9, "private"), (50.0, "private"), (50.1, "public"), (None, "private")],
)
def test_the_objective_is_met_at_exactly_the_objective_and_unknown_latency_meets_it(private_latency_ms, expected):
    """A dear private pool is preferred while it meets the objective (≤ 50 ms, or not measured
    recently: it must get calls to be measured); past it, the cheap fast public pool serves."""
    private = view("private", price=5.0, latency_ms=private_latency_ms, rank=0)
    public = view("public", location="public", price=1.0, latency_ms=10.0, rank=1)
    decision = choose("cheapest_within_slo", [private, public], OBJECTIVE_MS)
    assert decision.pool == expected
    assert decision.reason == "primary", "a pool that misses the objective is not preferred: no fallback"


def test_among_pools_meeting_the_objective_private_comes_before_public_even_when_dearer():
    """Private capacity is paid for whether used or not: $9/h private before $1/h public."""
    public = view("public", location="public", price=1.0, compute_ns=1000.0, latency_ms=5.0, rank=0)
    private = view("private", price=9.0, compute_ns=1000.0, latency_ms=40.0, rank=1)
    assert order([public, private]) == ["private", "public"]


def test_when_every_pool_misses_the_objective_they_are_still_ranked_private_then_cost():
    slow_public = view("slow-public", location="public", price=1.0, latency_ms=90.0, rank=0)
    slow_dear = view("slow-dear", price=4.0, latency_ms=70.0, rank=1)
    slow_cheap = view("slow-cheap", price=2.0, latency_ms=80.0, rank=2)
    assert order([slow_public, slow_dear, slow_cheap]) == ["slow-cheap", "slow-dear", "slow-public"]


def test_a_pool_meeting_the_objective_beats_a_cheaper_one_that_misses_it():
    fast = view("fast", price=8.0, latency_ms=20.0, rank=1)
    slow = view("slow", price=1.0, latency_ms=60.0, rank=0)
    assert order([slow, fast]) == ["fast", "slow"]
    assert order([slow, fast], objective_ms=60.0) == ["slow", "fast"], "60 ms meets a 60 ms objective"


# --- overflow versus fallback ------------------------------------------------------------------------


def three_pools(first=None, second=None):
    """Preference by price: a ($1/h) > b ($2/h) > c ($3/h)."""
    return [
        view("a", price=1.0, rank=0, **(first or {})),
        view("b", price=2.0, rank=1, **(second or {})),
        view("c", price=3.0, rank=2),
    ]


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ({}, {}, ("a", "primary")),
        ({"in_flight": 4}, {}, ("b", "overflow")),
        ({"in_flight": 4}, {"in_flight": 4}, ("c", "overflow")),
        ({"healthy": False}, {}, ("b", "fallback")),
        ({"healthy": False}, {"in_flight": 4}, ("c", "fallback")),
        ({"in_flight": 4}, {"healthy": False}, ("c", "fallback")),
        ({"healthy": False, "in_flight": 4}, {}, ("b", "fallback")),
        ({"in_flight": 3}, {}, ("a", "primary")),
    ],
)
def test_overflow_only_when_every_preferred_pool_is_healthy_but_full(first, second, expected):
    decision = choose("cheapest_within_slo", three_pools(first, second), OBJECTIVE_MS)
    assert (decision.pool, decision.reason) == expected


def test_no_pool_healthy_with_headroom_is_no_decision_under_either_policy():
    pools = [view("down", healthy=False), view("full", in_flight=4, rank=1)]
    assert choose("cheapest_within_slo", pools, OBJECTIVE_MS) is None
    assert choose("gpu_first", pools, OBJECTIVE_MS) is None


def test_gpu_first_ignores_price_compute_and_latency():
    dear_slow_gpu = view("gpu", device="gpu", location="public", price=30.0, compute_ns=9e6, latency_ms=500.0, rank=2)
    cheap_cpu = view("cpu", price=0.1, compute_ns=1.0, latency_ms=1.0, rank=0)
    assert [p.name for p in gpu_first([cheap_cpu, dear_slow_gpu], OBJECTIVE_MS)] == ["gpu", "cpu"]
