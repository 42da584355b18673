"""Allocation across two provisioned pools with unequal ratios, and of storage and operations by
direct cost: every figure worked out by hand.

The book (pico-$ = 1e-12 $), over a 60 s window:

- cpu-local: 3.6 $/vCPU-h = 1 pico-$/ns, 2 vCPU provisioned: 120e9 pico-$ a minute;
- cpu-public: 10.8 $/vCPU-h = 3 pico-$/ns, 1 vCPU provisioned: 180e9 pico-$ a minute;
- the gateway 3.6 $/vCPU-h = 1 pico-$/ns; storage 144 GB x 0.3 $ = 43.2 $/month, operations
  86.4 $ + 43.2 $ a month; over November (30 days) 1e9, 2e9 and 1e9 pico-$ a minute.

A Triton charge (pool, served model) is ``direct + overhead + idle``: direct what its requests
metered, overhead what Triton measured beyond that, idle the pool's provisioned capacity beyond
what its models used (shared among the pool's models by use). Its overhead and idle go to the
owners of *that* pool and model only, by their compute; storage and operations by each owner's
share of the window's direct cost (every part: compute, gateway, cache, egress), late records
excluded.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_costing_booking import SERVED, allocated_to, assert_ties_out, by_resource, reading, used

from costing.ledger import BookedUsage
from costing.price_book import PriceBook
from costing.reconciliation.booking import BookingState, PoolReading, book_window
from costing.records import UNALLOCATED_FEATURE

START = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
END = START + dt.timedelta(minutes=1)
LOCAL_RATE, PUBLIC_RATE = 1, 3  # pico-$ per ns
NO_GATEWAY = {"gateway_ns": 0, "ops": 0, "bytes_": 0}  # usage of the pools only


@pytest.fixture(scope="module")
def book() -> PriceBook:
    pool = {"device": "cpu", "unit": "vCPU", "location": "private", "source": "test"}
    return PriceBook.model_validate(
        {
            "version": "two-pools-1",
            "currency": "USD",
            "effective_date": "2026-11-01",
            "gateway": {"usd_per_vcpu_hour": 3.6, "provisioned_vcpus": 0.5, "source": "test"},
            "cache": {"usd_per_million_ops": 1.0, "usd_per_node_hour": 0.36, "nodes": 1, "source": "test"},
            "egress": {"default_path": "same_zone", "paths": {"same_zone": {"usd_per_gb": 0.0, "source": "test"}}},
            "storage": {"usd_per_gb_month": 0.3, "provisioned_gb": 144, "source": "test"},
            "operations": {
                "people": {"usd_per_month": 86.4, "source": "test"},
                "monitoring": {"usd_per_month": 43.2, "source": "test"},
            },
            "pools": {
                "cpu-local": {**pool, "usd_per_unit_hour": 3.6, "provisioned_units": 2},
                "cpu-public": {**pool, "usd_per_unit_hour": 10.8, "provisioned_units": 1, "location": "public"},
            },
        }
    )


def zero_counters() -> BookingState:
    start = reading(recommender=0, query_encoder=0, product_index=0).counters
    return BookingState(triton={"cpu-local": dict(start), "cpu-public": dict(start)})


def parts(allocation) -> tuple[int, int, int]:
    return allocation.direct_pico, allocation.overhead_pico, allocation.idle_pico


def test_each_pool_s_overhead_and_idle_go_to_its_own_owners_by_their_compute(book: PriceBook) -> None:
    """cpu-local: home_feed 3 ms and cart 1 ms of recommender, search_box 6 ms of product_search;
    Triton measured recommender 8 ms, the search models 8 + 4 ms. cpu-public: mobile_feed 2 ms
    and cart 6 ms of recommender (ratio 1:3, where cpu-local's is 3:1); Triton measured 12 ms.

    cpu-local, recommender: direct 4e6, overhead 8e6 - 4e6 = 4e6, used 8e6;
    product_search: direct 6e6, overhead 12e6 - 6e6 = 6e6, used 12e6;
    idle 120e9 - 20e6 = 119_980e6, split 8:12 between the models: 47_992e6 and 71_988e6;
    recommender's overhead and idle 3:1 between home_feed and cart.
    cpu-public, recommender: direct 3 x 8e6 = 24e6, overhead 3 x 12e6 - 24e6 = 12e6;
    idle 180e9 - 36e6 = 179_964e6; overhead and idle 1:3 between mobile_feed and cart."""
    usage = [
        used("home_feed", "recommender", requests=3, compute_ns=3_000_000, **NO_GATEWAY),
        used("cart", "recommender", tenant="globex", compute_ns=1_000_000, **NO_GATEWAY),
        used("search_box", "product_search", requests=2, compute_ns=6_000_000, **NO_GATEWAY),
        used("mobile_feed", "recommender", compute_ns=2_000_000, pool="cpu-public", rate=PUBLIC_RATE, **NO_GATEWAY),
        used("cart", "recommender", tenant="globex", requests=3, compute_ns=6_000_000, pool="cpu-public",
             rate=PUBLIC_RATE, **NO_GATEWAY),
    ]  # fmt: skip
    triton = {
        "cpu-local": reading(recommender=8_000_000, query_encoder=8_000_000, product_index=4_000_000),
        "cpu-public": reading(recommender=12_000_000),
    }
    result = book_window(START, END, usage, book, zero_counters(), triton=triton)
    charges = by_resource(result)
    local, search = charges["triton/cpu-local/recommender"], charges["triton/cpu-local/product_search"]
    public = charges["triton/cpu-public/recommender"]
    assert (local.direct_pico, local.overhead_pico, local.idle_pico) == (4_000_000, 4_000_000, 47_992_000_000)
    assert (search.direct_pico, search.overhead_pico, search.idle_pico) == (6_000_000, 6_000_000, 71_988_000_000)
    assert (local.provisioned_pico, search.provisioned_pico) == (48_000_000_000, 72_000_000_000)
    assert (public.direct_pico, public.overhead_pico, public.idle_pico) == (24_000_000, 12_000_000, 179_964_000_000)
    assert (public.capacity_pico, public.provisioned_pico) == (180_000_000_000, 180_000_000_000)
    assert (local.measured_quantity, search.measured_quantity, public.measured_quantity) == (8_000_000, 12_000_000, 12_000_000)
    assert (local.requests, local.usage_quantity, public.requests, public.usage_quantity) == (4, 4_000_000, 4, 8_000_000)
    assert (local.kind, local.pool, local.model, local.device, local.usage_unit) == ("compute", "cpu-local", "recommender", "cpu", "ns")

    on_local = allocated_to(result, "triton/cpu-local/recommender")
    on_public = allocated_to(result, "triton/cpu-public/recommender")
    assert {key[0] for key in on_local} == {"home_feed", "cart"}, "mobile_feed never used cpu-local"
    assert {key[0] for key in on_public} == {"mobile_feed", "cart"}, "home_feed never used cpu-public"
    assert parts(on_local[("home_feed", "acme", "recommender", False)]) == (3_000_000, 3_000_000, 35_994_000_000)
    assert (on_local[("home_feed", "acme", "recommender", False)].usage_quantity, on_public[("cart", "globex", "recommender", False)].usage_quantity) == (3_000_000, 6_000_000)
    assert parts(on_local[("cart", "globex", "recommender", False)]) == (1_000_000, 1_000_000, 11_998_000_000)
    assert parts(on_public[("mobile_feed", "acme", "recommender", False)]) == (6_000_000, 3_000_000, 44_991_000_000)
    assert parts(on_public[("cart", "globex", "recommender", False)]) == (18_000_000, 9_000_000, 134_973_000_000)
    (search_box,) = allocated_to(result, "triton/cpu-local/product_search").values()
    assert (search_box.feature, *parts(search_box)) == ("search_box", 6_000_000, 6_000_000, 71_988_000_000)
    assert {a.method for a in result.allocated if a.kind == "compute"} == {"compute-share"}
    assert (on_local[("cart", "globex", "recommender", False)].requests, on_public[("cart", "globex", "recommender", False)].requests) == (1, 3)
    assert_ties_out(result)


def test_a_pool_only_one_owner_used_charges_nobody_else(book: PriceBook) -> None:
    """Only mobile_feed ran, on cpu-public (2 ms; Triton measured 3 ms): cpu-local's whole
    120e9 is idle nobody used (unallocated); mobile_feed carries cpu-public's 3e6 overhead and
    its 180e9 - 9e6 idle, and none of cpu-local's."""
    usage = [used("mobile_feed", "recommender", compute_ns=2_000_000, pool="cpu-public", rate=PUBLIC_RATE, **NO_GATEWAY)]
    triton = {"cpu-local": reading(recommender=0), "cpu-public": reading(recommender=3_000_000)}
    result = book_window(START, END, usage, book, zero_counters(), triton=triton)
    mobile = [a for a in result.allocated if a.feature == "mobile_feed"]
    assert [(a.resource, *parts(a)) for a in mobile if a.kind == "compute"] == [
        ("triton/cpu-public/recommender", 6_000_000, 3_000_000, 179_991_000_000)
    ]
    (local,) = [a for a in result.allocated if a.pool == "cpu-local"]
    assert (local.feature, local.resource, local.method, *parts(local)) == (
        UNALLOCATED_FEATURE, "triton/cpu-local", "unallocated", 0, 0, 120_000_000_000,
    )  # fmt: skip
    assert_ties_out(result)


def test_storage_and_operations_follow_direct_cost_not_compute(book: PriceBook) -> None:
    """search_box: 1 ms on cpu-public = 3e6 pico-$ of direct cost. home_feed: 0.5 ms on
    cpu-local (0.5e6) + 0.5 ms of gateway CPU (0.5e6) = 1e6, plus a late record (direct cost of
    an earlier window, so no share of this one's). By direct cost 3:1; by compute time it would
    be 2:1, by compute cost 6:1. Storage 1e9 -> 750e6 : 250e6; people 2e9 -> 1.5e9 : 0.5e9;
    monitoring 1e9 -> 750e6 : 250e6."""
    usage = [
        used("search_box", "recommender", compute_ns=1_000_000, pool="cpu-public", rate=PUBLIC_RATE, **NO_GATEWAY),
        used("home_feed", "recommender", compute_ns=500_000, gateway_ns=500_000, ops=0, bytes_=0),
        used("home_feed", "recommender", compute_ns=9_000_000, late=True, **NO_GATEWAY),
    ]
    result = book_window(START, END, usage, book, zero_counters(), triton={})
    expected = {
        "storage": {"search_box": 750_000_000, "home_feed": 250_000_000},
        "operations/people": {"search_box": 1_500_000_000, "home_feed": 500_000_000},
        "operations/monitoring": {"search_box": 750_000_000, "home_feed": 250_000_000},
    }
    for resource, shares in expected.items():
        allocations = allocated_to(result, resource)
        assert {key[0]: a.overhead_pico for key, a in allocations.items()} == shares, resource
        assert all(a.method == "direct-share" and not a.late and a.idle_pico == a.direct_pico == 0 for a in allocations.values())
        charge = by_resource(result)[resource]
        assert (charge.capacity_pico, charge.overhead_pico, charge.provisioned_pico) == (sum(shares.values()),) * 3
    assert_ties_out(result)


def test_fixed_costs_of_a_window_without_direct_cost_are_unallocated(book: PriceBook) -> None:
    """Requests that cost nothing directly (no compute, CPU, cache or bytes metered) carry no
    share of storage: it goes to the unallocated owner, whole."""
    usage = [
        used("home_feed", "recommender", requests=3, **NO_GATEWAY),
        used("cart", "recommender", tenant="globex", **NO_GATEWAY),
    ]
    result = book_window(START, END, usage, book, zero_counters(), triton={})
    storage = allocated_to(result, "storage")
    assert {key: (a.overhead_pico, a.method) for key, a in storage.items()} == {
        (UNALLOCATED_FEATURE, "", "", False): (1_000_000_000, "unallocated"),
    }


def test_an_owner_s_failed_calls_of_unknown_compute_add_to_its_own_measured_compute(book: PriceBook) -> None:
    """cpu-public (3 pico-$/ns), recommender. home_feed: 2 answered calls, 2 ms, and 1 call that
    failed after Triton ran it (no COMPUTE_NS); cart: 2 answered calls, 2 ms. The window's mean
    measured compute is 4 ms / 4 = 1 ms, so home_feed weighs 2 + 1 = 3 ms and cart 2 ms. Triton
    measured 6 ms: 18e6, of which 12e6 metered; of the 6e6 overhead home_feed's estimated call
    takes its own 1 ms x 3 = 3e6 first, the other 3e6 is split 3:2 (1.8e6, 1.2e6)."""
    usage = [
        used("home_feed", "recommender", requests=2, compute_ns=2_000_000, pool="cpu-public", rate=PUBLIC_RATE, **NO_GATEWAY),
        used("home_feed", "recommender", compute_ns=0, pool="cpu-public", rate=PUBLIC_RATE, unknown=1, **NO_GATEWAY),
        used("cart", "recommender", requests=2, compute_ns=2_000_000, pool="cpu-public", rate=PUBLIC_RATE, **NO_GATEWAY),
    ]
    result = book_window(START, END, usage, book, zero_counters(), triton={"cpu-public": reading(recommender=6_000_000)})
    shares = allocated_to(result, "triton/cpu-public/recommender")
    home, cart = shares[("home_feed", "acme", "recommender", False)], shares[("cart", "acme", "recommender", False)]
    assert (home.direct_pico, home.overhead_pico, home.method) == (6_000_000, 4_800_000, "compute-share-estimated")
    assert (home.requests, home.usage_quantity) == (3, 2_000_000), "its two rows, answered and failed, add up"
    assert (cart.direct_pico, cart.overhead_pico) == (6_000_000, 1_200_000)
    # The pool's idle (180e9 - 18e6) goes by the same weights, 3:2.
    assert (home.idle_pico, cart.idle_pico) == (107_989_200_000, 71_992_800_000)
    assert_ties_out(result)


def test_when_no_call_measured_its_compute_the_pool_is_shared_by_requests(book: PriceBook) -> None:
    """Only failed calls of unknown compute (1 of home_feed, 3 of cart) reached cpu-public; Triton
    measured 4 ms = 12e6 pico-$ of overhead: no mean to estimate them by, so it goes by
    requests, 1:3."""
    usage = [
        used("home_feed", "recommender", compute_ns=0, pool="cpu-public", rate=PUBLIC_RATE, unknown=1, **NO_GATEWAY),
        used("cart", "recommender", requests=3, compute_ns=0, pool="cpu-public", rate=PUBLIC_RATE, unknown=1, **NO_GATEWAY),
    ]
    result = book_window(START, END, usage, book, zero_counters(), triton={"cpu-public": reading(recommender=4_000_000)})
    shares = allocated_to(result, "triton/cpu-public/recommender")
    assert {key[0]: (a.overhead_pico, a.method) for key, a in shares.items()} == {
        "home_feed": (3_000_000, "request-share"), "cart": (9_000_000, "request-share"),
    }  # fmt: skip


# --- properties -------------------------------------------------------------------------------

two_pool_rows = st.builds(
    used,
    st.sampled_from(["home_feed", "cart", "search_box", "mobile_feed"]),
    st.sampled_from(["recommender", "product_search"]),
    requests=st.integers(1, 20),
    compute_ns=st.integers(0, 10**8),
    pool=st.sampled_from(["cpu-local", "cpu-public"]),
    tenant=st.sampled_from(["acme", "globex"]),
    gateway_ns=st.integers(0, 10**6),
    ops=st.integers(0, 3),
    late=st.booleans(),
)


def _triton(rec_local: int, search_local: int, rec_public: int) -> dict[str, PoolReading]:
    return {
        "cpu-local": reading(recommender=rec_local, query_encoder=search_local, product_index=0),
        "cpu-public": reading(recommender=rec_public, query_encoder=0, product_index=0),
    }


@settings(max_examples=120, deadline=None)
@given(st.lists(two_pool_rows, max_size=8), st.integers(0, 10**9), st.integers(0, 10**9), st.integers(0, 10**9))
def test_no_owner_is_charged_for_a_pool_and_model_it_did_not_use(
    book: PriceBook, usage: list[BookedUsage], rec_local: int, search_local: int, rec_public: int
) -> None:
    result = book_window(START, END, usage, book, zero_counters(), triton=_triton(rec_local, search_local, rec_public))
    users = {(row.pool, row.model, row.owner) for row in usage if not row.late}
    for item in result.allocated:
        if item.kind != "compute" or item.feature == UNALLOCATED_FEATURE or item.late:
            continue
        assert (item.pool, item.model, (item.feature, item.tenant, item.model)) in users, item


@settings(max_examples=120, deadline=None)
@given(st.lists(two_pool_rows, max_size=8), st.integers(0, 10**9), st.integers(0, 10**9), st.integers(0, 10**9))
def test_triton_overhead_and_idle_are_shared_in_proportion_to_compute(
    book: PriceBook, usage: list[BookedUsage], rec_local: int, search_local: int, rec_public: int
) -> None:
    """Each owner's overhead and idle of a Triton charge are within one pico-$ of the charge's
    x (its compute on that pool and model / all its owners' compute there); by requests when
    nobody's compute was measured."""
    result = book_window(START, END, usage, book, zero_counters(), triton=_triton(rec_local, search_local, rec_public))
    for charge in result.charges:
        if charge.kind != "compute" or not charge.model:
            continue
        rows = [row for row in usage if not row.late and (row.pool, row.model) == (charge.pool, charge.model)]
        weight: dict[tuple[str, str, str], int] = defaultdict(int)
        for row in rows:
            weight[row.owner] += row.compute_ns
        if not sum(weight.values()):
            weight = defaultdict(int)
            for row in rows:
                weight[row.owner] += row.requests
        total = sum(weight.values())
        mine = {(a.feature, a.tenant, a.model): a for a in result.allocated if a.resource == charge.resource and not a.late}
        for owner, share in weight.items():
            got = mine.get(owner)
            for part in ("overhead_pico", "idle_pico"):
                expected = Fraction(getattr(charge, part) * share, total)
                assert abs((getattr(got, part) if got else 0) - expected) < 1, (charge.resource, owner, part)


@settings(max_examples=120, deadline=None)
@given(st.lists(two_pool_rows, max_size=8), st.integers(0, 10**9), st.integers(0, 10**9), st.integers(0, 10**9))
def test_allocations_add_up_to_the_charges_under_every_grouping(
    book: PriceBook, usage: list[BookedUsage], rec_local: int, search_local: int, rec_public: int
) -> None:
    result = book_window(START, END, usage, book, zero_counters(), triton=_triton(rec_local, search_local, rec_public))
    assert_ties_out(result)
    groupings = (
        lambda x: x.pool,
        lambda x: x.kind,
        lambda x: x.resource,
        lambda x: (x.pool, x.model) if x.kind == "compute" else x.kind,  # fixed costs: the owner's model
    )
    for key in groupings:
        charged: dict[object, int] = defaultdict(int)
        allocated: dict[object, int] = defaultdict(int)
        for charge in result.charges:
            charged[key(charge)] += charge.capacity_pico
        for item in result.allocated:
            allocated[key(item)] += item.total_pico
        assert {k: v for k, v in allocated.items() if v} == {k: v for k, v in charged.items() if v}
    # Provisioned capacity is never lost: each provisioned pool's charges add up to at least its price.
    for pool, per_minute in (("cpu-local", 120_000_000_000), ("cpu-public", 180_000_000_000)):
        assert sum(c.capacity_pico for c in result.charges if c.pool == pool) >= per_minute
        assert sum(c.provisioned_pico for c in result.charges if c.pool == pool) == per_minute
