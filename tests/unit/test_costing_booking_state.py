"""What one booking hands the next: Triton's counters, each replica's CPU booked through, the
carried adjustments and the running measured totals, stored as compact JSON with the booking;
and the booking's own edges (its window, what a late record's direct cost was, per kind)."""

from __future__ import annotations

import datetime as dt

import pytest
from test_costing_booking import SERVED, START, book, by_resource, reading, replica, used  # noqa: F401 - book is a fixture

from costing.price_book import PriceBook
from costing.reconciliation.booking import BookingState, Counters, PoolReading, book_window

END = START + dt.timedelta(minutes=1)


def test_the_state_is_stored_as_sorted_compact_json_and_read_back_whole() -> None:
    state = BookingState(
        triton={"gpu-burst": {"0|recommender": Counters(1, 2, 3, 4, 5)}, "cpu-local": {"1|b": Counters(), "0|a": Counters(9, 9, 0, 7, 0)}},
        replicas={"r2": 20, "r1": 10},
        carry={"triton/gpu-burst/recommender": -5, "gateway/r1": 0},  # a zero carry is not stored
        running={"gateway/r1": ("v2", 42), "cache/redis": ("v1", 7)},
    )  # fmt: skip
    text = state.to_json()
    assert text == (
        '{"triton":{"cpu-local":{"0|a":[9,9,0,7,0],"1|b":[0,0,0,0,0]},"gpu-burst":{"0|recommender":[1,2,3,4,5]}},'
        '"replicas":{"r1":10,"r2":20},"carry":{"triton/gpu-burst/recommender":-5},'
        '"running":{"cache/redis":["v1",7],"gateway/r1":["v2",42]}}'
    )
    again = BookingState.from_json(text)
    assert again.triton == state.triton
    assert again.replicas == {"r1": 10, "r2": 20}
    assert again.carry == {"triton/gpu-burst/recommender": -5}
    assert again.running == {"gateway/r1": ("v2", 42), "cache/redis": ("v1", 7)}
    assert BookingState.from_json("") == BookingState()
    assert BookingState.from_json("{}") == BookingState(), "an opening's state may hold nothing yet"


def test_counters_add_field_by_field_and_count_from_a_restart() -> None:
    assert Counters(1, 2, 3, 4, 5) + Counters(10, 20, 30, 40, 50) == Counters(11, 22, 33, 44, 55)
    assert Counters(11, 22, 33, 44, 55).since(Counters(1, 2, 3, 4, 5)) == Counters(10, 20, 30, 40, 50)
    assert Counters(5, 5, 5, 5, 5).since(Counters(6, 1, 1, 1, 1)) == Counters(5, 5, 5, 5, 5), "restarted: all of it"
    assert Counters(1, 2, 3, 4, 5).compute_ns == 12, "input + infer + output"


def test_a_window_must_end_after_it_starts(book: PriceBook) -> None:  # noqa: F811
    with pytest.raises(ValueError, match="is not after its start"):
        book_window(START, START, [], book, BookingState(), triton={})


def test_the_booking_records_who_booked_it_and_when(book: PriceBook) -> None:  # noqa: F811
    result = book_window(START, END, [], book, BookingState(), triton={})
    assert (result.booking.booked_by, result.booking.booked_at, result.booking.kind) == ("", END, "window")
    named = book_window(START, END, [], book, BookingState(), triton={}, booked_by="r1", booked_at=END + dt.timedelta(seconds=3))
    assert (named.booking.booked_by, named.booking.booked_at) == ("r1", END + dt.timedelta(seconds=3))
    assert (named.booking.price_book_version, named.booking.currency) == ("test-3", "USD")


def test_a_replica_that_did_not_report_keeps_its_cpu_booked_through(book: PriceBook) -> None:  # noqa: F811
    previous = BookingState(replicas={"r1": 500_000_000, "r9": 7_000_000_000})
    result = book_window(START, END, [], book, previous, triton={}, replicas=[replica(1_500_000_000)])
    assert result.state.replicas == {"r1": 1_500_000_000, "r9": 7_000_000_000}


