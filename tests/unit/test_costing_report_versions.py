"""``tollgate cost report --by model,model_version``: cost, conversions and revenue per 1k requests of each version."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from costing.cli import cost_app
from costing.ledger import SqliteLedger
from costing.money import to_pico
from costing.records import Outcome
from tests.unit.costing_factories import record_from

DAY1 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def record(index: int, version: str, compute_usd: str) -> object:
    return record_from(
        request_id=f"req-{index}", timestamp=DAY1 + dt.timedelta(minutes=index), rpc="Recommend",
        feature="home-feed", tenant="acme", model="recommender", model_version=version, pool="cpu-local",
        device="cpu", cache_hit=False, status="OK", compute_ns=1_000_000, gateway_cpu_ns=0, cache_ops=0,
        cost_compute=Decimal(compute_usd), currency="USD", price_book_version="test-1",
    )


def test_each_version_gets_its_cost_conversions_and_revenue_per_1k_requests(tmp_path: Path) -> None:
    # Version 1: 4 requests at $0.000001 each, one purchase of $12. Version 2: 2 requests at
    # $0.000003 each, one purchase of $30 and one click (not a conversion).
    ledger_file = tmp_path / "ledger.sqlite"
    with SqliteLedger(ledger_file) as ledger:
        ledger.write([record(n, "1", "0.000001") for n in range(4)] + [record(n, "2", "0.000003") for n in (4, 5)])
        ledger.write_outcomes([
            Outcome("o1", "req-0", DAY1, "purchase", to_pico(12), "USD"),
            Outcome("o2", "req-4", DAY1, "purchase", to_pico(30), "USD"),
            Outcome("o3", "req-5", DAY1, "click", 0, "USD"),
        ])  # fmt: skip

    result = CliRunner().invoke(
        cost_app, ["report", "--by", "model,model_version", "--format", "json", "--ledger", str(ledger_file)]
    )
    assert result.exit_code == 0, result.output
    rows = {row["model_version"]: row for row in json.loads(result.stdout) if row["row_type"] == "group"}
    one, two = rows["1"], rows["2"]
    # cost per 1k = 1,000 x direct / requests; conversions per 1k = 1,000 x conversions / requests
    assert (one["requests"], Decimal(one["cost_per_1k_requests"])) == (4, Decimal("0.001"))
    assert (Decimal(one["conversions_per_1k_requests"]), Decimal(one["revenue_per_1k_requests"])) == (250, 3000)
    assert (two["requests"], Decimal(two["cost_per_1k_requests"])) == (2, Decimal("0.003"))
    assert (Decimal(two["conversions_per_1k_requests"]), Decimal(two["revenue_per_1k_requests"])) == (500, 15000)
    assert (two["clicks"], two["conversions"]) == (1, 1)

    table = CliRunner().invoke(
        cost_app, ["report", "--by", "model_version", "--ledger", str(ledger_file), "--columns",
                   "requests,cost_per_1k_requests,conversions_per_1k_requests,revenue_per_1k_requests"],
    )
    assert table.exit_code == 0, table.output
    assert "conversions_per_1k_requests" in table.stdout and "revenue_per_1k_requests" in table.stdout
