"""Triton's own account of a pool's compute: statistics snapshots and their differences.

``TritonStatsPoller`` reads the statistics API (``get_inference_statistics(as_json=True)``)
of every endpoint of one pool, keeps the cumulative counters of the models that execute,
and turns two snapshots into the ``TritonCompute`` of the window between them.

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
from dataclasses import dataclass, fields
from typing import Any, Protocol

from costing.reconciliation.allocation import TritonCompute

log = logging.getLogger(__name__)

ENSEMBLE_PLATFORM = "ensemble"


class StatsClient(Protocol):
    """A tritonclient gRPC client, aio or sync (``tritonclient.grpc[.aio].InferenceServerClient``)."""

    def get_inference_statistics(self, model_name: str = "", *args: Any, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class ModelCounters:
    """Cumulative execution-level counters of one model on one endpoint."""

    executions: int = 0
    inferences: int = 0
    input_ns: int = 0
    infer_ns: int = 0
    output_ns: int = 0

    def since(self, earlier: ModelCounters) -> ModelCounters:
        """What was added since ``earlier``; after a restart (a counter went down) all of self."""
        if any(getattr(self, f.name) < getattr(earlier, f.name) for f in fields(self)):
            return self
        return ModelCounters(*(getattr(self, f.name) - getattr(earlier, f.name) for f in fields(self)))

    def __add__(self, other: ModelCounters) -> ModelCounters:
        return ModelCounters(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


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


Snapshot = dict[tuple[int, str], ModelCounters]  # (endpoint index, model) -> counters


class TritonStatsPoller:
    """Snapshots the statistics of ``models`` on every endpoint (``clients``) of ``pool`` and
    gives the difference between consecutive snapshots.

    With ``expand_ensembles`` the models are first resolved with ``executing_models`` (an
    ensemble's own statistics would count its composing models twice); until a Triton answers
    that lookup, poll() gives no figures rather than wrong ones.
    """

    def __init__(
        self,
        clients: Sequence[StatsClient],
        models: Sequence[str],
        pool: str,
        *,
        expand_ensembles: bool = False,
        timeout_s: float = 5.0,
        headers: Mapping[str, str] | None = None,
    ):
        """``headers``: sent with every statistics call, e.g. the key of Triton's restricted
        statistics protocol (``triton-grpc-protocol-admin-key``)."""
        if not clients:
            raise ValueError(f"pool {pool!r}: no Triton client to poll")
        if not models:
            raise ValueError(f"pool {pool!r}: no model to poll")
        self.clients = tuple(clients)
        self.configured_models = tuple(models)
        self.models: tuple[str, ...] | None = None if expand_ensembles else tuple(models)
        self.pool = pool
        self._timeout_s = timeout_s
        self._header_kwargs = {"headers": dict(headers)} if headers else {}
        self._previous: Snapshot | None = None

    async def snapshot(self) -> Snapshot:
        """Current counters of every endpoint that answered (one that did not is logged and left out)."""
        if self.models is None:
            raise RuntimeError("models not resolved yet: call resolve_models() first")
        answers = await asyncio.gather(*(self._read(index) for index in range(len(self.clients))))
        return {key: counters for answer in answers for key, counters in answer.items()}

    async def poll(self) -> TritonCompute | None:
        """Take a snapshot; return what was computed since the previous one (None the first time,
        and while the models cannot be resolved)."""
        if self.models is None and not await self.resolve_models():
            return None
        current = await self.snapshot()
        previous, self._previous = self._previous, current
        if previous is None:
            return None
        return difference(previous, current)

    async def resolve_models(self) -> bool:
        """Replace ensembles by the models they run, asking each endpoint until one answers."""
        for client in self.clients:
            try:
                self.models = tuple(
                    await asyncio.wait_for(executing_models(client, self.configured_models), timeout=self._timeout_s)
                )
                return True
            except Exception as exc:  # noqa: BLE001 - try the next endpoint, then the next poll
                log.warning("pool %s: cannot read the model configs (%r)", self.pool, exc)
        return False

    def reset(self) -> None:
        """Forget the previous snapshot: the next poll() starts a new series."""
        self._previous = None

    async def _read(self, index: int) -> dict[tuple[int, str], ModelCounters]:
        client = self.clients[index]
        models = self.models or ()
        try:
            payload = await asyncio.wait_for(
                _call(client.get_inference_statistics, "", as_json=True, **self._header_kwargs),
                timeout=self._timeout_s,
            )
        except Exception as exc:  # noqa: BLE001 - an unreachable endpoint makes the window incomplete, not the loop fail
            log.warning("pool %s: Triton statistics of endpoint %d unavailable: %r", self.pool, index, exc)
            return {}
        counters = parse_statistics(payload, models)
        return {(index, model): counters.get(model, ModelCounters()) for model in models}


def difference(previous: Snapshot, current: Snapshot) -> TritonCompute:
    """The window between two snapshots. Keys in only one of them (an endpoint that did not
    answer) are left out and make the result incomplete."""
    total = ModelCounters()
    for key in previous.keys() & current.keys():
        total = total + current[key].since(previous[key])
    return TritonCompute(
        compute_ns=total.input_ns + total.infer_ns + total.output_ns,
        infer_ns=total.infer_ns,
        executions=total.executions,
        inferences=total.inferences,
        complete=previous.keys() == current.keys() and bool(current),
    )
