"""Model rollouts at run time: shadow and canary traffic to a candidate version, promote, roll
back (by an operator, or by the gateway when the candidate breaks its SLOs).

- The state (gateway/rollout_state.py) lives in Redis (gateway/rollout_store.py), shared by
  every replica; each re-reads it every ``rollout_refresh_s`` and keeps the last one it knew
  while Redis is down. A change is made by the replica that takes the operator's call: Triton
  loads the versions first (gateway/triton_repository.py), every endpoint reports them ready,
  then the state is written and applied.
- Per call, an active rollout is one attribute of the model (``RoutedModel.rollout``); with no
  rollout that attribute is None and the call pays nothing else. ``ActiveRollout.plan`` picks
  the version a call goes to: canary calls are an exact share of the calls (EvenSplit); shadow
  calls are answered by the serving version and a share of them is mirrored to the candidate
  off the caller's path (``ShadowMirror``: its own task and concurrency bound, its own ledger
  row marked ``shadow``, booked to the mirrored call's feature and tenant).
- Every candidate call (canary or shadow) lands in a sliding window (gateway/rollout_window.py);
  when it breaks the SLOs the gateway rolls the candidate back and says why (log, metric, note).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from costing.records import CANARY_TRAFFIC, SERVING_TRAFFIC, SHADOW_TRAFFIC
from gateway import rollout_state
from gateway.answers import ModelAnswer
from gateway.api.recommendation_pb2 import RecommendResponse
from gateway.errors import BackendUnavailable, InvalidArgument, NotFound, RequestError
from gateway.rollout_metrics import RolloutMetrics
from gateway.rollout_state import EvenSplit, Mode, RollbackReason, RolloutState
from gateway.rollout_store import RolloutStore
from gateway.rollout_window import OutcomeWindow, Slo, Verdict
from gateway.router import Router, RoutedModel
from gateway.settlement import Settlement, UsageTally
from gateway.triton_model import ModelState
from gateway.triton_repository import TritonRepository

log = logging.getLogger(__name__)

# Statuses of a candidate's call that count against it: the model or its endpoints failed.
# (A caller that went away, or a pool at its limit, says nothing about the candidate.)
CANDIDATE_FAULTS = frozenset({"INTERNAL", "UNAVAILABLE", "DEADLINE_EXCEEDED", "UNKNOWN"})


@dataclass(frozen=True, slots=True)
class CallPlan:
    """Where one call goes under an active rollout: ``version`` None is the serving version;
    ``state`` the called version's (its build id keys the cache); ``mirror``: a shadow copy
    goes to the candidate once the call is answered."""

    version: str | None
    state: ModelState
    traffic: str
    mirror: bool


def item_ids(answer: ModelAnswer) -> set[str]:
    """The item ids of an answer (its items are ``repeated Item items = 1`` on the wire)."""
    return {item.item_id for item in RecommendResponse.FromString(answer.items_wire).items}


def jaccard(first: set[str], second: set[str]) -> float:
    """|A ∩ B| / |A ∪ B|; two empty answers agree (1.0)."""
    union = first | second
    return len(first & second) / len(union) if union else 1.0


class ActiveRollout:
    """The per-call side of one model's active rollout (shadow or canary of one candidate)."""

    def __init__(
        self,
        state: RolloutState,
        model: RoutedModel,
        window: OutcomeWindow,
        mirror: ShadowMirror,
        metrics: RolloutMetrics,
        on_breach: Callable[[RolloutState, Verdict], None],
        check_s: float,
    ) -> None:
        self.state = state
        self.model = model
        self.window = window
        self._mirror = mirror
        self._metrics = metrics
        self._on_breach = on_breach
        self._check_s = check_s
        self._last_check_s = 0.0
        self._breached = False
        self._split = EvenSplit(state.share)
        self._canary = state.mode == "canary"
        self.shadow_compared = 0
        self.shadow_overlap_sum = 0.0
        self.shadow_skipped = 0

    def plan(self, serving: ModelState) -> CallPlan:
        """The version this call goes to (``serving``: the serving version's state)."""
        if not self._split.take():
            return CallPlan(None, serving, SERVING_TRAFFIC, False)
        candidate = self.model.version_state(self.state.candidate)
        if not candidate.ready:  # not (yet) ready here: the serving version answers
            return CallPlan(None, serving, SERVING_TRAFFIC, False)
        if self._canary:
            return CallPlan(self.state.candidate, candidate, CANARY_TRAFFIC, False)
        return CallPlan(None, serving, SERVING_TRAFFIC, True)

    def finished(
        self, plan: CallPlan, status: str, tally: UsageTally, route: Any, query: Any, tenant: str,
        answer: ModelAnswer | None,
    ) -> None:
        """After a planned call was settled: judge a canary call, mirror a shadow one. Never waits."""
        if plan.traffic == CANARY_TRAFFIC and not tally.cache_hit:
            self.observe(status, (time.perf_counter() - tally.started_s) * 1000)
        elif plan.mirror and answer is not None:
            if not self._mirror.mirror(self, route, query, tenant, tally.feature, answer):
                self.shadow_skipped += 1
                self._metrics.shadow_skipped.labels(self.model.name).inc()

    def observe(self, status: str, latency_ms: float) -> None:
        """One call of the candidate; rolls it back (once) when the window breaks an SLO."""
        now = time.monotonic()
        self.window.record(now, status not in CANDIDATE_FAULTS, latency_ms)
        if self._breached or now - self._last_check_s < self._check_s:
            return
        self._last_check_s = now
        verdict = self.window.verdict(now)
        if verdict is not None:
            self._breached = True
            self._on_breach(self.state, verdict)

    def observe_overlap(self, overlap: float) -> None:
        self.shadow_compared += 1
        self.shadow_overlap_sum += overlap
        self._metrics.shadow_overlap.labels(self.model.name, self.state.serving, self.state.candidate).observe(overlap)


