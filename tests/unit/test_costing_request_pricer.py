"""RequestPricer: the replica's egress paths per tenant and the overhead share a cache hit saves,
on hand-computed values.

The book: cpu-local 3.6 $/vCPU-h = 1 pico-$/ns (2 vCPU provisioned), gpu-public 36 $/GPU-h =
10 pico-$/ns (on demand); egress free in the zone (the default), 1 $/GB = 1000 pico-$/byte on
the internet, 0.01 $/GB = 10 pico-$/byte cross zone.
"""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

import pytest

from costing.cost import Usage
from costing.price_book import PriceBook
from costing.records import OriginCharge
from costing.request_pricer import RequestPricer

START = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def book() -> PriceBook:
    pool = {"location": "private", "source": "test"}
    return PriceBook.model_validate(
        {
            "version": "pricer-1",
            "currency": "USD",
            "effective_date": "2026-11-01",
            "gateway": {"usd_per_vcpu_hour": 3.6, "source": "test"},
            "cache": {"usd_per_million_ops": 1.0, "source": "test"},
            "egress": {
                "default_path": "same_zone",
                "paths": {
                    "same_zone": {"usd_per_gb": 0.0, "source": "test"},
                    "cross_zone": {"usd_per_gb": 0.01, "source": "test"},
                    "internet": {"usd_per_gb": 1.0, "source": "test"},
                },
            },
            "pools": {
                "cpu-local": {"device": "cpu", "unit": "vCPU", "usd_per_unit_hour": 3.6, "provisioned_units": 2, **pool},
                "gpu-public": {"device": "gpu", "unit": "GPU", "usd_per_unit_hour": 36.0, **pool, "location": "public"},
            },
        }
    )


def charge(kind: str, pool: str, model: str, direct: int, overhead: int) -> OriginCharge:
    return OriginCharge(
        window_start=START, window_end=START + dt.timedelta(minutes=1), resource=f"{kind}/{pool}/{model}", kind=kind,
        pool=pool, model=model, device="cpu", currency="USD", price_book_version="pricer-1", provisioned_pico=0,
        capacity_pico=direct + overhead, direct_pico=direct, overhead_pico=overhead, idle_pico=0, adjustment_pico=0,
        carry_pico=0, requests=1, usage_quantity=direct, usage_unit="ns", measured_quantity=None,
    )  # fmt: skip


def test_each_tenant_s_answers_go_by_its_own_path(book: PriceBook) -> None:
    pricer = RequestPricer(book, replica="r2", egress_path="cross_zone", egress_paths={"globex": "internet"})
    assert (pricer.replica, pricer.egress_path("globex"), pricer.egress_path("acme")) == ("r2", "internet", "cross_zone")
    default = RequestPricer(book)
    assert (default.replica, default.egress_path("globex")) == ("", "same_zone")
    thousand_bytes = Usage(pool="", model_compute_ns=0, gateway_cpu_ns=0, cache_ops=0, response_bytes=1_000)
    priced = pricer.price(Usage(**{**thousand_bytes.__dict__, "egress_path": pricer.egress_path("globex")}), "recommender")
    assert (priced.egress_pico, priced.egress_path) == (1_000_000, "internet")


@pytest.mark.parametrize("paths", [{"egress_path": "moon"}, {"egress_paths": {"globex": "moon"}}])
def test_a_path_the_book_does_not_list_is_refused_up_front(book: PriceBook, paths: dict) -> None:
    with pytest.raises(KeyError, match="moon"):
        RequestPricer(book, **paths)


def test_it_learns_the_overhead_share_of_each_triton_pool_and_model(book: PriceBook) -> None:
    """Only Triton charges of a served model with a direct cost teach a ratio: overhead / direct."""
    pricer = RequestPricer(book)
    assert pricer.overhead_ratio("cpu-local", "recommender") == 0, "nothing booked yet"
    pricer.learn([
        charge("compute", "cpu-local", "recommender", 4_000_000, 2_000_000),  # 1/2
        charge("compute", "gpu-public", "recommender", 1, 3),  # the smallest direct cost: 3
        charge("compute", "cpu-local", "", 0, 0),  # a pool nobody used: no model
        charge("compute", "gpu-public", "product_search", 0, 5_000),  # no direct cost: no ratio
        charge("gateway", "gateway", "recommender", 1_000, 9_000),  # not a Triton charge
    ])  # fmt: skip
    assert pricer.overhead_ratio("cpu-local", "recommender") == Fraction(1, 2)
    assert pricer.overhead_ratio("gpu-public", "recommender") == 3
    assert pricer.overhead_ratio("gpu-public", "product_search") == 0
    assert pricer.overhead_ratio("gateway", "recommender") == 0
    assert pricer.overhead_ratio("cpu-local", "product_search") == 0
    pricer.learn([charge("compute", "cpu-local", "recommender", 3_000_000, 1_000_000)])  # the latest window wins
    assert pricer.overhead_ratio("cpu-local", "recommender") == Fraction(1, 3)


def test_a_hit_saves_the_avoided_compute_plus_the_overhead_share_of_its_own_pool_and_model(book: PriceBook) -> None:
    """A hit that avoided 2 ms of recommender on gpu-public (10 pico-$/ns = 20e6) saves 20e6 x
    (1 + 3/4) = 35e6 when that pool and model's last window had 3e6 overhead on 4e6 direct;
    the same 2 ms avoided on cpu-local (ratio 1/2) saves 2e6 x 1.5 = 3e6, and saved no cash."""
    pricer = RequestPricer(book)
    pricer.learn([
        charge("compute", "gpu-public", "recommender", 4_000_000, 3_000_000),
        charge("compute", "cpu-local", "recommender", 4_000_000, 2_000_000),
        charge("compute", "gpu-public", "product_search", 1_000_000, 9_000_000),
    ])  # fmt: skip
    hit = Usage(pool="", model_compute_ns=0, gateway_cpu_ns=0, cache_ops=1, avoided_compute_ns=2_000_000, avoided_pool="gpu-public")
    priced = pricer.price(hit, "recommender")
    assert (priced.avoided_pico, priced.avoided_is_cash, priced.total_pico) == (35_000_000, True, 1_000_000)
    on_local = pricer.price(Usage(**{**hit.__dict__, "avoided_pool": "cpu-local"}), "recommender")
    assert (on_local.avoided_pico, on_local.avoided_is_cash) == (3_000_000, False)
    assert pricer.price(hit, "product_search").avoided_pico == 20_000_000 * 10, "product_search's ratio is 9"
    unknown = pricer.price(hit, "ranker")
    assert unknown.avoided_pico == 20_000_000, "no booked window for the model: no overhead share"
