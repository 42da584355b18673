"""Any tenant or feature string is data in every report format: never markup, a formula or a
terminal escape, and never a second row that looks like another tenant's."""

import csv
import io
import json

import pyarrow.parquet as pq
import pytest

from costing.report import ReportRow, totals
from costing.report_render import render

HOSTILE = ["[/]", "shop-uk[dim][/dim]", "=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2", "@SUM(A1)", "\tx", "a\x1b[31mred", "line\nbreak"]


def _rows(names):
    rows = [
        ReportRow({"tenant": name}, requests=1, cache_hits=0, errors=0, compute_ns=1_000_000, compute_pico=1_000_000,
                  currency="USD")
        for name in names
    ]  # fmt: skip
    return rows + totals(rows, ["tenant"])


def test_the_table_shows_every_tenant_string_as_text():
    text = render(_rows(HOSTILE + ["shop-uk"]), "table")
    assert "shop-uk[dim][/dim]" in text, "markup is shown, not applied"
    assert "[/]" in text
    assert "\x1b" not in text and "a\\x1b[31mred" in text, "a terminal escape is made visible"
    assert "line\\nbreak" in text
    assert sum(line.split("│")[0].strip() == "shop-uk" for line in text.splitlines() if "│" in line) <= 1


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised():
    parsed = list(csv.DictReader(io.StringIO(render(_rows(HOSTILE), "csv"))))
    tenants = [row["tenant"] for row in parsed if row["row_type"] == "group"]
    for cell in tenants:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    assert "'=HYPERLINK(\"http://x\",\"y\")" in tenants and "'-2" in tenants
    assert "[/]" in tenants, "harmless strings are kept as they are"
    numbers = [float(row["direct"]) for row in parsed]
    assert all(n == pytest.approx(1e-6) for n in numbers[:-1])


def test_json_and_parquet_keep_the_exact_strings():
    rows = _rows(HOSTILE)
    assert [item["tenant"] for item in json.loads(render(rows, "json"))][:-1] == HOSTILE
    table = pq.read_table(io.BytesIO(render(rows, "parquet")))
    assert table.column("tenant").to_pylist()[:-1] == HOSTILE