def test_a_late_record_s_direct_cost_is_stated_on_each_charge_of_its_kind(book: PriceBook) -> None:  # noqa: F811
    """A late record (written after its own window was booked): 1 ms on gpu-burst (10e6), 0.1 ms
    of gateway CPU (1e5), 2 cache operations (2e6), 1000 bytes on the internet (1e6)."""
    late = used("home_feed", "recommender", compute_ns=1_000_000, pool="gpu-burst", rate=10, path="internet",
                egress_pico_per_byte=1_000, late=True)  # fmt: skip
    result = book_window(START, END, [late], book, BookingState(), triton={"gpu-burst": reading(recommender=0)})
    charges = by_resource(result)
    assert charges["triton/gpu-burst/recommender"].late_direct_pico == 10_000_000
    assert charges["gateway/r1"].late_direct_pico == 100_000
    assert charges["cache/redis"].late_direct_pico == 2_000_000
    assert charges["egress/internet"].late_direct_pico == 1_000_000
    assert charges["storage"].late_direct_pico == 0


def test_counters_of_a_model_no_served_model_runs_are_skipped_not_the_end(book: PriceBook) -> None:  # noqa: F811
    """Triton also reports a model that serves nothing here (listed first): it is skipped, and
    the recommender's 2 ms after it still count (gpu-burst: 10 pico-$/ns)."""
    counters = {"0|warmup": Counters(1, 1, 0, 9_000_000, 0), "0|recommender": Counters(1, 1, 0, 2_000_000, 0)}
    result = book_window(START, END, [], book, BookingState(), triton={"gpu-burst": PoolReading(counters, SERVED)})
    charge = by_resource(result)["triton/gpu-burst/recommender"]
    assert (charge.measured_quantity, charge.overhead_pico) == (2_000_000, 20_000_000)
    assert "triton/gpu-burst/warmup" not in by_resource(result)


@pytest.fixture(scope="module")
def odd_book() -> PriceBook:
    """One on-demand pool at 0.044625 $/vCPU-h: 0.01239583... pico-$ per ns, so that rounding shows."""
    return PriceBook.model_validate(
        {
            "version": "odd-2",
            "currency": "USD",
            "effective_date": "2026-11-01",
            "gateway": {"usd_per_vcpu_hour": 3.6, "source": "test"},
            "cache": {"usd_per_million_ops": 1.0, "source": "test"},
            "egress": {"default_path": "same_zone", "paths": {"same_zone": {"usd_per_gb": 0.0, "source": "test"}}},
            "pools": {"odd": {"device": "cpu", "unit": "vCPU", "usd_per_unit_hour": 0.044625, "location": "public", "source": "test"}},
        }
    )


def test_measured_amounts_telescope_on_the_running_total(odd_book: PriceBook) -> None:
    """Triton's cumulative compute reaches 40, 60 and 180 ns over three windows; priced on the
    running total: round(0.496) = 0, round(0.744) = 1, round(2.231) = 2, so the windows charge
    0, 1 and 1 pico-$ (each window priced alone would be 0, 0 and 1: a unit lost)."""
    state, charged = BookingState(triton={"odd": reading(recommender=0).counters}), []
    for minute, cumulative in enumerate((40, 60, 180)):
        start = START + dt.timedelta(minutes=minute)
        result = book_window(start, start + dt.timedelta(minutes=1), [], odd_book, state, triton={"odd": reading(recommender=cumulative)})
        charged.append(by_resource(result)["triton/odd/recommender"].overhead_pico)
        state = result.state
    assert charged == [0, 1, 1]
    assert state.running["triton/odd/recommender"] == ("odd-2", 180)


def test_a_new_price_book_starts_the_running_total_again(odd_book: PriceBook) -> None:
    """A total run up under another version is not continued: 40 ns at the new price is
    round(0.496) = 0 pico-$, not round(scale x 1_000_040) - round(scale x 1_000_000) = 1."""
    state = BookingState(triton={"odd": reading(recommender=0).counters}, running={"triton/odd/recommender": ("odd-1", 1_000_000)})
    result = book_window(START, END, [], odd_book, state, triton={"odd": reading(recommender=40)})
    assert by_resource(result)["triton/odd/recommender"].overhead_pico == 0
    assert result.state.running["triton/odd/recommender"] == ("odd-2", 40)
