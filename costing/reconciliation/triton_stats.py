"""Triton's own account of a pool's compute: statistics snapshots and their differences.

``TritonReader`` reads the statistics API (``get_inference_statistics(as_json=True)``) of every
endpoint of one pool and gives the cumulative counters of the models that execute, per served
model; the booking of a window takes its deltas from the counters stored with the previous
booking (``costing.reconciliation.booking``), so any replica can book any window.

Figures are execution-level: the per-batch-size ``batch_stats`` (one entry per execution),
never the per-request ``inference_stats``, in which every request of a batch is charged the
full batch time. An ensemble executes nothing itself; pass its composing models
(``executing_models`` finds them).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from costing.reconciliation.booking import Counters, PoolReading

log = logging.getLogger(__name__)

ENSEMBLE_PLATFORM = "ensemble"


class StatsClient(Protocol):
    """A tritonclient gRPC client, aio or sync (``tritonclient.grpc[.aio].InferenceServerClient``)."""

    def get_inference_statistics(self, model_name: str = "", *args: Any, **kwargs: Any) -> Any: ...


ModelCounters = Counters  # cumulative execution-level counters of one model on one endpoint


def _ns(stat: Mapping[str, Any] | None) -> int:
    return int((stat or {}).get("ns", 0))


def parse_statistics(payload: Mapping[str, Any], models: Iterable[str] | None = None) -> dict[str, ModelCounters]:
    """Counters per model name (versions summed) from a ``get_inference_statistics(as_json=True)``
    answer; only ``models`` when given. Numbers arrive as strings (int64 in JSON) or ints."""
    wanted = set(models) if models is not None else None
    result: dict[str, ModelCounters] = {}
    for stats in payload.get("model_stats", []):
        name = stats.get("name", "")
        if wanted is not None and name not in wanted:
            continue
        batches = stats.get("batch_stats") or []
        if batches:
            input_ns = sum(_ns(batch.get("compute_input")) for batch in batches)
            infer_ns = sum(_ns(batch.get("compute_infer")) for batch in batches)
            output_ns = sum(_ns(batch.get("compute_output")) for batch in batches)
        else:  # no batching: every request is its own execution
            inference = stats.get("inference_stats") or {}
            input_ns = _ns(inference.get("compute_input"))
            infer_ns = _ns(inference.get("compute_infer"))
            output_ns = _ns(inference.get("compute_output"))
        counters = ModelCounters(
            executions=int(stats.get("execution_count", 0)),
            inferences=int(stats.get("inference_count", 0)),
            input_ns=input_ns,
            infer_ns=infer_ns,
            output_ns=output_ns,
        )
        result[name] = result[name] + counters if name in result else counters
    return result


async def _call(method: Any, *args: Any, **kwargs: Any) -> Any:
    """Await an aio client's method; run a sync client's in a worker thread."""
    if inspect.iscoroutinefunction(method):
        return await method(*args, **kwargs)
    result = await asyncio.to_thread(method, *args, **kwargs)
    return await result if inspect.isawaitable(result) else result


async def executing_models(client: Any, models: Iterable[str]) -> list[str]:
    """``models`` with every ensemble replaced by the models it runs (recursively), in order,
    without repeats; uses ``get_model_config(as_json=True)``."""
    result: list[str] = []
    pending = list(models)
    while pending:
        name = pending.pop(0)
        if name in result:
            continue
        config = (await _call(client.get_model_config, name, as_json=True)).get("config", {})
        if config.get("platform") == ENSEMBLE_PLATFORM:
            steps = config.get("ensemble_scheduling", {}).get("step", [])
            pending = [step["model_name"] for step in steps] + pending
        else:
            result.append(name)
    return result


class TritonReader:
    """Reads the cumulative counters of every endpoint (``clients``) of ``pool`` for the served
    ``models``, each ensemble resolved to the models it executes (its own statistics would count
    them twice). Until a Triton answers the model lookup, or when no endpoint answers, ``read``
    gives None: no figures rather than wrong ones. Endpoints are named by their position in the
    pool's configuration, the same on every replica."""

    def __init__(
        self,
        clients: Sequence[StatsClient],
        models: Sequence[str],
        pool: str,
        *,
        timeout_s: float = 5.0,
        headers: Mapping[str, str] | None = None,
    ):
        """``headers``: sent with every statistics call, e.g. the key of Triton's restricted
        statistics protocol (``triton-grpc-protocol-admin-key``)."""
        if not clients:
            raise ValueError(f"pool {pool!r}: no Triton client to read")
        if not models:
            raise ValueError(f"pool {pool!r}: no model to read")
        self.clients = tuple(clients)
        self.models = tuple(models)
        self.pool = pool
        self.served: dict[str, tuple[str, ...]] | None = None
        self._timeout_s = timeout_s
        self._header_kwargs = {"headers": dict(headers)} if headers else {}

    async def read(self) -> PoolReading | None:
        if self.served is None and not await self.resolve_models():
            return None
        assert self.served is not None
        wanted = sorted({model for executing in self.served.values() for model in executing})
        answers = await asyncio.gather(*(self._read(index, wanted) for index in range(len(self.clients))))
        counters = {key: value for answer in answers for key, value in answer.items()}
        if not counters:
            return None
        return PoolReading(counters, dict(self.served))

    async def resolve_models(self) -> bool:
        """Which models each served model executes, asking each endpoint until one answers."""
        for client in self.clients:
            try:
                served = {}
                for model in self.models:
                    served[model] = tuple(
                        await asyncio.wait_for(executing_models(client, [model]), timeout=self._timeout_s)
                    )
                self.served = served
                return True
            except Exception as exc:  # noqa: BLE001 - try the next endpoint, then the next read
                log.warning("pool %s: cannot read the model configs (%r)", self.pool, exc)
        return False

    async def _read(self, index: int, models: Sequence[str]) -> dict[str, Counters]:
        client = self.clients[index]
        try:
            payload = await asyncio.wait_for(
                _call(client.get_inference_statistics, "", as_json=True, **self._header_kwargs),
                timeout=self._timeout_s,
            )
        except Exception as exc:  # noqa: BLE001 - an unreachable endpoint: its counters wait for the next read
            log.warning("pool %s: Triton statistics of endpoint %d unavailable: %r", self.pool, index, exc)
            return {}
        counters = parse_statistics(payload, models)
        return {f"{index}|{model}": counters.get(model, Counters()) for model in models}
