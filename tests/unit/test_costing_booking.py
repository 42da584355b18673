"""Booking a window: one origin charge per resource, split into direct, overhead and idle, and
allocated to (feature, tenant, model) exactly once.

The test book uses round prices so that every amount can be worked out by hand (pico-$ = 1e-12 $):
cpu-local 3.6 $/vCPU-h = 1 pico-$/ns with 2 vCPU provisioned (a 60 s window: 120e9 pico-$);
gpu-burst 36 $/GPU-h = 10 pico-$/ns, on demand; the gateway 3.6 $/vCPU-h = 1 pico-$/ns with
0.5 vCPU per replica (60 s: 30e9); the cache 1 $ per million operations = 1e6 pico-$/op on a
node of 0.36 $/h (60 s: 6e9); egress 1 $/GB = 1000 pico-$/byte on the internet, free in the
same zone (the default). Monthly prices over November (30 days = 2,592,000 s): storage
144 GB x 0.3 $ = 43.2 $/month = 1e9 pico-$ a minute; operations 86.4 $ + 43.2 $ = 3e9 a minute.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costing.ledger import BookedUsage
from costing.price_book import PriceBook
from costing.reconciliation.booking import BookingState, Counters, PoolReading, book_window
from costing.records import UNALLOCATED_FEATURE, ReplicaReading

START = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)
END = START + MINUTE
SERVED = {"recommender": ("recommender",), "product_search": ("query_encoder", "product_index")}


@pytest.fixture(scope="module")
def book() -> PriceBook:
    pool = {"location": "private", "source": "test"}
    return PriceBook.model_validate(
        {
            "version": "test-3",
            "currency": "USD",
            "effective_date": "2026-11-01",
            "gateway": {"usd_per_vcpu_hour": 3.6, "provisioned_vcpus": 0.5, "source": "test"},
            "cache": {"usd_per_million_ops": 1.0, "usd_per_node_hour": 0.36, "nodes": 1, "source": "test"},
            "egress": {
                "default_path": "same_zone",
                "paths": {
                    "same_zone": {"usd_per_gb": 0.0, "source": "test"},
                    "internet": {"usd_per_gb": 1.0, "source": "test"},
                },
            },
            "storage": {"usd_per_gb_month": 0.3, "provisioned_gb": 144, "source": "test"},
            "operations": {
                "people": {"usd_per_month": 86.4, "source": "test"},
                "monitoring": {"usd_per_month": 43.2, "source": "test"},
            },
            "pools": {
                "cpu-local": {"device": "cpu", "unit": "vCPU", "usd_per_unit_hour": 3.6, "provisioned_units": 2, **pool},
                "gpu-burst": {"device": "gpu", "unit": "GPU", "usd_per_unit_hour": 36.0, **pool, "location": "public"},
            },
        }
    )


def used(
    feature: str,
    model: str,
    *,
    requests: int = 1,
    compute_ns: int = 0,
    pool: str = "cpu-local",
    tenant: str = "acme",
    rate: int = 1,
    gateway_ns: int = 100_000,
    ops: int = 2,
    path: str = "",
    egress_pico_per_byte: int = 0,
    bytes_: int = 1_000,
    late: bool = False,
    unknown: int = 0,
    replica: str = "r1",
) -> BookedUsage:
    """What ``requests`` requests of one owner used, priced as the request path prices them."""
    return BookedUsage(
        feature=feature, tenant=tenant, model=model, pool=pool, replica=replica, egress_path=path, late=late,
        unknown_compute=bool(unknown), requests=requests, measured_requests=0 if unknown else requests,
        compute_ns=compute_ns, compute_pico=compute_ns * rate, gateway_cpu_ns=gateway_ns * requests,
        gateway_pico=gateway_ns * requests, cache_ops=ops * requests, cache_pico=ops * requests * 1_000_000,
        response_bytes=bytes_ * requests, egress_pico=bytes_ * requests * egress_pico_per_byte,
    )  # fmt: skip


def reading(**compute_ns: int) -> PoolReading:
    """Cumulative Triton counters of one endpoint: compute_infer per executing model."""
    return PoolReading({f"0|{model}": Counters(1, 1, 0, ns, 0) for model, ns in compute_ns.items()}, SERVED)


def replica(cpu_ns: int, *, started: dt.datetime = START - MINUTE, seen: dt.datetime = END, stopped: bool = False):
    return ReplicaReading("r1", started, seen, cpu_ns, 0.5, stopped)


def by_resource(result) -> dict:
    return {charge.resource: charge for charge in result.charges}


def allocated_to(result, resource: str) -> dict:
    return {(a.feature, a.tenant, a.model, a.late): a for a in result.allocated if a.resource == resource}


def assert_ties_out(result) -> None:
    """Every charge's allocations add up to it, part by part, and nothing is negative."""
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for item in result.allocated:
        for index, part in enumerate((item.direct_pico, item.overhead_pico, item.idle_pico)):
            sums[item.resource][index] += part
            assert part >= 0
    for charge in result.charges:
        assert sums[charge.resource] == [charge.direct_pico, charge.overhead_pico, charge.idle_pico], charge.resource
        assert charge.capacity_pico == charge.direct_pico + charge.overhead_pico + charge.idle_pico
    assert sum(a.total_pico for a in result.allocated) == sum(c.capacity_pico for c in result.charges)


