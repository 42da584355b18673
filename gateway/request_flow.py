"""The path of every call, top to bottom: validate -> budget -> cache -> Triton -> cache fill
-> settle (-> commit, when answers wait for their cost record to be written).

The RPC-specific parts (validation, the model's inputs and outputs, the cache key) come from a
*route*; everything else is the same for Recommend and Search. Every request is settled
exactly once — answered, rejected or failed — so no cost record is lost. No grpc here: the
servicers translate in and out.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from opentelemetry import trace

from gateway import telemetry_attributes as attr
from gateway.answers import ModelAnswer
from gateway.admission import Admission
from gateway.errors import BackendUnavailable, BudgetExhausted, DeadlineExceeded, LedgerUnavailable, RequestError
from gateway.result_cache import CachedAnswer, ResultCache
from gateway.settlement import AnswerInfo, SettledRequestError, Settlement, UsageTally
from gateway.router import Placement, RoutedModel
from gateway.triton_model import ModelState

Query = TypeVar("Query")


class BudgetDecision(Protocol):
    shed: bool
    message: str


# (feature, tenant) -> whether a spent budget sheds the call (costing.accounting.should_shed).
BudgetCheck = Callable[[str, str], BudgetDecision]

tracer = trace.get_tracer(__name__)


class Route(Protocol[Query]):
    """What one RPC adds to the common path."""

    rpc: str
    model: RoutedModel

    def cache_key(self, query: Query, state: ModelState) -> str: ...

    async def answer(self, query: Query, timeout_s: float) -> tuple[ModelAnswer, Placement]: ...


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: its canonical tenant, its deadline, and the bounded label its
    feature is recorded under (gateway/tenants.py)."""

    tenant: str
    time_remaining_s: float | None  # None when the caller set no deadline
    feature_label: str


@dataclass(frozen=True)
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
        payload_bytes: Callable[[ModelAnswer], int],
        budget_check: BudgetCheck | None = None,
        admission: Admission | None = None,
        accepting: Callable[[], bool] | None = None,
        deadline_margin_s: float = 0.0,
    ) -> None:
        """``payload_bytes``: the size of an answer as sent to the caller (priced as egress).
        ``accepting``: False while calls must be refused before they start (the cost ledger can
        record nothing: fail closed). ``deadline_margin_s``: the model call ends this long before
        the caller's deadline (at most half the time left), so the gateway, not the caller's
        deadline, ends a call the model is too slow for, and the caller gets its cost trailers."""
        self._cache = cache
        self._settlement = settlement
        self._default_deadline_s = default_deadline_s
        self._payload_bytes = payload_bytes
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

    async def run(self, route: Route[Query], caller: Caller, validate: Callable[[], Query]) -> Answered:
        """Runs one call; raises SettledRequestError (with the call's cost) when it fails."""
        request_id = uuid.uuid4().hex
        tally = UsageTally(rpc=route.rpc, feature=caller.feature_label, model_name=route.model.name)
        started = time.monotonic()
        admitted = False
        try:
            with tally.meter:
                self._admission.enter(caller.tenant)
                admitted = True
                query = validate()
                self._admit(tally.feature, caller.tenant)
            answer = await self._answer(route, query, caller, tally, started)
            with tally.meter:
                tally.response_bytes = self._payload_bytes(answer)
        except RequestError as error:
            info = self._settlement.settle(request_id, caller.tenant, tally, error.status)
            await self._settlement.commit()
            raise SettledRequestError(error, info) from None
        except asyncio.CancelledError:
            # The caller went away (gRPC cancels the handler), or its deadline ran out.
            self._settlement.settle(request_id, caller.tenant, tally, _cancelled_status(caller, started))
            raise
        except BaseException:
            # A bug: still account for what was spent, then let it propagate.
            self._settlement.settle(request_id, caller.tenant, tally, "INTERNAL")
            raise
        finally:
            if admitted:
                self._admission.leave()
        if _deadline_passed(caller, started):
            # Answered too late: the caller gets DEADLINE_EXCEEDED from gRPC, and so does the ledger.
            error = DeadlineExceeded("the answer was ready after the caller's deadline")
            info = self._settlement.settle(request_id, caller.tenant, tally, error.status)
            await self._settlement.commit()
            raise SettledRequestError(error, info)
        info = self._settlement.settle(request_id, caller.tenant, tally, "OK")
        await self._settlement.commit()
        return Answered(answer, info)

    def _admit(self, feature: str, tenant: str) -> None:
        if self._budget_check is None:
            return
        decision = self._budget_check(feature, tenant)
        if decision.shed:
            raise BudgetExhausted(decision.message)

    async def _answer(
        self, route: Route[Query], query: Query, caller: Caller, tally: UsageTally, started: float
    ) -> ModelAnswer:
        state = route.model.state
        if not state.build_id:
            raise BackendUnavailable(f"{route.rpc} unavailable: {state.reason}")
        tally.model_version, tally.build_id = state.version, state.build_id
        with tally.meter:
            key = route.cache_key(query, state)
        cached = await self._cache_lookup(key, tally)
        if cached is not None:
            tally.cache_hit = True
            tally.pool, tally.model_version = cached.pool, cached.answer.model_version
            tally.avoided_compute_ns, tally.avoided_pool = cached.answer.compute_ns, cached.pool
            return cached.answer

        timeout_s = self._model_timeout_s(caller, started)
        with tracer.start_as_current_span("triton.infer", attributes={attr.MODEL_NAME: route.model.name}) as span:
            answer, placement = await route.answer(query, timeout_s)
            tally.compute_ns, tally.model_version = answer.compute_ns, answer.model_version
            tally.pool, tally.route_reason, tally.attempts = placement.pool, placement.reason, placement.attempts
            span.set_attributes(
                {
                    attr.COMPUTE_NS: answer.compute_ns,
                    attr.POOL: placement.pool,
                    attr.ROUTE_REASON: placement.reason,
                    attr.ROUTE_ATTEMPTS: placement.attempts,
                }
            )
        await self._cache_store(key, CachedAnswer(answer, placement.pool), tally)
        return answer

    def _model_timeout_s(self, caller: Caller, started: float) -> float:
        """What is left of the caller's deadline, less the margin; the default without one."""
        if caller.time_remaining_s is None:
            return self._default_deadline_s
        left_s = caller.time_remaining_s - (time.monotonic() - started)
        return left_s - min(self._deadline_margin_s, max(left_s, 0.0) / 2)

    async def _cache_lookup(self, key: str, tally: UsageTally) -> CachedAnswer | None:
        if self._cache is None:
            return None
        with tracer.start_as_current_span("cache.lookup") as span:
            cached = await self._cache.get(key)
            tally.cache_ops += 1
            span.set_attribute(attr.CACHE_HIT, cached is not None)
        return cached

    async def _cache_store(self, key: str, entry: CachedAnswer, tally: UsageTally) -> None:
        if self._cache is None:
            return
        with tracer.start_as_current_span("cache.store"):
            await self._cache.put(key, entry)
            tally.cache_ops += 1


def _deadline_passed(caller: Caller, started: float) -> bool:
    return caller.time_remaining_s is not None and time.monotonic() - started >= caller.time_remaining_s


def _cancelled_status(caller: Caller, started: float) -> str:
    """DEADLINE_EXCEEDED when the caller's deadline had run out, else CANCELLED (the caller left)."""
    return "DEADLINE_EXCEEDED" if _deadline_passed(caller, started) else "CANCELLED"
