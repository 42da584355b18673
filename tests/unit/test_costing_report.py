"""Cost reports: grouping, time filters, totals, and the three output formats."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.costing_factories import record_from
from costing.ledger import CostRecord, SqliteLedger
from costing.report import GROUP_KEYS, ReportRow, build_report
from costing.report_render import render

DAY1 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
FEATURES = ("home-feed", "search", "similar-items")
TENANTS = ("acme", "globex")


def make_record(index: int, **overrides: object) -> CostRecord:
    """Record ``index`` of a mixed workload: three features, two tenants, 30 requests a day
    for three days, every third request a cache hit, every seventh an error; every
    combination of these occurs."""
    cache_hit = index % 3 == 0
    cost_compute = 0.0 if cache_hit else 1e-7 * (1 + index % 5)
    cost_gateway, cost_cache = 3e-9 * (1 + index % 2), 2e-9
    fields: dict[str, object] = {
        "request_id": f"req-{index:05d}",
        "timestamp": DAY1 + dt.timedelta(days=index // 30, minutes=index),
        "rpc": "Recommend",
        "feature": FEATURES[(index // 3) % 3],
        "tenant": TENANTS[index % 2],
        "model": "recommender",
        "model_version": "1",
        "pool": "" if cache_hit else "cpu-local",
        "device": "" if cache_hit else "cpu",
        "cache_hit": cache_hit,
        "status": "INVALID_ARGUMENT" if index % 7 == 0 else "OK",
        "compute_ns": 0 if cache_hit else 1_000_000 * (1 + index % 5),
        "gateway_cpu_ns": 300_000,
        "cache_ops": 1 if cache_hit else 2,
        "cost_total": cost_compute + cost_gateway + cost_cache,
        "cost_compute": cost_compute,
        "cost_gateway": cost_gateway,
        "cost_cache": cost_cache,
        "cost_avoided": 2e-7 if cache_hit else 0.0,
        "currency": "USD",
        "price_book_version": "test-1",
    }
    fields.update(overrides)
    return record_from(**fields)  # type: ignore[arg-type]


RECORDS = [make_record(index) for index in range(90)]


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    with SqliteLedger(tmp_path / "ledger.sqlite") as opened:
        opened.write(RECORDS)
        yield opened


def split(rows: list[ReportRow]) -> tuple[list[ReportRow], list[ReportRow]]:
    return [row for row in rows if not row.is_total], [row for row in rows if row.is_total]


def test_group_by_feature_sums_each_feature(ledger: SqliteLedger) -> None:
    groups, (total,) = split(build_report(ledger, ["feature"], since=None, until=None))
    assert [row.group["feature"] for row in groups] == sorted(FEATURES)
    for row in groups:
        members = [record for record in RECORDS if record.feature == row.group["feature"]]
        assert row.requests == len(members)
        assert row.cache_hits == sum(record.cache_hit for record in members)
        assert row.errors == sum(record.status != "OK" for record in members)
        assert row.compute_seconds == Decimal(sum(record.compute_ns for record in members)) / 10**9
        assert row.direct_pico == sum(record.cost_total_pico for record in members)
        assert row.compute_pico == sum(record.cost_compute_pico for record in members)
        assert row.gateway_pico == sum(record.cost_gateway_pico for record in members)
        assert row.cache_pico == sum(record.cost_cache_pico for record in members)
        assert row.avoided_pico == sum(record.cost_avoided_pico for record in members)
        assert row.direct == Decimal(row.direct_pico) / 10**12  # exact decimal, never a float
        assert row.cost_per_1k_requests == (row.direct / row.requests * 1000).quantize(Decimal("1e-12"))
        assert row.currency == "USD"
    # The totals row equals the sum of the records, and of the ledger.
    assert total.group == {"feature": None}
    assert total.requests == len(RECORDS) == 90
    assert total.cache_hits == 30
    assert total.errors == 13  # multiples of 7 in 0..89
    assert total.direct_pico == sum(record.cost_total_pico for record in RECORDS) == ledger.total_cost_pico()
    assert total.direct_pico == sum(row.direct_pico for row in groups)  # exact, whatever the grouping
    assert total.avoided == Decimal("0.000006")  # 30 hits x 2e-7


def test_group_by_several_keys_including_day_and_cache_hit(ledger: SqliteLedger) -> None:
    groups, _ = split(build_report(ledger, ["day", "cache_hit", "tenant"], since=None, until=None))
    assert {row.group["day"] for row in groups} == {"2026-11-01", "2026-11-02", "2026-11-03"}
    assert {row.group["cache_hit"] for row in groups} == {True, False}
    assert len(groups) == 3 * 2 * 2
    for row in groups:
        members = [
            record
            for record in RECORDS
            if record.timestamp.date().isoformat() == row.group["day"]
            and record.cache_hit is row.group["cache_hit"]
            and record.tenant == row.group["tenant"]
        ]
        assert row.requests == len(members) > 0
        assert row.direct_pico == sum(record.cost_total_pico for record in members)


def test_since_is_inclusive_and_until_exclusive(ledger: SqliteLedger) -> None:
    _, (total,) = split(build_report(ledger, ["feature"], since=dt.date(2026, 11, 2), until=dt.date(2026, 11, 3)))
    on_day_two = [record for record in RECORDS if record.timestamp.date() == dt.date(2026, 11, 2)]
    assert total.requests == len(on_day_two) == 30
    assert total.direct_pico == sum(record.cost_total_pico for record in on_day_two)
    # A record exactly at `since` is in; one exactly at `until` is out.
    first_at_day_two = min(record.timestamp for record in on_day_two)
    window = build_report(ledger, [], since=first_at_day_two, until=first_at_day_two + dt.timedelta(minutes=2))
    assert window[0].requests == 2  # the records at +0 and +1 minute; the one at +2 is out


def test_no_grouping_gives_the_totals_row_only(ledger: SqliteLedger) -> None:
    (total,) = build_report(ledger, [], since=None, until=None)
    assert total.is_total and total.group == {} and total.requests == 90


def test_repeated_key_is_grouped_once(ledger: SqliteLedger) -> None:
    rows = build_report(ledger, ["tenant", "tenant"], since=None, until=None)
    assert list(rows[0].group) == ["tenant"]


def test_unknown_group_key_names_the_allowed_ones(ledger: SqliteLedger) -> None:
    with pytest.raises(ValueError) as caught:
        build_report(ledger, ["feature", "colour"], since=None, until=None)
    assert "colour" in str(caught.value)
    assert all(key in str(caught.value) for key in GROUP_KEYS)


def test_range_without_records_gives_no_rows_or_a_zero_total_in_the_books_currency(ledger: SqliteLedger) -> None:
    assert build_report(ledger, ["feature"], since=dt.date(2030, 1, 1), until=None) == []
    (zero,) = build_report(ledger, ["feature"], since=dt.date(2030, 1, 1), until=None, currency="USD")
    assert zero.is_total and zero.requests == 0 and zero.direct_pico == 0 and zero.fully_loaded_pico == 0
    table = render([zero], "table")
    assert "TOTAL" in table and "fully_loaded" in table, "an empty range keeps its columns"


def test_currencies_are_never_added_together(tmp_path: Path) -> None:
    with SqliteLedger(tmp_path / "ledger.sqlite") as ledger:
        ledger.write([make_record(1), make_record(2, currency="EUR")])
        rows = build_report(ledger, ["tenant"], since=None, until=None)
    groups, totals = split(rows)
    assert [(row.group["tenant"], row.currency) for row in groups] == [("acme", "EUR"), ("globex", "USD")]
    assert [(row.currency, row.requests) for row in totals] == [("EUR", 1), ("USD", 1)]


def test_csv_reads_back_to_the_same_numbers(ledger: SqliteLedger) -> None:
    rows = build_report(ledger, ["feature", "cache_hit"], since=None, until=None)
    parsed = list(csv.DictReader(io.StringIO(render(rows, "csv"))))
    assert list(parsed[0]) == [
        "row_type", "feature", "cache_hit", "requests", "cache_hits", "errors", "compute_seconds",
        "response_bytes", "direct", "compute", "gateway", "cache", "egress", "avoided", "avoided_non_cash",
        "overhead", "idle",
        "storage", "operations", "fully_loaded", "cost_per_1k_requests", "fully_loaded_per_1k_requests",
        "clicks", "conversions", "revenue", "conversions_per_1k_requests", "revenue_per_1k_requests", "cost_basis",
        "cost_per_conversion", "return_on_cost", "currency",
    ]  # fmt: skip
    # No reconciled windows, no outcomes: those columns are empty, never a made-up zero.
    assert {line["fully_loaded"] for line in parsed} == {""}
    assert {line["cost_basis"] for line in parsed} == {"direct"}
    assert len(parsed) == len(rows)
    assert [line["row_type"] for line in parsed] == ["group"] * (len(rows) - 1) + ["total"]
    assert {line["cache_hit"] for line in parsed} == {"true", "false", ""}
    for line, row in zip(parsed, rows):
        assert int(line["requests"]) == row.requests
        assert Decimal(line["direct"]) == row.direct  # exact decimal text
        assert "e" not in line["direct"].lower(), "never scientific notation"
        assert Decimal(line["cost_per_1k_requests"]) == row.cost_per_1k_requests
    group_cost = sum(Decimal(line["direct"]) for line in parsed if line["row_type"] == "group")
    assert group_cost == Decimal(parsed[-1]["direct"])  # the same total, exactly


def test_json_is_a_list_of_objects(ledger: SqliteLedger) -> None:
    rows = build_report(ledger, ["tenant"], since=None, until=None)
    parsed = json.loads(render(rows, "json"))
    assert isinstance(parsed, list) and len(parsed) == 3
    assert parsed[0]["row_type"] == "group" and parsed[0]["tenant"] == "acme"
    assert parsed[-1]["row_type"] == "total" and parsed[-1]["tenant"] is None
    assert parsed[-1]["requests"] == 90
    assert parsed[-1]["direct"] == "0.000018585" == str(rows[-1].direct.normalize())
    assert sum(item["requests"] for item in parsed[:-1]) == 90


def test_table_shows_groups_and_totals(ledger: SqliteLedger) -> None:
    text = render(build_report(ledger, ["feature"], since=None, until=None), "table")
    for feature in FEATURES:
        assert feature in text
    assert "TOTAL" in text
    assert "cost_per_1k_requests" in text
    assert "\x1b[" not in text  # plain text, no terminal escapes


def test_unknown_format_is_refused(ledger: SqliteLedger) -> None:
    rows = build_report(ledger, ["feature"], since=None, until=None)
    with pytest.raises(ValueError, match="table, csv, json"):
        render(rows, "xml")  # type: ignore[arg-type]
