"""The gateway replicas' and the cache's charges of a window, worked out by hand on the booking
test book (tests/unit/test_costing_booking.py): the gateway 3.6 $/vCPU-h = 1 pico-$/ns with
0.5 vCPU per replica (60 s: 30e9), the cache 1e6 pico-$ per operation on a node of 0.36 $/h
(60 s: 6e9)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from test_costing_booking import END, MINUTE, START, allocated_to, assert_ties_out, book, by_resource, used  # noqa: F401

from costing.price_book import PriceBook
from costing.reconciliation.booking import BookingState, book_window
from costing.records import UNALLOCATED_FEATURE, ReplicaReading


def reading(name: str, cpu_ns: int, *, started: dt.datetime = START - MINUTE, stopped: bool = False) -> ReplicaReading:
    return ReplicaReading(name, started, END, cpu_ns, 0.5, stopped)


def test_each_replica_is_charged_its_process_cpu_and_shares_it_by_metered_cpu(book: PriceBook) -> None:  # noqa: F811
    """r1: 1e9 ns of process CPU since the last booking; home_feed metered 3 x 0.1 ms on it and
    cart 0.1 ms: direct 4e5, overhead 1e9 - 4e5, idle 30e9 - 1e9, both shared 3:1 by metered CPU.
    r2 started 30 s into the window and had never been booked: all its 2e9 ns are this window's,
    its capacity 0.5 vCPU x 30 s = 15e9, nobody metered anything on it (unallocated). r4 used no
    CPU since the last booking and stopped at the window's end: it leaves the state. r5
    restarted (its counter went down): what it counts now is what it used. A record with no
    replica goes to "gateway/unattributed", direct only; r3 metered 300 ns that priced to 0."""
    usage = [
        used("home_feed", "recommender", requests=3, ops=0, bytes_=0),
        used("cart", "recommender", tenant="globex", ops=0, bytes_=0),
        used("search_box", "product_search", gateway_ns=50_000, ops=0, bytes_=0, replica=""),
        dataclasses.replace(used("cart", "recommender", ops=0, bytes_=0, replica="r3"), gateway_cpu_ns=300, gateway_pico=0),
    ]
    previous = BookingState(replicas={"r1": 500_000_000, "r4": 5_000_000_000, "r5": 9_000_000_000})
    replicas = [
        reading("r1", 1_500_000_000), reading("r2", 2_000_000_000, started=START + dt.timedelta(seconds=30)),
        reading("r4", 5_000_000_000, stopped=True), reading("r5", 1_000_000_000),
    ]  # fmt: skip
    result = book_window(START, END, usage, book, previous, triton={}, replicas=replicas)
    charges = by_resource(result)
    r1 = charges["gateway/r1"]
    assert (r1.kind, r1.pool, r1.model, r1.device, r1.usage_unit) == ("gateway", "gateway", "", "cpu", "ns")
    assert (r1.direct_pico, r1.overhead_pico, r1.idle_pico, r1.provisioned_pico) == (400_000, 999_600_000, 29_000_000_000, 30_000_000_000)
    assert (r1.measured_quantity, r1.usage_quantity, r1.requests) == (1_000_000_000, 400_000, 4)
    shares = allocated_to(result, "gateway/r1")
    home, cart = shares[("home_feed", "acme", "recommender", False)], shares[("cart", "globex", "recommender", False)]
    assert (home.direct_pico, home.overhead_pico, home.idle_pico, home.method) == (300_000, 749_700_000, 21_750_000_000, "cpu-share")
    assert (cart.direct_pico, cart.overhead_pico, cart.idle_pico, cart.method) == (100_000, 249_900_000, 7_250_000_000, "cpu-share")
    r2 = charges["gateway/r2"]
    assert (r2.measured_quantity, r2.overhead_pico, r2.idle_pico, r2.provisioned_pico) == (2_000_000_000, 2_000_000_000, 13_000_000_000, 15_000_000_000)
    (nobody,) = allocated_to(result, "gateway/r2").values()
    assert (nobody.feature, nobody.tenant, nobody.model, nobody.method) == (UNALLOCATED_FEATURE, "", "", "unallocated")
    r4 = charges["gateway/r4"]
    assert (r4.measured_quantity, r4.overhead_pico, r4.idle_pico) == (0, 0, 30_000_000_000)
    assert charges["gateway/r5"].measured_quantity == 1_000_000_000
    unattributed = charges["gateway/unattributed"]
    assert (unattributed.direct_pico, unattributed.overhead_pico, unattributed.carry_pico, unattributed.provisioned_pico) == (50_000, 0, 0, 0)
    assert unattributed.measured_quantity is None, "no replica measured it"
    r3 = charges["gateway/r3"]
    assert (r3.capacity_pico, r3.usage_quantity, r3.requests) == (0, 300, 1)
    assert result.state.replicas == {"r1": 1_500_000_000, "r2": 2_000_000_000, "r5": 1_000_000_000}
    assert_ties_out(result)


def test_the_cache_node_is_charged_per_node_and_its_idle_shared_by_operations(book: PriceBook) -> None:  # noqa: F811
    """Two nodes of 0.36 $/h for 60 s: 12e9. home_feed made 1 operation (1e6), cart 3 that
    priced to nothing: direct 1e6, idle 12e9 - 1e6, shared 1:3 by operations."""
    two_nodes = book.model_copy(update={"cache": book.cache.model_copy(update={"nodes": 2})})
    usage = [
        used("home_feed", "recommender", gateway_ns=0, ops=1, bytes_=0),
        dataclasses.replace(used("cart", "recommender", gateway_ns=0, bytes_=0), cache_ops=3, cache_pico=0),
    ]
    result = book_window(START, END, usage, two_nodes, BookingState(), triton={})
    cache = by_resource(result)["cache/redis"]
    assert (cache.kind, cache.pool, cache.model, cache.device, cache.usage_unit) == ("cache", "cache", "", "redis", "operations")
    assert (cache.provisioned_pico, cache.direct_pico, cache.overhead_pico, cache.idle_pico) == (
        12_000_000_000, 1_000_000, 0, 11_999_000_000,
    )  # fmt: skip
    assert (cache.usage_quantity, cache.requests) == (4, 2)
    shares = {key[0]: (a.direct_pico, a.idle_pico, a.usage_quantity, a.method) for key, a in allocated_to(result, "cache/redis").items()}
    assert shares == {"home_feed": (1_000_000, 2_999_750_000, 1, "ops-share"), "cart": (0, 8_999_250_000, 3, "ops-share")}
    assert_ties_out(result)


def test_egress_fixed_costs_and_late_records_in_the_allocations(book: PriceBook) -> None:  # noqa: F811
    """home_feed: 2 answers of 1000 bytes over the internet (1000 pico-$/byte: 2e6), cart: one
    of 500 bytes in the zone (free), and a late record of home_feed's (300 bytes on the
    internet, 3e5, and 0.2 ms of gateway CPU) booked here as its own metered row. Nobody used
    the cache: its node's 6e9 is unallocated. Storage's 1e9 goes by the window's direct cost
    (late records excluded): home_feed 2e6 + 2 x 0.1 ms of gateway (2e5), cart 1e5: 22:1."""
    usage = [
        used("home_feed", "recommender", requests=2, ops=0, path="internet", egress_pico_per_byte=1_000),
        used("cart", "recommender", tenant="globex", ops=0, bytes_=500),
        used("home_feed", "recommender", gateway_ns=200_000, ops=0, bytes_=300, path="internet", egress_pico_per_byte=1_000, late=True),
    ]
    result = book_window(START, END, usage, book, BookingState(), triton={})
    charges = by_resource(result)
    internet = charges["egress/internet"]
    assert (internet.kind, internet.pool, internet.model, internet.device, internet.usage_unit) == ("egress", "egress", "", "", "bytes")
    assert (internet.direct_pico, internet.late_direct_pico, internet.usage_quantity, internet.requests) == (2_300_000, 300_000, 2_300, 3)
    on_internet = allocated_to(result, "egress/internet")
    assert {key: (a.requests, a.usage_quantity, a.direct_pico, a.method) for key, a in on_internet.items()} == {
        ("home_feed", "acme", "recommender", False): (2, 2_000, 2_000_000, "metered"),
        ("home_feed", "acme", "recommender", True): (1, 300, 300_000, "metered"),
    }  # fmt: skip
    (zone,) = allocated_to(result, "egress/same_zone").values()
    assert (zone.feature, zone.requests, zone.usage_quantity, zone.direct_pico, zone.method) == ("cart", 1, 500, 0, "metered")
    gateway = allocated_to(result, "gateway/r1")
    assert {key: (a.requests, a.usage_quantity, a.direct_pico) for key, a in gateway.items()} == {
        ("home_feed", "acme", "recommender", False): (2, 200_000, 200_000),
        ("cart", "globex", "recommender", False): (1, 100_000, 100_000),
        ("home_feed", "acme", "recommender", True): (1, 200_000, 200_000),
    }  # fmt: skip
    (cache,) = allocated_to(result, "cache/redis").values()
    assert (cache.feature, cache.tenant, cache.model, cache.idle_pico, cache.method) == (UNALLOCATED_FEATURE, "", "", 6_000_000_000, "unallocated")
    storage = charges["storage"]
    assert (storage.kind, storage.pool, storage.model, storage.device, storage.usage_quantity, storage.usage_unit) == (
        "storage", "storage", "", "", 0, "",
    )  # fmt: skip
    shares = {key: (a.requests, a.usage_quantity, a.overhead_pico) for key, a in allocated_to(result, "storage").items()}
    assert shares == {
        ("home_feed", "acme", "recommender", False): (0, 0, 956_521_739),
        ("cart", "globex", "recommender", False): (0, 0, 43_478_261),
    }
    assert_ties_out(result)
