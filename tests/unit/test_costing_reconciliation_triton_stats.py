"""Triton statistics: execution-level counters, snapshot differences, restarts, unreachable
endpoints, ensembles. The payloads have the shape of Triton 2.51's JSON answers (int64 as strings)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from costing.reconciliation.triton_stats import (
    ModelCounters,
    TritonStatsPoller,
    difference,
    executing_models,
    parse_statistics,
)


def model_stats(name: str, batches: dict[int, tuple[int, int, int, int]], inferences: int) -> dict[str, Any]:
    """Stats of ``name``: batch size -> (executions, input ns, infer ns, output ns)."""
    executions = sum(count for count, *_ in batches.values())
    per_request = sum(
        size * infer for size, (_, _, infer, _) in batches.items()
    )  # Triton charges each request the batch
    return {
        "name": name,
        "version": "1",
        "inference_count": str(inferences),
        "execution_count": str(executions),
        "inference_stats": {"compute_infer": {"count": str(inferences), "ns": str(per_request)}},
        "batch_stats": [
            {
                "batch_size": str(size),
                "compute_input": {"count": str(count), "ns": str(input_ns)},
                "compute_infer": {"count": str(count), "ns": str(infer_ns)},
                "compute_output": {"count": str(count), "ns": str(output_ns)},
            }
            for size, (count, input_ns, infer_ns, output_ns) in batches.items()
        ],
    }


def test_counters_are_per_execution_not_per_request() -> None:
    payload = {"model_stats": [model_stats("recommender", {1: (10, 100, 5_000, 300), 4: (5, 50, 20_000, 200)}, 30)]}
    (counters,) = parse_statistics(payload).values()
    assert counters == ModelCounters(executions=15, inferences=30, input_ns=150, infer_ns=25_000, output_ns=500)
    # The per-request sum charges each of the 4 requests of a batch the whole batch: 5000 + 4 * 20000.
    assert payload["model_stats"][0]["inference_stats"]["compute_infer"]["ns"] == "85000"


def test_unbatched_models_and_missing_fields() -> None:
    payload = {
        "model_stats": [
            {"name": "plain", "inference_count": "3", "execution_count": "3", "inference_stats": {
                "compute_input": {"count": "3", "ns": "30"}, "compute_infer": {"count": "3", "ns": "900"},
                "compute_output": {}}},
            {"name": "fresh", "inference_stats": {"success": {}, "compute_infer": {}}},
            {"name": "other", "execution_count": "9"},
        ]
    }  # fmt: skip
    parsed = parse_statistics(payload, ["plain", "fresh"])
    assert parsed == {"plain": ModelCounters(3, 3, 30, 900, 0), "fresh": ModelCounters()}


def test_difference_restarts_and_missing_endpoints() -> None:
    before = {(0, "m"): ModelCounters(10, 20, 100, 1_000, 10), (1, "m"): ModelCounters(5, 5, 50, 500, 5)}
    after = {
        (0, "m"): ModelCounters(12, 24, 130, 1_600, 14),
        (1, "m"): ModelCounters(1, 1, 9, 90, 1),
    }  # endpoint 1 restarted
    window = difference(before, after)
    assert (window.executions, window.inferences) == (2 + 1, 4 + 1)
    assert window.infer_ns == 600 + 90
    assert window.compute_ns == (30 + 600 + 4) + (9 + 90 + 1)
    assert window.complete
    partial = difference(before, {(0, "m"): after[(0, "m")]})  # endpoint 1 did not answer
    assert not partial.complete and partial.infer_ns == 600


class FakeTriton:
    """An aio client whose statistics grow by ``step`` per call; ``fail`` makes it unreachable."""

    def __init__(self, infer_step: int) -> None:
        self.calls = 0
        self.infer_step = infer_step
        self.fail = False

    async def get_inference_statistics(self, model_name: str = "", as_json: bool = False, **_: Any) -> dict[str, Any]:
        assert as_json and model_name == ""
        if self.fail:
            raise ConnectionError("unreachable")
        self.calls += 1
        n = self.calls
        return {"model_stats": [
            model_stats("recommender", {1: (n, 10 * n, self.infer_step * n, 5 * n)}, n),
            model_stats("product_search", {}, 0),
        ]}  # fmt: skip

    async def get_model_config(self, model_name: str, as_json: bool = False) -> dict[str, Any]:
        configs = {
            "product_search": {"platform": "ensemble", "ensemble_scheduling": {"step": [
                {"model_name": "query_encoder"}, {"model_name": "product_index"}]}},
            "query_encoder": {"backend": "python"}, "product_index": {"backend": "python"},
            "recommender": {"backend": "python"},
        }  # fmt: skip
        return {"config": configs[model_name]}


async def test_poller_sums_endpoints_and_diffs_snapshots() -> None:
    first, second = FakeTriton(1_000), FakeTriton(3_000)
    poller = TritonStatsPoller([first, second], ["recommender"], "cpu-local")
    assert await poller.poll() is None  # primes
    window = await poller.poll()
    assert window is not None and window.complete
    assert (window.executions, window.infer_ns, window.compute_ns) == (2, 4_000, 4_000 + 20 + 10)

    second.fail = True
    window = await poller.poll()
    assert window is not None and not window.complete and window.infer_ns == 1_000


def test_poller_needs_clients_and_models() -> None:
    with pytest.raises(ValueError, match="client"):
        TritonStatsPoller([], ["m"], "p")
    with pytest.raises(ValueError, match="model"):
        TritonStatsPoller([FakeTriton(1)], [], "p")


async def test_ensembles_are_replaced_by_the_models_they_run() -> None:
    assert await executing_models(FakeTriton(1), ["recommender", "product_search"]) == [
        "recommender", "query_encoder", "product_index",
    ]  # fmt: skip


async def test_a_sync_client_is_called_off_the_event_loop() -> None:
    class SyncTriton:
        def get_inference_statistics(self, model_name: str = "", as_json: bool = False) -> dict[str, Any]:
            return asyncio.run(FakeTriton(7).get_inference_statistics(model_name, as_json=as_json))

    snapshot = await TritonStatsPoller([SyncTriton()], ["recommender"], "cpu-local").snapshot()
    assert snapshot == {(0, "recommender"): ModelCounters(1, 1, 10, 7, 5)}


async def test_the_admin_key_goes_with_every_statistics_call() -> None:
    """Triton restricts its statistics protocol behind a header key (deploy/k8s): the poller sends it."""
    seen: list[dict[str, str] | None] = []

    class RestrictedTriton:
        async def get_inference_statistics(self, model_name: str = "", as_json: bool = False, headers=None):
            seen.append(headers)
            if headers != {"triton-grpc-protocol-admin-key": "k3y"}:
                raise ConnectionError("This protocol is restricted")
            return await FakeTriton(7).get_inference_statistics(model_name, as_json=as_json)

    keyed = TritonStatsPoller([RestrictedTriton()], ["recommender"], "cpu-local", headers={"triton-grpc-protocol-admin-key": "k3y"})
    assert await keyed.snapshot() == {(0, "recommender"): ModelCounters(1, 1, 10, 7, 5)}
    assert await TritonStatsPoller([RestrictedTriton()], ["recommender"], "cpu-local").snapshot() == {}
    assert seen == [{"triton-grpc-protocol-admin-key": "k3y"}, None]


async def test_ensembles_are_resolved_before_the_first_snapshot_and_retried_until_then() -> None:
    triton = FakeTriton(1_000)
    real_config = triton.get_model_config

    async def down(model_name: str, as_json: bool = False) -> dict[str, Any]:
        raise ConnectionError("Triton is starting")

    triton.get_model_config = down  # type: ignore[method-assign]
    poller = TritonStatsPoller([triton], ["recommender", "product_search"], "cpu-local", expand_ensembles=True)
    assert await poller.poll() is None and poller.models is None  # no figures rather than wrong ones
    triton.get_model_config = real_config  # type: ignore[method-assign]
    assert await poller.poll() is None  # resolved, primed
    assert poller.models == ("recommender", "query_encoder", "product_index")
    window = await poller.poll()
    assert window is not None and window.executions == 1
