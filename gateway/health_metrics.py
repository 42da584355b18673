"""The gateway's own health counters, exported on the cost metrics' /metrics endpoint: what an
SRE alerts on when the gateway protects itself (ejections, shed calls, refused credentials, a
cache that is skipped or holds bad entries). Every label comes from a fixed set or the
configured pools."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class HealthMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.ejections = Counter(
            "tollgate_endpoint_ejections", "Triton endpoints ejected by outlier detection.", ("pool",), registry=registry
        )
        self.refused = Counter(
            "tollgate_calls_refused",
            "Calls refused before reaching a model, by reason (unauthenticated, permission_denied).",
            ("reason",),
            registry=registry,
        )
        self.cache_errors = Counter(
            "tollgate_cache_errors", "Cache operations that failed and were bypassed.", ("operation",), registry=registry
        )
        self.cache_rejected = Counter(
            "tollgate_cache_rejected_entries", "Cache entries that failed their seal or schema check.", registry=registry
        )
        self.cache_skipped = Gauge(
            "tollgate_cache_circuit_open", "1 while the cache is skipped after consecutive failures.", registry=registry
        )
