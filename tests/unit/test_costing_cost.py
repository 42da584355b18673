"""price_request on hand-computed values.

The test book uses round prices so that each amount can be worked out by hand:
cpu 0.036 $/vCPU-h = 1e-14 $/ns, gpu 3.6 $/GPU-h = 1e-12 $/ns, gateway 0.072 $/vCPU-h =
2e-14 $/ns, cache 2 $ per million ops = 2e-6 $/op, egress 0.5 $/GB = 5e-10 $/byte on the
"internet" path (the default) and 0.01 $/GB = 1e-11 $/byte "cross_zone". Amounts are exact
integer pico-dollars (1e-12 $).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from costing.cost import RequestCost, Usage, price_request
from costing.price_book import PriceBook, UnknownPoolError, load_price_book

DEFAULT_BOOK = Path(__file__).resolve().parents[2] / "costing" / "price_book.toml"


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook.model_validate(
        {
            "version": "test-1",
            "currency": "USD",
            "effective_date": "2026-11-01",
            "gateway": {"usd_per_vcpu_hour": 0.072, "source": "test"},
            "cache": {"usd_per_million_ops": 2.0, "source": "test"},
            "egress": {
                "default_path": "internet",
                "paths": {
                    "internet": {"usd_per_gb": 0.5, "source": "test"},
                    "cross_zone": {"usd_per_gb": 0.01, "source": "test"},
                },
            },
            "pools": {
                "cpu-local": {
                    "device": "cpu",
                    "unit": "vCPU",
                    "usd_per_unit_hour": 0.036,
                    "location": "private",
                    "source": "test",
                },
                "gpu-local": {
                    "device": "gpu",
                    "unit": "GPU",
                    "usd_per_unit_hour": 3.6,
                    "location": "private",
                    "source": "test",
                    "provisioned_units": 1,
                },
            },
        }
    )


def test_cache_miss_pays_compute_gateway_and_cache(book: PriceBook) -> None:
    usage = Usage(pool="cpu-local", model_compute_ns=2_000_000, gateway_cpu_ns=500_000, cache_ops=2)
    cost = price_request(usage, book)
    assert cost.compute_pico == 20_000  # 2e6 ns * 1e-14 $ = 2e-8 $
    assert cost.gateway_pico == 10_000  # 5e5 ns * 2e-14
    assert cost.cache_pico == 4_000_000  # 2 ops * 2e-6
    assert cost.total_pico == 4_030_000
    assert cost.total == pytest.approx(4.03e-6)  # the float, for display
    assert cost.avoided_pico == 0
    assert cost.compute_ns == 2_000_000
    assert (cost.currency, cost.price_book_version) == ("USD", "test-1")


def test_cache_hit_pays_gateway_and_cache_and_reports_what_it_avoided(book: PriceBook) -> None:
    usage = Usage(
        pool="",
        model_compute_ns=0,
        gateway_cpu_ns=250_000,
        cache_ops=1,
        avoided_compute_ns=3_000_000,
        avoided_pool="gpu-local",
    )
    cost = price_request(usage, book)
    assert cost.compute_pico == 0
    assert cost.gateway_pico == 5_000  # 2.5e5 ns * 2e-14
    assert cost.cache_pico == 2_000_000
    assert cost.total_pico == 2_005_000  # never a silent zero
    assert cost.avoided_pico == 3_000_000  # 3e6 ns * 1e-12, outside the total
    assert not cost.avoided_is_cash, "gpu-local is provisioned: the hit saved no cash"
    assert cost.compute_ns == 0


def test_a_cache_hit_also_avoids_the_overhead_share_of_its_pool(book: PriceBook) -> None:
    from fractions import Fraction

    usage = Usage(pool="", model_compute_ns=0, gateway_cpu_ns=0, cache_ops=1, avoided_compute_ns=3_000_000, avoided_pool="cpu-local")
    cost = price_request(usage, book, avoided_overhead_ratio=Fraction(1, 2))
    assert cost.avoided_pico == 45_000  # 3e6 ns * 1e-14 $ = 30_000 pico, plus half of it in overhead
    assert cost.avoided_is_cash, "cpu-local is on demand in this book: the hit saved cash"


def test_response_bytes_pay_egress_inside_the_total(book: PriceBook) -> None:
    usage = Usage(
        pool="cpu-local", model_compute_ns=2_000_000, gateway_cpu_ns=500_000, cache_ops=2, response_bytes=4_000
    )
    cost = price_request(usage, book)
    assert cost.egress_pico == 2_000_000  # 4000 bytes * 5e-10 on the default (internet) path
    assert cost.total_pico == 20_000 + 10_000 + 4_000_000 + 2_000_000
    # A cache hit sends its bytes too.
    hit = price_request(Usage(pool="", model_compute_ns=0, gateway_cpu_ns=0, cache_ops=1, response_bytes=2_000), book)
    assert hit.egress_pico == 1_000_000 and hit.total_pico == 2_000_000 + 1_000_000


def test_egress_is_priced_by_its_network_path(book: PriceBook) -> None:
    usage = Usage(pool="", model_compute_ns=0, gateway_cpu_ns=0, cache_ops=0, response_bytes=4_000, egress_path="cross_zone")
    cost = price_request(usage, book)
    assert (cost.egress_pico, cost.egress_path) == (40_000, "cross_zone")  # 4000 bytes * 1e-11
    with pytest.raises(KeyError, match="unknown egress path 'moon'"):
        price_request(Usage(pool="", model_compute_ns=0, gateway_cpu_ns=0, cache_ops=0, egress_path="moon"), book)


def test_callers_that_know_no_bytes_pay_no_egress(book: PriceBook) -> None:
    cost = price_request(Usage(pool="cpu-local", model_compute_ns=1, gateway_cpu_ns=1, cache_ops=1), book)
    assert cost.egress_pico == 0


def test_one_gb_on_the_default_book_costs_what_each_path_costs_on_aws() -> None:
    default = load_price_book(DEFAULT_BOOK)
    gb = Usage(pool="", model_compute_ns=0, gateway_cpu_ns=0, cache_ops=0, response_bytes=10**9)
    # In-cluster callers in the same zone pay nothing; across zones $0.01/GB; the internet $0.09/GB.
    assert price_request(gb, default).egress_pico == 0
    prices = {path: price_request(Usage(**{**gb.__dict__, "egress_path": path}), default).egress_pico
              for path in ("same_zone", "cross_zone", "internet")}  # fmt: skip
    assert prices == {"same_zone": 0, "cross_zone": 10_000_000_000, "internet": 90_000_000_000}


def test_gpu_pool_is_priced_per_gpu_hour(book: PriceBook) -> None:
    one_hour_ns = 3_600 * 10**9
    cost = price_request(Usage(pool="gpu-local", model_compute_ns=one_hour_ns, gateway_cpu_ns=0, cache_ops=0), book)
    assert cost.compute_pico == cost.total_pico == 3_600_000_000_000


def test_one_vcpu_hour_on_the_default_book_costs_the_c7i_price() -> None:
    default = load_price_book(DEFAULT_BOOK)
    one_hour_ns = 3_600 * 10**9
    usage = Usage(pool="cpu-local", model_compute_ns=one_hour_ns, gateway_cpu_ns=one_hour_ns, cache_ops=0)
    cost = price_request(usage, default)
    assert cost.compute_pico == cost.gateway_pico == 44_625_000_000


def test_request_that_ran_nothing_costs_nothing(book: PriceBook) -> None:
    cost = price_request(Usage(pool="", model_compute_ns=0, gateway_cpu_ns=0, cache_ops=0), book)
    assert cost == RequestCost(
        currency="USD",
        compute_pico=0,
        gateway_pico=0,
        cache_pico=0,
        egress_pico=0,
        avoided_pico=0,
        avoided_is_cash=True,
        compute_ns=0,
        price_book_version="test-1",
        egress_path="internet",
    )


@pytest.mark.parametrize(
    "usage",
    [
        Usage(pool="tpu-remote", model_compute_ns=1, gateway_cpu_ns=1, cache_ops=0),
        Usage(
            pool="", model_compute_ns=0, gateway_cpu_ns=1, cache_ops=1, avoided_compute_ns=1, avoided_pool="tpu-remote"
        ),
    ],
    ids=["pool", "avoided_pool"],
)
def test_unknown_pool_is_an_error_not_a_free_request(book: PriceBook, usage: Usage) -> None:
    with pytest.raises(UnknownPoolError, match="tpu-remote"):
        price_request(usage, book)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model_compute_ns": -1}, "Usage.model_compute_ns must not be negative, got -1"),
        ({"gateway_cpu_ns": -1}, "Usage.gateway_cpu_ns must not be negative, got -1"),
        ({"cache_ops": -2}, "Usage.cache_ops must not be negative, got -2"),
        ({"response_bytes": -1}, "Usage.response_bytes must not be negative, got -1"),
        ({"avoided_compute_ns": -1, "avoided_pool": "cpu-local"}, "Usage.avoided_compute_ns must not be negative, got -1"),
        # device time with no pool to price it on; avoided time with no pool
        ({"pool": "", "model_compute_ns": 5}, "Usage.model_compute_ns is set but no pool says what it ran on"),
        ({"avoided_compute_ns": 5}, "Usage.avoided_compute_ns is set but no avoided_pool says what it ran on"),
    ],
)
def test_impossible_usage_is_refused_naming_the_field(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"pool": "cpu-local", "model_compute_ns": 0, "gateway_cpu_ns": 0, "cache_ops": 0}
    fields.update(kwargs)
    with pytest.raises(ValueError) as raised:
        Usage(**fields)  # type: ignore[arg-type]
    assert str(raised.value) == message
