"""Prometheus counters of what requests cost, so that a cluster of gateways sums in Prometheus.

``CostMetrics.observe(record)`` is called once per cost record (pass it to ``LedgerWriter``'s
``observers``), so the counters add up to exactly what the ledger holds:
``sum(tollgate_cost_usd_total) == SUM(cost_total)`` over the same records.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from costing.records import CostRecord

log = logging.getLogger(__name__)

NS_PER_SECOND = 1_000_000_000
ATTRIBUTION_LABELS: tuple[str, ...] = ("feature", "tenant", "model", "model_version", "traffic", "pool", "rpc")
BUDGET_LABELS: tuple[str, ...] = ("scope", "name")


class CostMetrics:
    """The cost counters, in ``registry`` (a fresh one by default, so that tests and several
    gateways in one process never share counters by accident)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        labels = ATTRIBUTION_LABELS
        self.cost = Counter(
            "tollgate_cost_usd", "Direct cost of requests (compute + gateway + cache + egress), USD.", labels,
            registry=self.registry,
        )  # fmt: skip
        self.compute_seconds = Counter(
            "tollgate_compute_seconds", "Model-measured compute of requests, device-seconds.", labels,
            registry=self.registry,
        )  # fmt: skip
        self.requests = Counter(
            "tollgate_requests",
            "Priced requests.",
            (*labels, "status", "cache", "route_reason"),
            registry=self.registry,
        )
        self.avoided = Counter(
            "tollgate_cache_avoided_usd", "Compute cost that cache hits avoided, USD.", labels, registry=self.registry
        )
        self.egress_bytes = Counter(
            "tollgate_egress_bytes", "Response bytes sent to callers.", labels, registry=self.registry
        )
        self.budget_used = Gauge(
            "tollgate_budget_used_ratio", "Month-to-date direct cost / monthly budget.", BUDGET_LABELS,
            registry=self.registry,
        )  # fmt: skip
        self.budget_alerts = Counter(
            "tollgate_budget_alerts", "Budget thresholds crossed.", (*BUDGET_LABELS, "threshold"),
            registry=self.registry,
        )  # fmt: skip
        self.reconciliation_difference = Gauge(
            "tollgate_reconciliation_difference_ratio",
            "Last window: (attributed compute - Triton compute_infer) / Triton compute_infer.",
            ("pool",),
            registry=self.registry,
        )

        self.ledger_state = Gauge(
            "tollgate_ledger_state",
            "Where cost records go: 0 the ledger database, 1 its local journal (the database fails), "
            "2 nowhere (both fail: the gateway refuses calls unless set to fail open).",
            registry=self.registry,
        )
        self.ledger_journal_records = Gauge(
            "tollgate_ledger_journal_records", "Cost records in the journal, waiting for the database.", registry=self.registry
        )
        self._children: dict[tuple[str, ...], tuple[Any, ...]] = {}
        self._requests_children: dict[tuple[str, ...], Any] = {}
        self.ledger_dropped = Counter(
            "tollgate_ledger_dropped_records",
            "Cost records dropped because neither the ledger nor its journal took them (fail-open only).",
            registry=self.registry,
        )

    def observe_ledger(self, state: int, journal_records: int) -> None:
        self.ledger_state.set(state)
        self.ledger_journal_records.set(journal_records)

    def observe(self, record: CostRecord) -> None:
        """Count one cost record (call exactly once per record). The labelled children are
        looked up once per label set (``labels()`` costs more than the increments)."""
        labels = (record.feature, record.tenant, record.model, record.model_version, record.traffic, record.pool, record.rpc)
        children = self._children.get(labels)
        if children is None:
            children = self._children[labels] = tuple(
                counter.labels(*labels) for counter in (self.cost, self.compute_seconds, self.avoided, self.egress_bytes)
            )
        cost, compute_seconds, avoided, egress_bytes = children
        cost.inc(record.cost_total)
        compute_seconds.inc(record.compute_ns / NS_PER_SECOND)
        request_labels = (*labels, record.status, "hit" if record.cache_hit else "miss", record.route_reason)
        requests = self._requests_children.get(request_labels)
        if requests is None:
            requests = self._requests_children[request_labels] = self.requests.labels(*request_labels)
        requests.inc()
        if record.cost_avoided:
            avoided.inc(record.cost_avoided)
        if record.response_bytes:
            egress_bytes.inc(record.response_bytes)

    def observe_budget(self, scope: str, name: str, used_ratio: float) -> None:
        self.budget_used.labels(scope, name).set(used_ratio)

    def observe_budget_alert(self, scope: str, name: str, threshold: float) -> None:
        self.budget_alerts.labels(scope, name, f"{threshold:g}").inc()

    def observe_difference(self, pool: str, difference: float) -> None:
        self.reconciliation_difference.labels(pool).set(difference)

    def total(self, counter: Counter) -> float:
        """Sum of ``counter`` over all its label sets (tests, reconciliation with the ledger)."""
        return sum(
            sample.value for metric in counter.collect() for sample in metric.samples if sample.name.endswith("_total")
        )


@dataclass
class MetricsServer:
    """The HTTP exporter; ``close()`` stops it."""

    server: Any
    thread: Any
    port: int

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_metrics_server(metrics: CostMetrics, port: int, host: str = "127.0.0.1") -> MetricsServer | None:
    """Serve ``metrics`` for Prometheus at http://host:port/metrics; port 0 = off (returns None)."""
    if port == 0:
        return None
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    log.info("cost metrics on http://%s:%d/metrics", host, port)
    return MetricsServer(server, thread, port)