def test_a_window_charges_every_resource_and_allocates_each_once(book: PriceBook) -> None:
    usage = [
        used("search_box", "product_search", requests=2, compute_ns=6_000_000),
        used("home_feed", "recommender", requests=3, compute_ns=3_000_000),
        used("cart", "recommender", tenant="globex", compute_ns=1_000_000, path="internet", egress_pico_per_byte=1_000),
    ]
    previous = BookingState(triton={"cpu-local": reading(recommender=0, query_encoder=0, product_index=0).counters},
                            replicas={"r1": 500_000_000})  # fmt: skip
    triton = {"cpu-local": reading(recommender=8_000_000, query_encoder=7_000_000, product_index=3_000_000)}
    result = book_window(START, END, usage, book, previous, triton=triton, replicas=[replica(1_500_000_000)])
    charges = by_resource(result)
    assert set(charges) == {
        "triton/cpu-local/product_search", "triton/cpu-local/recommender", "gateway/r1", "cache/redis",
        "egress/internet", "egress/same_zone", "storage", "operations/monitoring", "operations/people",
    }  # fmt: skip
    search, recommender = charges["triton/cpu-local/product_search"], charges["triton/cpu-local/recommender"]
    # Search: its two models measured 7 + 3 ms; the requests metered 6 ms: 4 ms of overhead.
    assert (search.direct_pico, search.overhead_pico, search.measured_quantity) == (6_000_000, 4_000_000, 10_000_000)
    # Recommend: 8 ms measured, 4 ms metered.
    assert (recommender.direct_pico, recommender.overhead_pico) == (4_000_000, 4_000_000)
    # The pool's 120e9 provisioned, less the 18e6 used, is idle: 119_982e6, split 10:8 by use:
    # 66_656_666_666 2/3 and 53_325_333_333 1/3; the unit left over goes to the larger remainder.
    assert (search.idle_pico, recommender.idle_pico) == (66_656_666_667, 53_325_333_333)
    # Each model's overhead goes to its own owners only, by compute: home 3 ms, cart 1 ms.
    rec = allocated_to(result, "triton/cpu-local/recommender")
    assert set(rec) == {("home_feed", "acme", "recommender", False), ("cart", "globex", "recommender", False)}
    assert rec[("home_feed", "acme", "recommender", False)].overhead_pico == 3_000_000
    assert rec[("cart", "globex", "recommender", False)].overhead_pico == 1_000_000
    assert set(allocated_to(result, "triton/cpu-local/product_search")) == {("search_box", "acme", "product_search", False)}
    # The gateway: 1e9 ns of process CPU since the last booking, 6 x 0.1 ms metered, 0.5 vCPU for 60 s.
    gateway = charges["gateway/r1"]
    assert (gateway.direct_pico, gateway.overhead_pico, gateway.idle_pico) == (600_000, 999_400_000, 29_000_000_000)
    assert gateway.measured_quantity == 1_000_000_000
    # The cache: 12 operations of the node's 6e9 for the minute.
    cache = charges["cache/redis"]
    assert (cache.direct_pico, cache.idle_pico) == (12_000_000, 6_000_000_000 - 12_000_000)
    # Egress by path: globex's 1000 bytes on the internet; the rest in the zone, free.
    assert (charges["egress/internet"].direct_pico, charges["egress/same_zone"].capacity_pico) == (1_000_000, 0)
    assert charges["egress/same_zone"].usage_quantity == 5_000
    # Storage and operations by calendar month (November: 30 days).
    assert charges["storage"].capacity_pico == 1_000_000_000
    assert charges["operations/people"].capacity_pico + charges["operations/monitoring"].capacity_pico == 3_000_000_000
    assert_ties_out(result)


def test_an_idle_pool_is_booked_and_unallocated(book: PriceBook) -> None:
    result = book_window(START, END, [], book, BookingState(), triton={"cpu-local": reading(recommender=0)})
    charges = by_resource(result)
    assert charges["triton/cpu-local"].idle_pico == 120_000_000_000
    owners = {(a.feature, a.resource) for a in result.allocated}
    assert owners == {(UNALLOCATED_FEATURE, r) for r in ("triton/cpu-local", "cache/redis", "storage",
                                                          "operations/people", "operations/monitoring")}  # fmt: skip
    assert_ties_out(result)


