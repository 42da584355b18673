"""The path of every call, top to bottom: validate -> budget -> cache -> Triton -> cache fill
-> settle (-> commit, when answers wait for their cost record to be written).

The RPC-specific parts (validation, the model's inputs and outputs, the cache key) come from a
*route*; everything else is the same for Recommend and Search. Every request is settled
exactly once — answered, rejected or failed — so no cost record is lost. No grpc here: the
servicers translate in and out.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from gateway import telemetry_attributes as attr
from gateway.answers import ModelAnswer
from gateway.admission import Admission
from gateway.call_tracing import NO_TRACE, TRACEPARENT, CallTrace
from gateway.errors import BackendUnavailable, BudgetExhausted, DeadlineExceeded, LedgerUnavailable, RequestError
from gateway.result_cache import CachedAnswer, ResultCache
from gateway.settlement import AnswerInfo, SettledRequestError, Settlement, UsageTally
from gateway.router import Metadata, Placement, RoutedModel
from gateway.triton_model import ModelState

Query = TypeVar("Query")


class BudgetDecision(Protocol):
    shed: bool
    message: str


# (feature, tenant) -> whether a spent budget sheds the call (costing.accounting.should_shed).
BudgetCheck = Callable[[str, str], BudgetDecision]

# OpenTelemetry's semantic-convention names of the peer a span called.
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"


class Route(Protocol[Query]):
    """What one RPC adds to the common path."""

    rpc: str
    model: RoutedModel

    def cache_key(self, query: Query, state: ModelState) -> str: ...

    async def answer(
        self, query: Query, timeout_s: float, metadata: Metadata = None, version: str | None = None
    ) -> tuple[ModelAnswer, Placement]:
        """``metadata``: sent with the model call (the ``traceparent`` of its span); ``version``:
        the model version to call (None: the serving one)."""


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: its canonical tenant, its deadline, and the bounded label its
    feature is recorded under (gateway/tenants.py)."""

    tenant: str
    time_remaining_s: float | None  # None when the caller set no deadline
    feature_label: str


@dataclass(frozen=True, slots=True)
class Answered:
    answer: ModelAnswer
    info: AnswerInfo


