"""Triton statistics: execution-level counters, cumulative readings per endpoint and executing
model, restarts, unreachable endpoints, ensembles. The payloads have the shape of Triton 2.51's
JSON answers (int64 as strings). Deltas between readings are the booking's (test_costing_booking)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from costing.reconciliation.booking import Counters
from costing.reconciliation.triton_stats import ModelCounters, TritonReader, executing_models, parse_statistics


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


def test_counters_since_an_earlier_reading_and_after_a_restart() -> None:
    before = Counters(10, 20, 100, 1_000, 10)
    assert Counters(12, 24, 130, 1_600, 14).since(before) == Counters(2, 4, 30, 600, 4)
    assert Counters(1, 1, 9, 90, 1).since(before) == Counters(1, 1, 9, 90, 1)  # restarted: all of it
    assert Counters(1, 1, 9, 90, 1).since(None) == Counters(1, 1, 9, 90, 1)
    assert Counters(1, 1, 9, 90, 1).compute_ns == 100


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


async def test_reader_gives_each_endpoints_cumulative_counters_per_served_model() -> None:
    first, second = FakeTriton(1_000), FakeTriton(3_000)
    reader = TritonReader([first, second], ["recommender", "product_search"], "cpu-local")
    reading = await reader.read()
    assert reading is not None
    assert reading.served == {"recommender": ("recommender",), "product_search": ("query_encoder", "product_index")}
    assert reading.counters["0|recommender"] == Counters(1, 1, 10, 1_000, 5)
    assert reading.counters["1|recommender"] == Counters(1, 1, 10, 3_000, 5)
    assert reading.counters["0|query_encoder"] == Counters()  # not loaded on this fake: zero

    second.fail = True  # an endpoint that does not answer is left out; its counters wait
    reading = await reader.read()
    assert reading is not None and not any(key.startswith("1|") for key in reading.counters)
    first.fail = True
    assert await reader.read() is None


def test_reader_needs_clients_and_models() -> None:
    with pytest.raises(ValueError, match="client"):
        TritonReader([], ["m"], "p")
    with pytest.raises(ValueError, match="model"):
        TritonReader([FakeTriton(1)], [], "p")


async def test_ensembles_are_replaced_by_the_models_they_run() -> None:
    assert await executing_models(FakeTriton(1), ["recommender", "product_search"]) == [
        "recommender", "query_encoder", "product_index",
    ]  # fmt: skip


async def test_a_sync_client_is_called_off_the_event_loop() -> None:
    class SyncTriton:
        def get_inference_statistics(self, model_name: str = "", as_json: bool = False) -> dict[str, Any]:
            return asyncio.run(FakeTriton(7).get_inference_statistics(model_name, as_json=as_json))

    class SyncConfig(SyncTriton):
        def get_model_config(self, model_name: str, as_json: bool = False) -> dict[str, Any]:
            return {"config": {"backend": "python"}}

    reading = await TritonReader([SyncConfig()], ["recommender"], "cpu-local").read()
    assert reading is not None and reading.counters == {"0|recommender": ModelCounters(1, 1, 10, 7, 5)}


async def test_the_admin_key_goes_with_every_statistics_call() -> None:
    """Triton restricts its statistics protocol behind a header key (deploy/k8s): the poller sends it."""
    seen: list[dict[str, str] | None] = []

    class RestrictedTriton(FakeTriton):
        def __init__(self) -> None:
            super().__init__(7)

        async def get_inference_statistics(self, model_name: str = "", as_json: bool = False, headers=None):
            seen.append(headers)
            if headers != {"triton-grpc-protocol-admin-key": "k3y"}:
                raise ConnectionError("This protocol is restricted")
            return await FakeTriton(7).get_inference_statistics(model_name, as_json=as_json)

    keyed = TritonReader([RestrictedTriton()], ["recommender"], "cpu-local", headers={"triton-grpc-protocol-admin-key": "k3y"})
    reading = await keyed.read()
    assert reading is not None and reading.counters == {"0|recommender": ModelCounters(1, 1, 10, 7, 5)}
    assert await TritonReader([RestrictedTriton()], ["recommender"], "cpu-local").read() is None
    assert seen == [{"triton-grpc-protocol-admin-key": "k3y"}, None]


async def test_ensembles_are_resolved_before_the_first_reading_and_retried_until_then() -> None:
    triton = FakeTriton(1_000)
    real_config = triton.get_model_config

    async def down(model_name: str, as_json: bool = False) -> dict[str, Any]:
        raise ConnectionError("Triton is starting")

    triton.get_model_config = down  # type: ignore[method-assign]
    reader = TritonReader([triton], ["recommender", "product_search"], "cpu-local")
    assert await reader.read() is None and reader.served is None  # no figures rather than wrong ones
    triton.get_model_config = real_config  # type: ignore[method-assign]
    reading = await reader.read()
    assert reading is not None
    assert sorted(key.split("|")[1] for key in reading.counters) == ["product_index", "query_encoder", "recommender"]
