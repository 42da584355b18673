"""price_request on hand-computed values.

The test book uses round prices so that each amount can be worked out by hand:
cpu 0.036 $/vCPU-h = 1e-14 $/ns, gpu 3.6 $/GPU-h = 1e-12 $/ns, gateway 0.072 $/vCPU-h =
2e-14 $/ns, cache 2 $ per million ops = 2e-6 $/op, egress 0.5 $/GB = 5e-10 $/byte.
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
            "egress": {"usd_per_gb": 0.5, "source": "test"},
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
                },
            },
        }
    )


def test_cache_miss_pays_compute_gateway_and_cache(book: PriceBook) -> None:
    usage = Usage(pool="cpu-local", model_compute_ns=2_000_000, gateway_cpu_ns=500_000, cache_ops=2)
    cost = price_request(usage, book)
    assert cost.compute == pytest.approx(2e-8)  # 2e6 ns * 1e-14
    assert cost.gateway == pytest.approx(1e-8)  # 5e5 ns * 2e-14
    assert cost.cache == pytest.approx(4e-6)  # 2 ops * 2e-6
    assert cost.total == pytest.approx(4.03e-6)
    assert cost.avoided == 0.0
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
    assert cost.compute == 0.0
    assert cost.gateway == pytest.approx(5e-9)  # 2.5e5 ns * 2e-14
    assert cost.cache == pytest.approx(2e-6)
    assert cost.total == pytest.approx(2.005e-6)  # never a silent zero
    assert cost.avoided == pytest.approx(3e-6)  # 3e6 ns * 1e-12, outside the total
    assert cost.compute_ns == 0


def test_response_bytes_pay_egress_inside_the_total(book: PriceBook) -> None:
    usage = Usage(
        pool="cpu-local", model_compute_ns=2_000_000, gateway_cpu_ns=500_000, cache_ops=2, response_bytes=4_000
    )
    cost = price_request(usage, book)
    assert cost.egress == pytest.approx(2e-6)  # 4000 bytes * 5e-10
    assert cost.total == pytest.approx(2e-8 + 1e-8 + 4e-6 + 2e-6)
    # A cache hit sends its bytes too.
    hit = price_request(Usage(pool="", model_compute_ns=0, gateway_cpu_ns=0, cache_ops=1, response_bytes=2_000), book)
    assert hit.egress == pytest.approx(1e-6) and hit.total == pytest.approx(2e-6 + 1e-6)


def test_callers_that_know_no_bytes_pay_no_egress(book: PriceBook) -> None:
    cost = price_request(Usage(pool="cpu-local", model_compute_ns=1, gateway_cpu_ns=1, cache_ops=1), book)
    assert cost.egress == 0.0


def test_one_gb_on_the_default_book_costs_the_internet_egress_price() -> None:
    usage = Usage(pool="", model_compute_ns=0, gateway_cpu_ns=0, cache_ops=0, response_bytes=10**9)
    cost = price_request(usage, load_price_book(DEFAULT_BOOK))
    assert cost.egress == pytest.approx(0.09) and cost.total == pytest.approx(0.09)


def test_gpu_pool_is_priced_per_gpu_hour(book: PriceBook) -> None:
    one_hour_ns = 3_600 * 10**9
    cost = price_request(Usage(pool="gpu-local", model_compute_ns=one_hour_ns, gateway_cpu_ns=0, cache_ops=0), book)
    assert cost.compute == pytest.approx(3.6)
    assert cost.total == pytest.approx(3.6)


def test_one_vcpu_hour_on_the_default_book_costs_the_c7i_price() -> None:
    default = load_price_book(DEFAULT_BOOK)
    one_hour_ns = 3_600 * 10**9
    usage = Usage(pool="cpu-local", model_compute_ns=one_hour_ns, gateway_cpu_ns=one_hour_ns, cache_ops=0)
    cost = price_request(usage, default)
    assert cost.compute == pytest.approx(0.044625)
    assert cost.gateway == pytest.approx(0.044625)


def test_request_that_ran_nothing_costs_nothing(book: PriceBook) -> None:
    cost = price_request(Usage(pool="", model_compute_ns=0, gateway_cpu_ns=0, cache_ops=0), book)
    assert cost == RequestCost(
        currency="USD",
        total=0.0,
        compute=0.0,
        gateway=0.0,
        cache=0.0,
        avoided=0.0,
        compute_ns=0,
        price_book_version="test-1",
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
    "kwargs",
    [
        {"model_compute_ns": -1},
        {"gateway_cpu_ns": -1},
        {"cache_ops": -1},
        {"response_bytes": -1},
        {"avoided_compute_ns": -1, "avoided_pool": "cpu-local"},
        {"pool": "", "model_compute_ns": 5},  # device time with no pool to price it on
        {"avoided_compute_ns": 5},  # avoided time with no pool
    ],
)
def test_impossible_usage_is_refused(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {"pool": "cpu-local", "model_compute_ns": 0, "gateway_cpu_ns": 0, "cache_ops": 0}
    fields.update(kwargs)
    with pytest.raises(ValueError):
        Usage(**fields)  # type: ignore[arg-type]
