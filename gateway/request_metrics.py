"""The gateway's request-latency histogram, exported beside the cost counters.

Registered in the cost metrics' registry, so one /metrics endpoint (``metrics_port``) serves
both; the Prometheus rules in deploy/prometheus read it for the latency objective.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

# From a cache hit (about a millisecond) to the slowest deadline worth answering.
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RequestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.duration = Histogram(
            "tollgate_request_duration_seconds",
            "Time from a call's arrival in the gateway to its settlement, by RPC.",
            ("rpc",),
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )

        self._by_rpc: dict[str, Histogram] = {}

    def observe_duration(self, rpc: str, seconds: float) -> None:
        child = self._by_rpc.get(rpc)
        if child is None:
            child = self._by_rpc[rpc] = self.duration.labels(rpc)
        child.observe(seconds)
