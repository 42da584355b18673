"""Settling a request: price what it used, tag its span, record it in the ledger — once.

Pricing itself is ``costing.cost.price_request`` (the one place a cost is computed, through
the replica's ``RequestPricer``); this module gathers the usage along the request's path and
hands the result to the caller, the trace, the ledger (whose observers count it in the cost
metrics and budgets) and the request-latency histogram.

What a settled request records:

- its **pool**: the Triton pool that served it; for a call that failed after it was sent to a
  pool (timed out, cancelled, failed by Triton) the pool it was sent to (``note_attempt``), so
  that it shares that pool's and model's overhead, and its COMPUTE_NS where the answer arrived
  (an answer after the caller's deadline); a cache hit is served by the ``cache`` pool
  (device ``redis``), the pool of the cached answer is only its ``avoided_pool``;
- its **replica** (the gateway process whose CPU it shares) and the **egress path** of its
  answer (the listener's, or its tenant's), so that the booking of its window can charge them.

Cost never depends on sampling: every request is priced and recorded; only the span
attributes are skipped for a call that is not traced.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime

from costing.cost import RequestCost, Usage
from costing.ledger import CostRecord, LedgerWriter
from costing.price_book import CACHE_DEVICE, CACHE_POOL, PriceBook
from costing.records import SERVING_TRAFFIC, SHADOW_TRAFFIC
from costing.request_pricer import RequestPricer
from gateway import telemetry_attributes as attr
from gateway.call_tracing import NO_TRACE, CallTrace
from gateway.cpu_meter import CpuMeter
from gateway.errors import RequestError

log = logging.getLogger(__name__)

# The pool a call was last sent to, in the call's own task (set by the router before each
# attempt): a call that fails without an answer still records where it ran.
_attempted_pool: ContextVar[str] = ContextVar("tollgate_attempted_pool", default="")


def note_attempt(pool: str) -> None:
    """Called by the router just before it sends the call to ``pool``."""
    _attempted_pool.set(pool)


@dataclass(slots=True)
class UsageTally:
    """What one request used so far; filled in along the path, priced once at the end."""

    rpc: str
    feature: str
    model_name: str
    model_version: str = ""
    build_id: str = ""
    traffic: str = SERVING_TRAFFIC
    pool: str = ""
    route_reason: str = ""
    attempts: int = 0
    cache_hit: bool = False
    cache_ops: int = 0
    compute_ns: int = 0
    avoided_compute_ns: int = 0
    avoided_pool: str = ""
    response_bytes: int = 0
    meter: CpuMeter = field(default_factory=CpuMeter)
    started_s: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class AnswerInfo:
    """How an answer (or a failure) was produced and what it cost."""

    request_id: str
    model_name: str
    model_version: str
    build_id: str
    pool: str
    device: str
    location: str
    route_reason: str
    attempts: int
    cache_hit: bool
    cost: RequestCost
    traffic: str = SERVING_TRAFFIC


class SettledRequestError(RequestError):
    """A RequestError after settlement: carries the failed request's cost for the caller."""

    def __init__(self, error: RequestError, info: AnswerInfo) -> None:
        super().__init__(error.message)
        self.status = error.status
        self.info = info


