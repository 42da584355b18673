"""Triton's own statistics for a model, as a server-side cross-check of the client's figures.

The statistics API counts every inference the server completed and the time it spent queueing
and computing them. Bracketing a load run with two snapshots gives the server's view of the same
run: requests counted (must equal what the client sent, warm-up included), mean server time per
request (queue + compute) and the mean dynamic-batch size.
"""

from __future__ import annotations

from typing import Any

import tritonclient.grpc as triton_grpc

_DURATIONS = ("success", "queue", "compute_input", "compute_infer", "compute_output")


def snapshot(url: str, model: str) -> dict[str, int]:
    client = triton_grpc.InferenceServerClient(url)
    try:
        stats = client.get_inference_statistics(model_name=model, as_json=True)["model_stats"]
    finally:
        client.close()
    totals: dict[str, int] = {"inference_count": 0, "execution_count": 0}
    for entry in stats:  # one per loaded version
        totals["inference_count"] += int(entry.get("inference_count", 0))
        totals["execution_count"] += int(entry.get("execution_count", 0))
        inference = entry.get("inference_stats", {})
        for name in _DURATIONS:
            totals[f"{name}_count"] = totals.get(f"{name}_count", 0) + int(inference.get(name, {}).get("count", 0))
            totals[f"{name}_ns"] = totals.get(f"{name}_ns", 0) + int(inference.get(name, {}).get("ns", 0))
    return totals


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, Any]:
    """What the server did between two snapshots (pure)."""
    diff = {key: after.get(key, 0) - before.get(key, 0) for key in after}
    requests = diff.get("success_count", 0)
    executions = diff.get("execution_count", 0)
    return {
        "requests": requests,
        "executions": executions,
        "mean_batch": round(diff.get("inference_count", 0) / executions, 2) if executions else None,
        # Rows (inferences) per request: above 1 when a client sends several rows per request.
        "rows_per_request": round(diff.get("inference_count", 0) / requests, 2) if requests else None,
        "mean_server_ms": round(diff.get("success_ns", 0) / requests / 1e6, 3) if requests else None,
        "mean_queue_ms": round(diff.get("queue_ns", 0) / requests / 1e6, 3) if requests else None,
        "mean_compute_infer_ms": round(diff.get("compute_infer_ns", 0) / requests / 1e6, 3) if requests else None,
    }