class ShadowMirror:
    """Shadow calls to candidates: each in its own task, at most ``max_in_flight`` at once, and
    only while the pools are less than ``max_busy_share`` busy (a shadow call shares the pools'
    concurrency limits with the callers' calls: it must never take a slot a caller needs). A
    mirror beyond either bound is skipped (counted), never queued. Each is settled as real
    spend (traffic=shadow)."""

    def __init__(self, settlement: Settlement, max_in_flight: int, timeout_s: float, max_busy_share: float = 1.0) -> None:
        self._settlement = settlement
        self._max_in_flight = max_in_flight
        self._timeout_s = timeout_s
        self._max_busy_share = max_busy_share
        self._tasks: set[asyncio.Task[None]] = set()

    def mirror(self, rollout: ActiveRollout, route: Any, query: Any, tenant: str, feature: str, serving: ModelAnswer) -> bool:
        """Starts a shadow call of ``query``; False when skipped (at a bound)."""
        if len(self._tasks) >= self._max_in_flight or route.model.busy_share() >= self._max_busy_share:
            return False
        task = asyncio.get_running_loop().create_task(self._shadow(rollout, route, query, tenant, feature, serving))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _shadow(
        self, rollout: ActiveRollout, route: Any, query: Any, tenant: str, feature: str, serving: ModelAnswer
    ) -> None:
        candidate = rollout.state.candidate
        tally = UsageTally(route.rpc, feature, route.model.name, traffic=SHADOW_TRAFFIC)
        request_id = os.urandom(16).hex()
        status, answer = "OK", None
        with tally.meter:
            tally.model_version, tally.build_id = candidate, route.model.version_state(candidate).build_id
        try:
            answer, placement = await route.answer(query, self._timeout_s, None, candidate)
            tally.compute_ns, tally.model_version = answer.compute_ns, answer.model_version
            tally.pool, tally.route_reason, tally.attempts = placement.pool, placement.reason, placement.attempts
            tally.response_bytes = len(answer.items_wire)
        except RequestError as error:
            status = error.status
        except asyncio.CancelledError:
            self._settlement.settle(request_id, tenant, tally, "CANCELLED")
            raise
        except Exception:  # noqa: BLE001 - a bug in a shadow call must never reach a caller
            log.exception("shadow call to version %s of %s failed", candidate, route.model.name)
            status = "INTERNAL"
        self._settlement.settle(request_id, tenant, tally, status)
        rollout.observe(status, (time.perf_counter() - tally.started_s) * 1000)
        if answer is not None:
            with tally.meter:
                rollout.observe_overlap(jaccard(item_ids(serving), item_ids(answer)))

    async def close(self) -> None:
        """Waits for the shadow calls in flight (they are settled)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


@dataclass(frozen=True)
class RolloutReport:
    """A model's rollout as ``Status`` shows it."""

    state: RolloutState
    serving: str
    versions: list[tuple[str, str, bool]]  # (version, build id, ready on every endpoint)
    window_calls: int = 0
    window_errors: int = 0
    window_p99_ms: float = 0.0
    shadow_compared: int = 0
    shadow_mean_overlap: float = 0.0
    shadow_skipped: int = 0


