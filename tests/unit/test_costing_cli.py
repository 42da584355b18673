"""``tollgate cost report`` through typer's CliRunner."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.unit.costing_factories import record_from
from costing.cli import cost_app
from costing.ledger import CostRecord, SqliteLedger
from costing.settings import get_costing_settings

runner = CliRunner()


def make_record(index: int, feature: str, tenant: str, day: int) -> CostRecord:
    return record_from(
        request_id=f"req-{index}",
        timestamp=dt.datetime(2026, 11, day, 10, index, tzinfo=dt.UTC),
        rpc="Recommend",
        feature=feature,
        tenant=tenant,
        model="recommender",
        model_version="1",
        pool="cpu-local",
        device="cpu",
        cache_hit=False,
        status="OK",
        compute_ns=1_000_000,
        gateway_cpu_ns=100_000,
        cache_ops=2,
        cost_compute=1.2e-8,
        cost_gateway=2e-9,
        cost_cache=1e-9,
        cost_avoided=0.0,
        currency="USD",
        price_book_version="test-1",
    )


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.sqlite"
    with SqliteLedger(path) as ledger:
        ledger.write(
            [
                make_record(0, "home-feed", "acme", day=1),
                make_record(1, "home-feed", "globex", day=1),
                make_record(2, "search", "acme", day=2),
                make_record(3, "search", "acme", day=3),
            ]
        )
    return path


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    get_costing_settings.cache_clear()
    yield
    get_costing_settings.cache_clear()


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_report_as_csv(ledger_path: Path) -> None:
    result = runner.invoke(cost_app, ["report", "--by", "feature", "--format", "csv", "--ledger", str(ledger_path)])
    assert result.exit_code == 0, result.output
    rows = csv_rows(result.stdout)
    assert [(row["row_type"], row["feature"], row["requests"]) for row in rows] == [
        ("group", "home-feed", "2"),
        ("group", "search", "2"),
        ("total", "", "4"),
    ]


def test_by_accepts_comma_lists_and_repeats(ledger_path: Path) -> None:
    args = ["report", "--by", "feature,tenant", "--by", "day", "--format", "json", "--ledger", str(ledger_path)]
    result = runner.invoke(cost_app, args)
    assert result.exit_code == 0, result.output
    parsed = json.loads(result.stdout)
    assert list(parsed[0])[:4] == ["row_type", "feature", "tenant", "day"]
    assert len(parsed) == 4 + 1  # every record is its own group here, plus the total


def test_since_and_until_filter(ledger_path: Path) -> None:
    args = ["report", "--by", "feature", "--since", "2026-11-02", "--until", "2026-11-03T00:00:00Z"]
    result = runner.invoke(cost_app, [*args, "--format", "json", "--ledger", str(ledger_path)])
    assert result.exit_code == 0, result.output
    parsed = json.loads(result.stdout)
    assert [(item["feature"], item["requests"]) for item in parsed] == [("search", 1), (None, 1)]


def test_default_table_format(ledger_path: Path) -> None:
    result = runner.invoke(cost_app, ["report", "--by", "tenant", "--ledger", str(ledger_path)])
    assert result.exit_code == 0, result.output
    assert "acme" in result.stdout and "globex" in result.stdout and "TOTAL" in result.stdout


def test_output_file(ledger_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports" / "by-feature.json"
    args = ["report", "--by", "feature", "--format", "json", "--ledger", str(ledger_path), "--output", str(out)]
    result = runner.invoke(cost_app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert str(out) in result.stderr
    assert json.loads(out.read_text(encoding="utf-8"))[-1]["requests"] == 4


def test_missing_ledger_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "ledger.sqlite"
    result = runner.invoke(cost_app, ["report", "--by", "feature", "--ledger", str(missing)])
    assert result.exit_code == 1
    assert "no cost ledger" in result.stderr and str(missing) in result.stderr
    assert "Traceback" not in result.output
    assert not missing.parent.exists()  # reporting never creates a ledger


def test_default_ledger_comes_from_settings(
    ledger_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    monkeypatch.setenv("TOLLGATE_LEDGER_PATH", str(ledger_path))
    result = runner.invoke(cost_app, ["report", "--by", "tenant", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert csv_rows(result.stdout)[-1]["requests"] == "4"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--by", "colour"], "allowed"),
        (["--by", "feature", "--since", "last tuesday"], "ISO"),
        (["--by", "feature", "--since", "2026-11-03", "--until", "2026-11-02"], "before"),
        (["--by", "feature", "--format", "xml"], "xml"),
    ],
)  # single words: the error panel may wrap lines anywhere between them
def test_bad_options_are_usage_errors(ledger_path: Path, args: list[str], expected: str) -> None:
    result = runner.invoke(cost_app, ["report", *args, "--ledger", str(ledger_path)])
    assert result.exit_code == 2
    assert expected in result.output


# --- formats, chart, ledger URL, reconciliation ---------------------------------------------


def test_parquet_needs_an_output_file_and_writes_one(ledger_path: Path, tmp_path: Path) -> None:
    result = runner.invoke(cost_app, ["report", "--by", "feature", "--format", "parquet", "--ledger", str(ledger_path)])
    assert result.exit_code == 2 and "--output" in result.output
    out = tmp_path / "report.parquet"
    args = ["report", "--by", "feature", "--format", "parquet", "--ledger", str(ledger_path), "--output", str(out)]
    result = runner.invoke(cost_app, args)
    assert result.exit_code == 0, result.output
    import pyarrow.parquet as pq

    table = pq.read_table(out)
    assert table.column("feature").to_pylist() == ["home-feed", "search", None]
    assert table.column("requests").to_pylist() == [2, 2, 4]


def test_chart_option_draws_a_png(ledger_path: Path, tmp_path: Path) -> None:
    chart = tmp_path / "cost.png"
    result = runner.invoke(cost_app, ["report", "--by", "tenant", "--ledger", str(ledger_path), "--chart", str(chart)])
    assert result.exit_code == 0, result.output
    assert chart.read_bytes()[:4] == b"\x89PNG"
    assert str(chart) in result.stderr


def test_ledger_url_option(ledger_path: Path) -> None:
    url = f"sqlite:///{ledger_path}"
    result = runner.invoke(cost_app, ["report", "--by", "tenant", "--format", "csv", "--ledger-url", url])
    assert result.exit_code == 0, result.output
    assert csv_rows(result.stdout)[-1]["requests"] == "4"
    both = runner.invoke(cost_app, ["report", "--ledger", str(ledger_path), "--ledger-url", url])
    assert both.exit_code == 2 and "not both" in both.output


def test_reconciliation_command_without_windows(ledger_path: Path) -> None:
    result = runner.invoke(cost_app, ["reconciliation", "--ledger", str(ledger_path)])
    assert result.exit_code == 0, result.output
    assert "No booked windows" in result.stderr


def book_two_minutes(ledger_path: Path) -> None:
    """Book 10:00-10:02 of Nov 1: records 0 and 1 (1 ms each), Triton measuring 2.5 ms."""
    from costing.price_book import load_price_book
    from costing.reconciliation.booking import BookingState, Counters, PoolReading, book_window, opening

    book = load_price_book(Path(__file__).resolve().parents[2] / "costing" / "price_book.toml")
    start = dt.datetime(2026, 11, 1, 10, 0, tzinfo=dt.UTC)
    served = {"recommender": ("recommender",)}
    with SqliteLedger(ledger_path) as ledger:
        ledger.book(lambda c: c.store(opening(start, book, "r", {"cpu-local": PoolReading({"0|recommender": Counters()}, served)}), [], []))

        def work(cursor):
            usage = cursor.take_records(start, start + dt.timedelta(minutes=2))
            reading = PoolReading({"0|recommender": Counters(2, 2, 0, 2_500_000, 0)}, served)
            result = book_window(start, start + dt.timedelta(minutes=2), usage, book, BookingState.from_json(cursor.last_booking().state),
                                 triton={"cpu-local": reading})  # fmt: skip
            cursor.store(result.booking, result.charges, result.allocated)

        ledger.book(work)


def test_the_tie_out_and_metered_share_are_stated_under_the_table(ledger_path: Path) -> None:
    book_two_minutes(ledger_path)
    table = runner.invoke(cost_app, ["report", "--by", "feature", "--ledger", str(ledger_path), "--since", "2026-11-01T10:00:00Z", "--until", "2026-11-01T10:02:00Z"])
    assert table.exit_code == 0, table.output
    assert "fully_loaded" in table.stdout
    assert "Tie-out: fully loaded = origin charges = $0.0" in table.stdout and "(difference 0)" in table.stdout
    # The records were priced 1.2e-8 $ each; Triton measured 2.5 ms x 0.044625 $/h = 3.0990e-8 $:
    # metering explained 2.4e-8 / 3.0990e-8 = 77.4 % of what the pool used.
    assert "Metered compute:" in table.stdout and "(77.4 % of what it used" in table.stdout
    assert "e-0" not in table.stdout, "money is never in scientific notation"
    as_json = runner.invoke(cost_app, ["report", "--by", "feature", "--format", "json", "--ledger", str(ledger_path)])
    assert json.loads(as_json.stdout)[0]["cost_basis"] == "fully_loaded"
    assert "difference 0" in as_json.stderr  # machines get clean JSON on stdout
    summary = runner.invoke(cost_app, ["reconciliation", "--ledger", str(ledger_path)])
    assert summary.exit_code == 0, summary.output
    assert "triton/cpu-local/recommender: 1 windows, 2 requests" in summary.stdout
    assert "metered 77.4 % of what it used" in summary.stdout and "identity exact" in summary.stdout


def test_the_default_ledger_is_the_newest_run_and_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_settings: None) -> None:
    import os
    import time

    from costing.cli import default_ledger_path

    for run, age in (("demo", 100), ("cluster", 0)):
        path = tmp_path / "var" / run / "ledger.sqlite"
        with SqliteLedger(path) as ledger:
            ledger.write([make_record(0, "home-feed", run, day=1)])
        os.utime(path, (time.time() - age, time.time() - age))
    assert default_ledger_path(tmp_path) == tmp_path / "var" / "cluster" / "ledger.sqlite"
    monkeypatch.delenv("TOLLGATE_LEDGER_PATH", raising=False)
    monkeypatch.delenv("TOLLGATE_LEDGER_URL", raising=False)
    monkeypatch.setattr("costing.cli.default_ledger_path", lambda root=None: default_ledger_path(tmp_path))
    result = runner.invoke(cost_app, ["report", "--by", "tenant", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert f"ledger: {tmp_path / 'var' / 'cluster' / 'ledger.sqlite'}" in result.stderr
    assert csv_rows(result.stdout)[0]["tenant"] == "cluster"


def test_relative_ranges_and_calendar_months(ledger_path: Path) -> None:
    from costing.cli import _time_range

    now = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
    assert _time_range("7d", None, now=now) == (now - dt.timedelta(days=7), None)
    assert _time_range("12h", None, now=now)[0] == now - dt.timedelta(hours=12)
    assert _time_range(None, None, "2026-02") == (
        dt.datetime(2026, 2, 1, tzinfo=dt.UTC), dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
    )  # fmt: skip
    assert _time_range(None, None, "2026-12")[1] == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    result = runner.invoke(cost_app, ["report", "--by", "feature", "--month", "2026-11", "--format", "csv", "--ledger", str(ledger_path)])
    assert result.exit_code == 0 and csv_rows(result.stdout)[-1]["requests"] == "4"
    bad = runner.invoke(cost_app, ["report", "--month", "November", "--ledger", str(ledger_path)])
    assert bad.exit_code == 2 and "2026-11" in bad.output


def test_an_empty_range_keeps_its_columns_and_a_zero_total(ledger_path: Path) -> None:
    result = runner.invoke(cost_app, ["report", "--by", "feature", "--month", "2030-01", "--ledger", str(ledger_path)])
    assert result.exit_code == 0, result.output
    assert "TOTAL" in result.stdout and "requests" in result.stdout and "fully_loaded" in result.stdout
    as_csv = runner.invoke(cost_app, ["report", "--by", "feature", "--month", "2030-01", "--format", "csv", "--ledger", str(ledger_path)])
    (total,) = csv_rows(as_csv.stdout)
    assert (total["row_type"], total["requests"], total["direct"]) == ("total", "0", "0")


def test_the_table_fits_the_terminal_or_drops_columns_and_says_so(ledger_path: Path) -> None:
    from costing.ledger import SqliteLedger as Ledger
    from costing.report import build_report
    from costing.report_render import render_table

    with Ledger(ledger_path) as ledger:
        rows = build_report(ledger, ["feature", "tenant"])
    narrow = render_table(rows, width=90)
    assert max(len(line) for line in narrow.splitlines()) <= 90
    assert "not shown for width" in narrow and "--columns" in narrow
    chosen = render_table(rows, columns=["requests", "direct", "clicks"], width=90)
    assert "clicks" in chosen and "overhead" not in chosen
    # Tiny amounts are shown in micro-dollars, with digits that mean something.
    assert "µUSD" in narrow and "0.015" in render_table(rows, columns=["direct"], width=200)
