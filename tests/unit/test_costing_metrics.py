"""Prometheus cost counters: they add up to exactly what the ledger holds, and are served."""

from __future__ import annotations

import math
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_costing_ledger import make_record

from costing.ledger import LedgerWriter, SqliteLedger
from costing.metrics import CostMetrics, start_metrics_server
from tests.support import port_for_later_bind

FEATURES = ("home_feed", "cart_upsell", "search_box")


def workload(count: int) -> list:
    return [
        make_record(
            index,
            feature=FEATURES[index % 3],
            tenant=("acme", "globex")[index % 2],
            cache_hit=index % 4 == 0,
            status="OK" if index % 9 else "DEADLINE_EXCEEDED",
            cost_avoided=3e-8 if index % 4 == 0 else 0.0,
            response_bytes=700 + index,
            cost_compute=1e-8 * (1 + index % 7) + 1e-9,
        )
        for index in range(count)
    ]


async def test_ledger_totals_equal_counter_totals(tmp_path: Path) -> None:
    metrics = CostMetrics()
    records = workload(5_000)
    with SqliteLedger(tmp_path / "ledger.sqlite") as ledger:
        async with LedgerWriter(ledger, flush_interval_s=0.05, observers=[metrics.observe]) as writer:
            for record in records:
                writer.record(record)
        assert ledger.count() == metrics.total(metrics.requests) == 5_000
        assert metrics.total(metrics.cost) == pytest.approx(ledger.total_cost(), rel=1e-9)
        compute_s = sum(r.compute_ns for r in ledger.records()) / 1e9
        assert metrics.total(metrics.compute_seconds) == pytest.approx(compute_s, rel=1e-12)
        by_feature = {s.group["feature"]: s.cost_total for s in ledger.summarize(["feature"])}
    for feature in FEATURES:
        counted = sum(
            sample.value for family in metrics.cost.collect() for sample in family.samples
            if sample.name.endswith("_total") and sample.labels["feature"] == feature
        )  # fmt: skip
        assert counted == pytest.approx(by_feature[feature], rel=1e-9)
    assert metrics.total(metrics.avoided) == pytest.approx(math.fsum(r.cost_avoided for r in records))
    assert metrics.total(metrics.egress_bytes) == sum(r.response_bytes for r in records)


def test_requests_are_counted_by_status_and_cache() -> None:
    metrics = CostMetrics()
    for record in workload(36):
        metrics.observe(record)
    samples = [s for family in metrics.requests.collect() for s in family.samples if s.name.endswith("_total")]
    assert sum(s.value for s in samples if s.labels["cache"] == "hit") == 9
    assert sum(s.value for s in samples if s.labels["status"] == "DEADLINE_EXCEEDED") == 4
    assert set(samples[0].labels) == {
        "feature", "tenant", "model", "model_version", "traffic", "pool", "rpc", "status", "cache", "route_reason"
    }


async def test_a_failing_observer_never_loses_the_record(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def broken(record: object) -> None:
        raise RuntimeError("observer bug")

    with SqliteLedger(tmp_path / "ledger.sqlite") as ledger:
        writer = LedgerWriter(ledger, flush_interval_s=3600, observers=[broken])
        writer.record(make_record(0))
        await writer.close()
        assert ledger.count() == 1
    assert "observer" in caplog.text


def test_the_exporter_serves_the_counters_over_http() -> None:
    metrics = CostMetrics()
    for record in workload(10):
        metrics.observe(record)
    assert start_metrics_server(metrics, 0) is None  # 0 = off
    server = start_metrics_server(metrics, port_for_later_bind())
    assert server is not None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        server.close()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    served = sum(s.value for s in families["tollgate_cost_usd"].samples if s.name == "tollgate_cost_usd_total")
    assert served == pytest.approx(metrics.total(metrics.cost))
    assert "tollgate_compute_seconds_total" in text and "tollgate_requests_total" in text
