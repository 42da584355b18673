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
        cost_total=1.5e-8,
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
    assert "No reconciled windows" in result.stderr


def test_reconciliation_is_stated_under_the_table(ledger_path: Path) -> None:
    from costing.price_book import load_price_book
    from costing.reconciliation.allocation import TritonCompute, reconcile_window

    book = load_price_book(Path(__file__).resolve().parents[2] / "costing" / "price_book.toml")
    start = dt.datetime(2026, 11, 1, 10, 0, tzinfo=dt.UTC)
    end = start + dt.timedelta(minutes=2)
    with SqliteLedger(ledger_path) as ledger:
        usage = ledger.owner_usage(start, end)
        result = reconcile_window(start, end, usage, book, pools=["cpu-local"],
                                  triton={"cpu-local": TritonCompute(3_000_000, 2_500_000, 2, 2)})  # fmt: skip
        ledger.write_windows(result.windows, result.allocations)
    table = runner.invoke(cost_app, ["report", "--by", "feature", "--ledger", str(ledger_path)])
    assert table.exit_code == 0, table.output
    assert "fully_loaded" in table.stdout
    # 2 ms attributed (two requests of 1 ms) vs 2.5 ms compute_infer: -20 %.
    assert "Reconciliation cpu-local: 1 windows" in table.stdout and "-20.0 %" in table.stdout
    assert "identity exact" in table.stdout
    as_json = runner.invoke(cost_app, ["report", "--by", "feature", "--format", "json", "--ledger", str(ledger_path)])
    assert json.loads(as_json.stdout)[0]["cost_basis"] == "fully_loaded"
    assert "-20.0 %" in as_json.stderr  # machines get clean JSON on stdout
    summary = runner.invoke(cost_app, ["reconciliation", "--ledger", str(ledger_path)])
    assert "-20.0 %" in summary.stdout and "(shared: storage + operations)" in summary.stdout