class RolloutController:
    """The rollout of every model the gateway serves: state, transitions, automatic roll back."""

    def __init__(
        self,
        router: Router,
        store: RolloutStore,
        repository: TritonRepository,
        mirror: ShadowMirror,
        metrics: RolloutMetrics,
        models: list[str],
        *,
        slo: Slo,
        slo_check_s: float,
        refresh_s: float,
        drain_s: float,
        readiness_timeout_s: float,
    ) -> None:
        self._router = router
        self._store = store
        self._repository = repository
        self._mirror = mirror
        self._metrics = metrics
        self._states = {model: RolloutState(model) for model in models}
        self._slo = slo
        self._slo_check_s = slo_check_s
        self._refresh_s = refresh_s
        self._drain_s = drain_s
        self._readiness_timeout_s = readiness_timeout_s
        self._lock = asyncio.Lock()
        self._store_down = False
        self._refresh_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    # --- shared state ----------------------------------------------------------------------------

    async def start(self) -> None:
        await self._refresh_all()
        self._refresh_task = asyncio.create_task(self._refresh_loop(), name="rollout-refresh")

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self._refresh_all()
            except Exception:  # noqa: BLE001 - a bug here must not stop the refreshes
                log.exception("refreshing the rollout states failed; keeping the last known ones")

    async def _refresh_all(self) -> None:
        for model in self._states:
            try:
                await self._refresh(model)
            except BackendUnavailable as error:
                if not self._store_down:
                    log.warning("keeping the last known rollout states: %s", error.message)
                self._store_down = True
                return
        if self._store_down:
            log.info("the rollout state store answers again")
        self._store_down = False

    async def _refresh(self, model: str) -> RolloutState:
        """The stored state of ``model``, applied when it is not the one applied here."""
        stored = await self._store.load(model)
        if stored is not None and stored.revision != self._states[model].revision:
            self._apply(stored)
        return self._states[model]

    def _apply(self, state: RolloutState) -> None:
        previous = self._states[state.model]
        self._states[state.model] = state
        self._router.pin_serving(state.model, state.serving or None)
        routed = self._router.model(state.model)
        if previous.note != state.note:
            log.info("rollout of %s: %s (revision %d)", state.model, state.note, state.revision)
        if not state.active:
            routed.rollout = None
            return
        current = routed.rollout
        same_candidate = current is not None and current.state.candidate == state.candidate
        window = current.window if same_candidate else OutcomeWindow(self._slo)
        routed.rollout = ActiveRollout(
            state, routed, window, self._mirror, self._metrics, self._breached, self._slo_check_s
        )

    # --- operations -------------------------------------------------------------------------------

    def known(self, model: str) -> None:
        if model not in self._states:
            raise NotFound(f"model: {model!r} is not served by this gateway (served: {', '.join(self._states)})")

    async def report(self, model: str) -> RolloutReport:
        self.known(model)
        with contextlib.suppress(BackendUnavailable):
            await self._refresh(model)
        state = self._states[model]
        serving = state.serving or self._router.state(model).version
        rollout = self._router.model(model).rollout
        versions = self._loaded_versions(model)
        if rollout is None:
            return RolloutReport(state, serving, versions)
        calls, errors, p99_ms = rollout.window.summary(time.monotonic())
        return RolloutReport(
            state,
            serving,
            versions,
            window_calls=calls,
            window_errors=errors,
            window_p99_ms=p99_ms,
            shadow_compared=rollout.shadow_compared,
            shadow_mean_overlap=rollout.shadow_overlap_sum / rollout.shadow_compared if rollout.shadow_compared else 0.0,
            shadow_skipped=rollout.shadow_skipped,
        )

    def _loaded_versions(self, model: str) -> list[tuple[str, str, bool]]:
        """Every version ready on some endpoint: its build, and whether every endpoint has it ready.
        (Triton's metadata keeps listing an unloaded version: readiness tells.)"""
        states = [e.models[model] for e in self._router.endpoints()]
        ready = {v: s for m in states for v, s in m.versions.items() if s.ready}
        return [
            (version, ready[version].build_id, all(m.version_state(version).ready for m in states))
            for version in sorted(ready, key=lambda v: (len(v), v))
        ]

    async def start_rollout(self, model: str, mode: Mode, candidate: str, share: float) -> RolloutState:
        """Shadow or canary; loads the candidate next to the serving version when it is not
        ready on every endpoint, and moves no traffic before it is."""
        self.known(model)
        rollout_state.check_share(share)
        if candidate and not candidate.isdigit():
            raise InvalidArgument("candidate", f"must be a version number, got {candidate[:32]!r}")
        async with self._lock:
            state = await self._refresh(model)
            serving = state.serving or self._router.state(model).version
            if not serving:
                raise BackendUnavailable(f"{model}: no serving version is ready to roll out against")
            candidate = candidate or (state.candidate if state.active else self._default_candidate(model, serving))
            changed = rollout_state.start(state, mode, candidate, share, serving)
            versions = [serving, candidate]
            if not await self._repository.ready_everywhere(model, versions):
                await self._repository.keep_versions(model, versions, serving)
                await self._router.check_readiness(self._readiness_timeout_s)
            await self._store.save(changed)
            self._apply(changed)
            self._metrics.transitions.labels(model, mode).inc()
            return changed

    def _default_candidate(self, model: str, serving: str) -> str:
        others = [version for version, _, ready in self._loaded_versions(model) if version != serving and ready]
        if not others:
            raise NotFound(f"candidate: no version of {model} other than the serving {serving} is loaded; name one")
        return max(others, key=lambda version: (len(version), version))

    async def promote(self, model: str) -> RolloutState:
        """The candidate serves from now on; the previous serving version is unloaded after the drain."""
        self.known(model)
        async with self._lock:
            state = await self._refresh(model)
            changed = rollout_state.promote(state)
            await self._store.save(changed)
            self._apply(changed)
            self._metrics.transitions.labels(model, "promote").inc()
            await self._unload_after_drain(changed, state.serving)
            return changed

    async def rollback(self, model: str, reason: RollbackReason = "operator", detail: str = "") -> RolloutState:
        """All traffic back to the serving version; the candidate is unloaded after the drain."""
        self.known(model)
        async with self._lock:
            return await self._rollback(await self._refresh(model), reason, detail)

    async def _rollback(self, state: RolloutState, reason: RollbackReason, detail: str) -> RolloutState:
        changed = rollout_state.rollback(state, reason, detail)
        try:
            await self._store.save(changed)
        except BackendUnavailable:
            if reason == "operator":
                raise
            log.error("rolling %s back on this gateway only: the state store cannot be written", state.model)
        self._apply(changed)
        self._metrics.transitions.labels(state.model, "rollback").inc()
        self._metrics.rollbacks.labels(state.model, reason).inc()
        log.warning("rollout of %s: %s", state.model, changed.note)
        await self._unload_after_drain(changed, state.candidate)
        return changed

    async def _unload_after_drain(self, state: RolloutState, dropped: str) -> None:
        """Keeps only the serving version loaded, once calls already sent to ``dropped`` are done."""
        await asyncio.sleep(self._drain_s)
        await self._repository.keep_versions(state.model, [state.serving], state.serving, [dropped])
        await self._router.check_readiness(self._readiness_timeout_s)

    def _breached(self, state: RolloutState, verdict: Verdict) -> None:
        """Called on the request path: the roll back runs in its own task."""
        task = asyncio.get_running_loop().create_task(self._auto_rollback(state, verdict))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _auto_rollback(self, breached: RolloutState, verdict: Verdict) -> None:
        async with self._lock:
            current = self._states[breached.model]
            if current.revision != breached.revision:
                return  # already changed (by an operator or another replica)
            try:
                await self._rollback(current, verdict.breach, verdict.describe(self._slo))
            except RequestError as error:
                log.error("automatic roll back of %s failed: %s", breached.model, error.message)

    async def close(self) -> None:
        for task in (self._refresh_task, *self._background):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._mirror.close()
        await self._store.close()