def test_search_overhead_never_lands_on_recommend(book: PriceBook) -> None:
    """Search-only traffic, then Recommend-only: the second window's Recommend owners carry
    only the recommender's own overhead."""
    first = book_window(
        START, END, [used("search_box", "product_search", compute_ns=2_000_000, pool="gpu-burst", rate=10)],
        book, BookingState(triton={"gpu-burst": reading(recommender=0, query_encoder=0, product_index=0).counters}),
        triton={"gpu-burst": reading(recommender=0, query_encoder=4_000_000, product_index=1_000_000)},
    )  # fmt: skip
    second = book_window(
        END, END + MINUTE, [used("home_feed", "recommender", compute_ns=1_000_000, pool="gpu-burst", rate=10)],
        book, first.state,
        triton={"gpu-burst": reading(recommender=1_500_000, query_encoder=4_000_000, product_index=1_000_000)},
    )  # fmt: skip
    assert by_resource(first)["triton/gpu-burst/product_search"].overhead_pico == 30_000_000  # (5 - 2) ms x 10
    home = allocated_to(second, "triton/gpu-burst/recommender")[("home_feed", "acme", "recommender", False)]
    assert (home.direct_pico, home.overhead_pico, home.idle_pico) == (10_000_000, 5_000_000, 0)
    assert not [a for a in second.allocated if a.model == "product_search"]


def test_a_request_that_straddles_a_boundary_is_charged_once(book: PriceBook) -> None:
    """On demand (gpu-burst): window A's Triton work includes a request that settles in B.
    A's overhead takes it; B's metered direct is carried against the next overhead; over the
    three windows the pool costs its Triton compute x price, exactly."""
    state = BookingState(triton={"gpu-burst": reading(recommender=0).counters})
    a = book_window(START, END, [used("f", "recommender", compute_ns=2_000_000, pool="gpu-burst", rate=10)], book, state,
                    triton={"gpu-burst": reading(recommender=5_000_000)})  # fmt: skip
    b = book_window(END, END + MINUTE, [used("f", "recommender", compute_ns=2_000_000, pool="gpu-burst", rate=10)],
                    book, a.state, triton={"gpu-burst": reading(recommender=5_000_000)})  # fmt: skip
    c = book_window(END + MINUTE, END + 2 * MINUTE, [used("f", "recommender", compute_ns=1_000_000, pool="gpu-burst", rate=10)],
                    book, b.state, triton={"gpu-burst": reading(recommender=8_000_000)})  # fmt: skip
    pool = [by_resource(w)["triton/gpu-burst/recommender"] for w in (a, b, c)]
    assert [(p.direct_pico, p.overhead_pico, p.adjustment_pico, p.carry_pico) for p in pool] == [
        (20_000_000, 30_000_000, 0, 0),
        (20_000_000, 0, 0, -20_000_000),  # metered, not measured here: carried
        (10_000_000, 0, -20_000_000, 0),  # 30e6 measured - 10e6 metered - 20e6 carried
    ]
    assert sum(p.capacity_pico for p in pool) == 8_000_000 * 10  # Triton's 8 ms x 10 pico-$/ns


def test_a_failed_call_of_unknown_compute_pays_its_own_triton_time(book: PriceBook) -> None:
    """home_feed: 2 answered requests of 1 ms each, 1.5 ms each in Triton; "flaky": one call
    that timed out after Triton ran it for 1.5 ms (no COMPUTE_NS came back). Triton measured
    4.5 ms. The failed call counts as a request of the mean metered compute (1 ms): home_feed
    pays 3 ms, as it would alone, and flaky 1.5 ms."""
    usage = [
        used("home_feed", "recommender", requests=2, compute_ns=2_000_000, pool="gpu-burst", rate=10),
        used("flaky", "recommender", compute_ns=0, pool="gpu-burst", rate=10, unknown=1),
    ]
    result = book_window(START, END, usage, book, BookingState(triton={"gpu-burst": reading(recommender=0).counters}),
                         triton={"gpu-burst": reading(recommender=4_500_000)})  # fmt: skip
    shares = allocated_to(result, "triton/gpu-burst/recommender")
    home, flaky = shares[("home_feed", "acme", "recommender", False)], shares[("flaky", "acme", "recommender", False)]
    assert (home.direct_pico, home.overhead_pico) == (20_000_000, 10_000_000)
    assert (flaky.direct_pico, flaky.overhead_pico) == (0, 15_000_000)
    assert flaky.method == "compute-share-estimated"
    assert_ties_out(result)