class RequestFlow:
    def __init__(
        self,
        *,
        cache: ResultCache | None,
        settlement: Settlement,
        default_deadline_s: float,
        budget_check: BudgetCheck | None = None,
        admission: Admission | None = None,
        accepting: Callable[[], bool] | None = None,
        deadline_margin_s: float = 0.0,
    ) -> None:
        """``accepting``: False while calls must be refused before they start (the cost ledger
        can record nothing: fail closed). ``deadline_margin_s``: the model call ends this long
        before the caller's deadline (at most half the time left), so the gateway, not the
        caller's deadline, ends a call the model is too slow for, and the caller gets its cost
        trailers. The priced egress of an answer is its items' bytes on the wire
        (``ModelAnswer.items_wire``)."""
        self._cache = cache
        self._settlement = settlement
        self._default_deadline_s = default_deadline_s
        self._budget_check = budget_check
        self._admission = admission or Admission(None, {})
        self._accepting = accepting
        self._deadline_margin_s = deadline_margin_s

    def refusal(self) -> RequestError | None:
        """Why no call may start now (nothing could record it), or None."""
        if self._accepting is not None and not self._accepting():
            return LedgerUnavailable(
                "the cost ledger and its journal cannot record calls: refusing them until they can; retry later"
            )
        return None

    async def run(
        self, route: Route[Query], caller: Caller, validate: Callable[[], Query], call_trace: CallTrace = NO_TRACE
    ) -> Answered:
        """Runs one call; raises SettledRequestError (with the call's cost) when it fails."""
        request_id = os.urandom(16).hex()
        tally = UsageTally(route.rpc, caller.feature_label, route.model.name)
        settle = self._settlement.settle
        admitted = False
        plan = None  # a rollout's plan for this call; None when no rollout is active
        try:
            with tally.meter:
                self._admission.enter(caller.tenant)
                admitted = True
                query = validate()
                self._admit(tally.feature, caller.tenant)
                state = route.model.state
                rollout = route.model.rollout
                if rollout is not None:
                    plan = rollout.plan(state)
                    state, tally.traffic = plan.state, plan.traffic
                if not state.build_id:
                    raise BackendUnavailable(f"{route.rpc} unavailable: {state.reason}")
                tally.model_version, tally.build_id = state.version, state.build_id
                key = route.cache_key(query, state) if self._cache is not None else ""
            version = None if plan is None else plan.version
            answer = await self._answer(route, query, key, caller, tally, call_trace, version)
            tally.response_bytes = len(answer.items_wire)
        except RequestError as error:
            info = settle(request_id, caller.tenant, tally, error.status, call_trace)
            if plan is not None:
                rollout.finished(plan, error.status, tally, route, query, caller.tenant, None)
            await self._settlement.commit()
            raise SettledRequestError(error, info) from None
        except asyncio.CancelledError:
            # The caller went away (gRPC cancels the handler), or its deadline ran out.
            settle(request_id, caller.tenant, tally, _cancelled_status(caller, tally.started_s), call_trace)
            raise
        except BaseException:
            # A bug: still account for what was spent, then let it propagate.
            settle(request_id, caller.tenant, tally, "INTERNAL", call_trace)
            raise
        finally:
            if admitted:
                self._admission.leave()
        if _deadline_passed(caller, tally.started_s):
            # Answered too late: the caller gets DEADLINE_EXCEEDED from gRPC, and so does the ledger.
            error = DeadlineExceeded("the answer was ready after the caller's deadline")
            info = settle(request_id, caller.tenant, tally, error.status, call_trace)
            if plan is not None:
                rollout.finished(plan, error.status, tally, route, query, caller.tenant, None)
            await self._settlement.commit()
            raise SettledRequestError(error, info)
        info = settle(request_id, caller.tenant, tally, "OK", call_trace)
        if plan is not None:
            rollout.finished(plan, "OK", tally, route, query, caller.tenant, answer)
        await self._settlement.commit()
        return Answered(answer, info)

    def _admit(self, feature: str, tenant: str) -> None:
        if self._budget_check is None:
            return
        decision = self._budget_check(feature, tenant)
        if decision.shed:
            raise BudgetExhausted(decision.message)

    async def _answer(
        self,
        route: Route[Query],
        query: Query,
        key: str,
        caller: Caller,
        tally: UsageTally,
        call_trace: CallTrace,
        version: str | None = None,
    ) -> ModelAnswer:
        """``version``: the model version a rollout sends the call to (None: the serving one)."""
        cached = await self._cache_lookup(key, tally, call_trace) if self._cache is not None else None
        if cached is not None:
            tally.cache_hit = True
            tally.pool, tally.model_version = cached.pool, cached.answer.model_version
            tally.avoided_compute_ns, tally.avoided_pool = cached.answer.compute_ns, cached.pool
            return cached.answer

        timeout_s = self._model_timeout_s(caller, tally.started_s)
        span = call_trace.child("triton.infer", {attr.MODEL_NAME: route.model.name})
        traceparent = call_trace.traceparent(span)
        try:
            answer, placement = await route.answer(
                query, timeout_s, ((TRACEPARENT, traceparent),) if traceparent else None, version
            )
        except BaseException as error:
            if span is not None:
                span.set_error(getattr(error, "status", type(error).__name__))
                span.end()
            raise
        tally.compute_ns, tally.model_version = answer.compute_ns, answer.model_version
        tally.pool, tally.route_reason, tally.attempts = placement.pool, placement.reason, placement.attempts
        if span is not None:
            span.set_attributes(_infer_attributes(answer, placement))
            span.end()
        if self._cache is not None:
            self._cache_store(key, CachedAnswer(answer, placement.pool), tally, call_trace)
        return answer

    def _model_timeout_s(self, caller: Caller, started: float) -> float:
        """What is left of the caller's deadline, less the margin; the default without one."""
        if caller.time_remaining_s is None:
            return self._default_deadline_s
        left_s = caller.time_remaining_s - (time.perf_counter() - started)
        return left_s - min(self._deadline_margin_s, max(left_s, 0.0) / 2)

    async def _cache_lookup(self, key: str, tally: UsageTally, call_trace: CallTrace) -> CachedAnswer | None:
        assert self._cache is not None
        span = call_trace.child("cache.lookup")
        cached = await self._cache.get(key)
        tally.cache_ops += 1
        if span is not None:
            span.set_attribute(attr.CACHE_HIT, cached is not None)
            span.end()
        return cached

    def _cache_store(self, key: str, entry: CachedAnswer, tally: UsageTally, call_trace: CallTrace) -> None:
        """Hands the answer to the cache's writer: the call does not wait for Redis."""
        assert self._cache is not None
        span = call_trace.child("cache.store")
        self._cache.put_later(key, entry)
        tally.cache_ops += 1
        if span is not None:
            span.end()


def _infer_attributes(answer: ModelAnswer, placement: Placement) -> dict[str, str | int]:
    """The triton.infer span: what ran where (the endpoint that answered, its pool) and its compute."""
    host, _, port = placement.endpoint.rpartition(":")
    attributes: dict[str, str | int] = {
        attr.COMPUTE_NS: answer.compute_ns,
        attr.POOL: placement.pool,
        attr.ROUTE_REASON: placement.reason,
        attr.ROUTE_ATTEMPTS: placement.attempts,
        SERVER_ADDRESS: host.strip("[]") or placement.endpoint,
    }
    if port.isdigit():
        attributes[SERVER_PORT] = int(port)
    return attributes


def _deadline_passed(caller: Caller, started: float) -> bool:
    return caller.time_remaining_s is not None and time.perf_counter() - started >= caller.time_remaining_s


def _cancelled_status(caller: Caller, started: float) -> str:
    """DEADLINE_EXCEEDED when the caller's deadline had run out, else CANCELLED (the caller left)."""
    return "DEADLINE_EXCEEDED" if _deadline_passed(caller, started) else "CANCELLED"