class Settlement:
    """Prices and records requests. With ``commit_before_answer`` a caller gets its answer
    only once the request's cost record is written (group commit with the other calls in
    flight), so a killed gateway loses no record a caller was given; otherwise records are
    written every flush interval and a crash may lose the last interval's."""

    def __init__(
        self,
        price_book: PriceBook,
        ledger: LedgerWriter,
        *,
        commit_before_answer: bool = False,
        observe_duration: Callable[[str, float], None] | None = None,
        pricer: RequestPricer | None = None,
    ) -> None:
        """``pricer``: the replica's (``CostAccounting.pricer``): its name, egress paths and the
        overhead share a cache hit avoids; by default the book alone, replica unnamed."""
        self._book = price_book
        self._pricer = pricer or RequestPricer(price_book)
        self._ledger = ledger
        self._commit_before_answer = commit_before_answer
        self._observe_duration = observe_duration

    def _labels_of(self, pool: str) -> tuple[str, str]:
        """Device kind and location of a pool, from its price-book entry."""
        if not pool:
            return "", ""
        if pool == CACHE_POOL:
            return CACHE_DEVICE, "private"
        entry = self._book.pool(pool)
        return entry.device, entry.location

    def settle(
        self, request_id: str, tenant: str, tally: UsageTally, status: str, call_trace: CallTrace = NO_TRACE
    ) -> AnswerInfo:
        """Prices the request, records it in the ledger (whose observers count it in the
        metrics), and ends its trace's server span with the cost attributes when recorded."""
        with tally.meter:
            if tally.cache_hit:
                pool = CACHE_POOL
            else:
                pool = tally.pool or _attempted_pool.get()
            usage = Usage(
                pool=pool if tally.compute_ns else "",
                model_compute_ns=tally.compute_ns,
                gateway_cpu_ns=tally.meter.ns,
                cache_ops=tally.cache_ops,
                avoided_compute_ns=tally.avoided_compute_ns,
                avoided_pool=tally.avoided_pool,
                response_bytes=tally.response_bytes,
                egress_path=self._pricer.egress_path(tenant),
            )
            cost = self._pricer.price(usage, tally.model_name)
            device, location = self._labels_of(pool)
            info = AnswerInfo(
                request_id=request_id,
                model_name=tally.model_name,
                model_version=tally.model_version,
                build_id=tally.build_id,
                pool=pool,
                device=device,
                location=location,
                route_reason=tally.route_reason,
                attempts=tally.attempts,
                cache_hit=tally.cache_hit,
                cost=cost,
                traffic=tally.traffic,
            )
            self._ledger.record(_cost_record(info, tally, usage, tenant, status, self._pricer.replica))
            if call_trace.span is not None:
                call_trace.finish(status, span_attributes(info, tally.feature, tenant))
        if self._observe_duration is not None and tally.traffic != SHADOW_TRAFFIC:  # no caller waited
            self._observe_duration(tally.rpc, time.perf_counter() - tally.started_s)
        return info

    async def commit(self) -> None:
        """With ``commit_before_answer``: wait until the records settled so far are written.
        If the ledger cannot be written the answer still goes out (the records stay buffered
        for the next flush): serving beats durability when the ledger database is down."""
        if not self._commit_before_answer:
            return
        try:
            await self._ledger.flush()
        except Exception:  # noqa: BLE001 - logged by the writer; the records are kept
            log.warning("answering before the ledger write: the ledger is unavailable, records stay buffered")


def _cost_record(
    info: AnswerInfo, tally: UsageTally, usage: Usage, tenant: str, status: str, replica: str
) -> CostRecord:
    cost = info.cost
    return CostRecord(
        request_id=info.request_id,
        timestamp=datetime.now(UTC),
        rpc=tally.rpc,
        feature=tally.feature,
        tenant=tenant,
        model=info.model_name,
        model_version=info.model_version,
        pool=info.pool,
        device=info.device,
        cache_hit=info.cache_hit,
        status=status,
        compute_ns=cost.compute_ns,
        gateway_cpu_ns=usage.gateway_cpu_ns,
        cache_ops=usage.cache_ops,
        cost_total_pico=cost.total_pico,
        cost_compute_pico=cost.compute_pico,
        cost_gateway_pico=cost.gateway_pico,
        cost_cache_pico=cost.cache_pico,
        cost_avoided_pico=cost.avoided_pico,
        currency=cost.currency,
        price_book_version=cost.price_book_version,
        response_bytes=usage.response_bytes,
        cost_egress_pico=cost.egress_pico,
        route_reason=info.route_reason,
        replica=replica,
        egress_path=cost.egress_path,
        avoided_is_cash=cost.avoided_is_cash,
        traffic=info.traffic,
    )


def span_attributes(info: AnswerInfo, feature: str, tenant: str) -> dict[str, str | int | float | bool]:
    return {
        attr.REQUEST_ID: info.request_id,
        attr.FEATURE: feature,
        attr.TENANT: tenant,
        attr.MODEL_NAME: info.model_name,
        attr.MODEL_VERSION: info.model_version,
        attr.MODEL_BUILD_ID: info.build_id,
        attr.TRAFFIC: info.traffic,
        attr.POOL: info.pool,
        attr.DEVICE: info.device,
        attr.LOCATION: info.location,
        attr.ROUTE_REASON: info.route_reason,
        attr.ROUTE_ATTEMPTS: info.attempts,
        attr.CACHE_HIT: info.cache_hit,
        attr.COST_TOTAL: info.cost.total,
        attr.COST_COMPUTE: info.cost.compute,
        attr.COST_GATEWAY: info.cost.gateway,
        attr.COST_CACHE: info.cost.cache,
        attr.COST_EGRESS: info.cost.egress,
        attr.COST_AVOIDED: info.cost.avoided,
        attr.COST_CURRENCY: info.cost.currency,
        attr.COMPUTE_NS: info.cost.compute_ns,
        attr.PRICE_BOOK_VERSION: info.cost.price_book_version,
    }