def test_a_late_record_is_an_explicit_adjustment_not_a_second_charge(book: PriceBook) -> None:
    usage = [
        used("home_feed", "recommender", compute_ns=1_000_000, pool="gpu-burst", rate=10),
        used("home_feed", "recommender", compute_ns=2_000_000, pool="gpu-burst", rate=10, late=True),
    ]
    state = BookingState(triton={"gpu-burst": reading(recommender=0).counters}, carry={})
    result = book_window(START, END, usage, book, state, triton={"gpu-burst": reading(recommender=1_000_000)})
    charge = by_resource(result)["triton/gpu-burst/recommender"]
    # 30e6 metered (10e6 current + 20e6 late), 10e6 measured: nothing more, 20e6 carried.
    assert (charge.direct_pico, charge.overhead_pico, charge.carry_pico, charge.late_direct_pico) == (
        30_000_000, 0, -20_000_000, 20_000_000,
    )  # fmt: skip
    late = allocated_to(result, "triton/gpu-burst/recommender")[("home_feed", "acme", "recommender", True)]
    assert (late.direct_pico, late.overhead_pico, late.idle_pico, late.method) == (20_000_000, 0, 0, "metered")
    assert_ties_out(result)


def test_a_triton_restart_counts_what_ran_since_it(book: PriceBook) -> None:
    state = BookingState(triton={"gpu-burst": reading(recommender=9_000_000).counters})
    result = book_window(START, END, [], book, state, triton={"gpu-burst": reading(recommender=1_000_000)})
    assert by_resource(result)["triton/gpu-burst/recommender"].measured_quantity == 1_000_000


def test_a_pool_that_did_not_answer_keeps_its_counters_for_the_next_window(book: PriceBook) -> None:
    state = BookingState(triton={"gpu-burst": reading(recommender=1_000_000).counters})
    silent = book_window(START, END, [used("f", "recommender", compute_ns=1_000_000, pool="gpu-burst", rate=10)],
                         book, state, triton={"gpu-burst": None})  # fmt: skip
    assert silent.state.triton == state.triton
    charge = by_resource(silent)["triton/gpu-burst/recommender"]
    assert (charge.direct_pico, charge.overhead_pico, charge.carry_pico) == (10_000_000, 0, -10_000_000)
    after = book_window(END, END + MINUTE, [], book, silent.state, triton={"gpu-burst": reading(recommender=3_000_000)})
    # 2 ms measured across both windows, 1 ms of it metered in the first.
    assert by_resource(after)["triton/gpu-burst/recommender"].overhead_pico == 10_000_000


def test_a_gap_while_no_gateway_ran_is_one_window_of_provisioned_and_fixed_costs(book: PriceBook) -> None:
    stopped = replica(2_000_000_000, seen=START + dt.timedelta(seconds=30), stopped=True)
    gap_end = START + dt.timedelta(hours=2)
    result = book_window(START, gap_end, [], book, BookingState(replicas={"r1": 1_000_000_000}),
                         triton={"cpu-local": reading(recommender=0)}, replicas=[stopped])  # fmt: skip
    charges = by_resource(result)
    assert charges["triton/cpu-local"].idle_pico == 2 * 2 * 3_600_000_000_000  # 2 vCPU x 2 h x 3.6 $
    # The replica ran 30 s of the gap: 0.5 vCPU x 30 s; 1e9 ns of CPU since its last booking.
    assert charges["gateway/r1"].capacity_pico == 15_000_000_000
    assert charges["gateway/r1"].overhead_pico == 1_000_000_000
    assert charges["storage"].capacity_pico == 120 * 1_000_000_000
    assert "r1" not in result.state.replicas, "a stopped replica leaves the state"
    assert_ties_out(result)


usage_rows = st.builds(
    used,
    st.sampled_from(["home_feed", "cart", "search_box", "__x"]),
    st.sampled_from(["recommender", "product_search"]),
    requests=st.integers(1, 50),
    compute_ns=st.integers(0, 10**8),
    pool=st.sampled_from(["cpu-local", "gpu-burst"]),
    tenant=st.sampled_from(["acme", "globex"]),
    gateway_ns=st.integers(0, 10**6),
    ops=st.integers(0, 3),
    path=st.sampled_from(["", "internet"]),
    late=st.booleans(),
    unknown=st.integers(0, 1),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(usage_rows, max_size=8),
    st.integers(0, 10**9),
    st.integers(0, 10**9),
    st.integers(1, 3 * 3600),
    st.integers(0, 10**10),
)
def test_every_window_ties_out_whatever_it_booked(
    book: PriceBook, usage: list[BookedUsage], rec_ns: int, search_ns: int, seconds: int, cpu_ns: int
) -> None:
    end = START + dt.timedelta(seconds=seconds)
    triton = {pool: reading(recommender=rec_ns, query_encoder=search_ns, product_index=0) for pool in ("cpu-local", "gpu-burst")}
    result = book_window(START, end, usage, book, BookingState(), triton=triton, replicas=[replica(cpu_ns, seen=end)])
    assert_ties_out(result)
    for charge in result.charges:
        assert charge.capacity_pico >= charge.provisioned_pico
