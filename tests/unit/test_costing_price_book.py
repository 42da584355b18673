"""The price book: the shipped defaults, and every way a bad file is refused."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydantic import ValidationError

from costing.price_book import PriceBookError, UnknownPoolError, load_price_book
from gateway.settings import get_settings

DEFAULT_BOOK = Path(__file__).resolve().parents[2] / "costing" / "price_book.toml"


def write_variant(tmp_path: Path, old: str, new: str) -> Path:
    """The default price book with ``old`` replaced by ``new`` (which must occur)."""
    text = DEFAULT_BOOK.read_text(encoding="utf-8")
    assert old in text, f"test setup: {old!r} is not in the default price book"
    path = tmp_path / "price_book.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def test_default_book_is_the_settings_default_and_loads() -> None:
    assert get_settings().price_book_path.resolve() == DEFAULT_BOOK
    book = load_price_book(DEFAULT_BOOK)
    assert book.currency == "USD"
    assert book.version
    assert isinstance(book.effective_date, dt.date)
    assert set(book.pools) == {"cpu-local", "gpu-local", "cpu-public"}


def test_default_prices_follow_their_cited_list_prices() -> None:
    book = load_price_book(DEFAULT_BOOK)
    cpu, gpu = book.pool("cpu-local"), book.pool("gpu-local")
    # c7i.large: $0.08925/h for 2 vCPU.
    assert cpu.usd_per_unit_hour == pytest.approx(0.08925 / 2)
    assert (cpu.device, cpu.unit, cpu.location) == ("cpu", "vCPU", "private")
    public = book.pool("cpu-public")
    assert (public.usd_per_unit_hour, public.location) == (cpu.usd_per_unit_hour, "public")
    assert public.provisioned_units == 0, "on demand: billed for use, never idle"
    assert "c7i.large" in cpu.source
    # g6.xlarge: $0.8048/h for one L4.
    assert gpu.usd_per_unit_hour == pytest.approx(0.8048)
    assert (gpu.device, gpu.unit) == ("gpu", "GPU")
    assert "g6.xlarge" in gpu.source
    assert book.gateway.usd_per_vcpu_hour == pytest.approx(0.08925 / 2)
    # cache.t4g.small $0.032/h over 36 M ops/h (10,000 ops/s), rounded to 3 significant digits.
    assert book.cache.usd_per_million_ops == pytest.approx(0.032 / 36, rel=1e-3)
    assert "10,000 ops/s" in book.cache.source


def test_default_infrastructure_and_operations_prices_follow_their_sources() -> None:
    book = load_price_book(DEFAULT_BOOK)
    # Provisioned capacity: one c7i.large (2 vCPU) and one g6.xlarge (1 GPU).
    assert book.pool("cpu-local").provisioned_units == 2
    assert book.pool("gpu-local").provisioned_units == 1
    # Egress by network path: in-cluster callers in the same zone are free on AWS, the default.
    assert book.egress.default_path == "same_zone"
    assert {name: path.usd_per_gb for name, path in book.egress.paths.items()} == {
        "same_zone": 0.0, "cross_zone": 0.01, "internet": 0.09,
    }  # fmt: skip
    assert "data transfer out" in book.egress.path("internet").source
    # The gateway's replicas (their CPU request) and the cache node are origin charges too.
    assert book.gateway.provisioned_vcpus == 0.5
    assert (book.cache.usd_per_node_hour, book.cache.nodes) == (0.032, 1)
    assert book.storage.usd_per_gb_month == pytest.approx(0.08) and "gp3" in book.storage.source
    assert book.storage.provisioned_gb == 60
    assert set(book.operations) == {"monitoring", "people"}
    assert book.operations["monitoring"].usd_per_month == pytest.approx(18 * 3)
    assert book.operations["people"].usd_per_month == pytest.approx(132_270 * 0.05 / 12)
    assert "BLS" in book.operations["people"].source and "Assumed" in book.operations["people"].source
    assert book.operations_usd_per_month == pytest.approx(54 + 132_270 * 0.05 / 12)

def test_a_fixed_month_length_is_refused_months_are_calendar_months(tmp_path: Path) -> None:
    path = write_variant(tmp_path, 'currency = "USD"', 'currency = "USD"\nhours_per_month = 730')
    with pytest.raises(PriceBookError, match="calendar month"):
        load_price_book(path)


def test_a_flat_egress_price_is_refused_egress_is_priced_by_path(tmp_path: Path) -> None:
    path = write_variant(tmp_path, 'default_path = "same_zone"', 'usd_per_gb = 0.09\nsource = "x"')
    with pytest.raises(PriceBookError, match="network path"):
        load_price_book(path)


def test_effective_dates_say_when_a_version_applies(tmp_path: Path) -> None:
    dated = "effective_date = 2026-11-23\neffective_until = 2027-01-01"
    book = load_price_book(write_variant(tmp_path, "effective_date = 2026-11-23", dated))
    assert not book.in_effect_on(dt.date(2026, 11, 22))
    assert book.in_effect_on(dt.date(2026, 11, 23)) and book.in_effect_on(dt.date(2026, 12, 31))
    assert not book.in_effect_on(dt.date(2027, 1, 1))
    assert load_price_book(DEFAULT_BOOK).in_effect_on(dt.date(2030, 1, 1))  # open-ended


def test_a_book_without_the_new_sections_still_loads_with_nothing_priced(tmp_path: Path) -> None:
    path = tmp_path / "book.toml"
    path.write_text(
        'version = "1"\ncurrency = "USD"\neffective_date = 2026-11-01\n'
        '[gateway]\nusd_per_vcpu_hour = 0.04\nsource = "x"\n'
        '[cache]\nusd_per_million_ops = 0.001\nsource = "y"\n'
        '[pools.cpu-local]\ndevice = "cpu"\nunit = "vCPU"\nusd_per_unit_hour = 0.04\n'
        'location = "public"\nsource = "z"\n',
        encoding="utf-8",
    )
    book = load_price_book(path)
    assert book.egress.path("").usd_per_gb == 0 and book.storage.provisioned_gb == 0 and book.operations == {}
    assert book.gateway.provisioned_vcpus == 0 and book.cache.nodes == 0
    assert book.pool("cpu-local").provisioned_units == 0  # on demand: no idle capacity


def test_unknown_pool_names_the_pool_and_the_known_ones() -> None:
    book = load_price_book(DEFAULT_BOOK)
    with pytest.raises(UnknownPoolError) as caught:
        book.pool("tpu-remote")
    assert isinstance(caught.value, KeyError)
    message = str(caught.value)
    assert "tpu-remote" in message
    assert "cpu-local" in message and "gpu-local" in message


def test_book_is_frozen() -> None:
    book = load_price_book(DEFAULT_BOOK)
    with pytest.raises(ValidationError):
        book.pool("cpu-local").usd_per_unit_hour = 0.0  # type: ignore[misc]


def test_negative_price_is_refused_with_its_key(tmp_path: Path) -> None:
    path = write_variant(tmp_path, "usd_per_unit_hour = 0.8048", "usd_per_unit_hour = -0.8048")
    with pytest.raises(PriceBookError, match=r"pools\.gpu-local\.usd_per_unit_hour"):
        load_price_book(path)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("usd_per_million_ops = 0.000889", "usd_per_million_ops = -1.0", r"cache\.usd_per_million_ops"),
        ("usd_per_vcpu_hour = 0.044625", "usd_per_vcpu_hour = nan", r"gateway\.usd_per_vcpu_hour"),
        ('unit = "GPU"', 'unit = "vCPU"', "priced per GPU"),
        ('currency = "USD"', 'currency = "EUR"', "currency"),
        ('location = "private"', 'location = "moon"', "location"),
        ('device = "cpu"', 'devcie = "cpu"', "devcie"),  # a misspelt key is not ignored
        ('version = "2026.12.1"', "version = 3", "version"),
        ("provisioned_units = 2", "provisioned_units = -2", r"pools\.cpu-local\.provisioned_units"),
        ("usd_per_gb = 0.09", "usd_per_gb = -0.09", r"egress\.paths\.internet\.usd_per_gb"),
        ('default_path = "same_zone"', 'default_path = "moon"', "default_path"),
        ("provisioned_gb = 60", "provisioned_gb = inf", r"storage\.provisioned_gb"),
        ("usd_per_month = 54.0", "usd_per_month = -54.0", r"operations\.monitoring\.usd_per_month"),
        ("nodes = 1", "nodes = -1", r"cache\.nodes"),
        ("effective_date = 2026-11-23", "effective_date = 2026-11-23\neffective_until = 2026-11-01", "effective_until"),
    ],
)
def test_invalid_values_are_refused(tmp_path: Path, old: str, new: str, expected: str) -> None:
    path = write_variant(tmp_path, old, new)
    with pytest.raises(PriceBookError, match=expected):
        load_price_book(path)


def test_book_without_pools_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "book.toml"
    path.write_text(
        'version = "1"\ncurrency = "USD"\neffective_date = 2026-11-01\n'
        '[gateway]\nusd_per_vcpu_hour = 0.04\nsource = "x"\n'
        '[cache]\nusd_per_million_ops = 0.001\nsource = "y"\n'
        "[pools]\n",
        encoding="utf-8",
    )
    with pytest.raises(PriceBookError, match="pools"):
        load_price_book(path)


def test_file_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "book.toml"
    path.write_text("version = \n[[[", encoding="utf-8")
    with pytest.raises(PriceBookError, match="not valid TOML"):
        load_price_book(path)


def test_missing_file_is_refused_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(PriceBookError, match="absent.toml"):
        load_price_book(path)
