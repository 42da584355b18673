"""Prometheus metrics of model rollouts. Labels are bounded: model names are the configured
models, versions those loaded in Triton, operations and reasons fixed sets."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# Jaccard index of the item ids of a shadow answer and the serving answer it mirrored.
OVERLAP_BUCKETS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class RolloutMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.transitions = Counter(
            "tollgate_rollout_transitions", "Rollout state changes made on this gateway.", ("model", "operation"),
            registry=registry,
        )  # fmt: skip
        self.rollbacks = Counter(
            "tollgate_rollout_rollbacks", "Candidates rolled back, by why: operator, error_rate or p99 (automatic).",
            ("model", "reason"), registry=registry,
        )  # fmt: skip
        self.shadow_overlap = Histogram(
            "tollgate_rollout_shadow_overlap",
            "Jaccard index of the item ids of a shadow answer and the serving answer it mirrored.",
            ("model", "serving_version", "candidate_version"),
            buckets=OVERLAP_BUCKETS,
            registry=registry,
        )
        self.shadow_skipped = Counter(
            "tollgate_rollout_shadow_skipped", "Shadow calls skipped: the mirror was at its concurrency limit.",
            ("model",), registry=registry,
        )  # fmt: skip
