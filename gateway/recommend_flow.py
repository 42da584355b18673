"""The path of one Recommend call, top to bottom: validate -> cache -> Triton -> cache fill -> settle.

"Settle" prices the request (``costing.cost.price_request``, the one place a cost is computed),
puts cost and attribution on the RPC span and hands the record to the ledger. Every request is
settled exactly once, whether it is answered, rejected or fails, so no cost record is lost.
No grpc here: the servicer translates in and out.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from opentelemetry import trace

from costing.cost import RequestCost, Usage, price_request
from costing.ledger import CostRecord, LedgerWriter
from costing.price_book import PriceBook
from gateway import telemetry_attributes as attr
from gateway.cpu_meter import CpuMeter
from gateway.errors import BackendUnavailable, RequestError
from gateway.result_cache import CachedAnswer, ResultCache, recommend_cache_key
from gateway.triton_recommender import RankedItem, TritonRecommender
from gateway.validation import FEATURE_LABEL, Limits, RecommendQuery, validate_recommend

RPC_NAME = "Recommend"
# Ledger label for requests whose own feature label was unusable.
INVALID_FEATURE = "invalid"

tracer = trace.get_tracer(__name__)


@dataclass(frozen=True)
class RecommendCall:
    """A Recommend request as received, before validation."""

    user_id: str
    k: int
    feature: str
    exclude_item_ids: list[str]
    tenant: str
    time_remaining_s: float | None  # None when the caller set no deadline


@dataclass(frozen=True)
class AnswerInfo:
    """How an answer (or a failure) was produced and what it cost."""

    request_id: str
    model_name: str
    model_version: str
    build_id: str
    pool: str
    device: str
    cache_hit: bool
    cost: RequestCost


@dataclass(frozen=True)
class RecommendResult:
    items: tuple[RankedItem, ...]
    personalized: bool
    info: AnswerInfo


class SettledRequestError(RequestError):
    """A RequestError after settlement: carries the failed request's cost for the caller."""

    def __init__(self, error: RequestError, info: AnswerInfo) -> None:
        super().__init__(error.message)
        self.status = error.status
        self.info = info


@dataclass
class _Tally:
    """What one request used so far; filled in along the path, priced once at the end."""

    feature: str
    model_version: str = ""
    build_id: str = ""
    pool: str = ""
    cache_hit: bool = False
    cache_ops: int = 0
    compute_ns: int = 0
    avoided_compute_ns: int = 0
    avoided_pool: str = ""
    meter: CpuMeter = field(default_factory=CpuMeter)


class RecommendFlow:
    def __init__(
        self,
        *,
        backend: TritonRecommender,
        cache: ResultCache | None,
        price_book: PriceBook,
        ledger: LedgerWriter,
        limits: Limits,
        cache_prefix: str,
        default_deadline_s: float,
    ) -> None:
        self._backend = backend
        self._cache = cache
        self._book = price_book
        self._ledger = ledger
        self._limits = limits
        self._cache_prefix = cache_prefix
        self._default_deadline_s = default_deadline_s

    async def recommend(self, call: RecommendCall) -> RecommendResult:
        request_id = uuid.uuid4().hex
        tally = _Tally(feature=call.feature if FEATURE_LABEL.match(call.feature) else INVALID_FEATURE)
        try:
            with tally.meter:
                query = validate_recommend(call.user_id, call.k, call.feature, call.exclude_item_ids, self._limits)
            items, personalized = await self._answer(query, call, tally)
        except RequestError as error:
            raise SettledRequestError(error, self._settle(request_id, call.tenant, tally, error.status)) from None
        except BaseException:
            # A bug or a cancellation: still account for what was spent, then let it propagate.
            self._settle(request_id, call.tenant, tally, "INTERNAL")
            raise
        return RecommendResult(items, personalized, self._settle(request_id, call.tenant, tally, "OK"))

    async def _answer(
        self, query: RecommendQuery, call: RecommendCall, tally: _Tally
    ) -> tuple[tuple[RankedItem, ...], bool]:
        state = self._backend.state
        if not state.build_id:
            raise BackendUnavailable(f"recommendations unavailable: {state.reason}")
        tally.model_version, tally.build_id = state.model_version, state.build_id
        with tally.meter:
            key = recommend_cache_key(self._cache_prefix, self._backend.model_name, state.model_version, state.build_id, query)
        cached = await self._cache_lookup(key, tally)
        if cached is not None:
            tally.cache_hit = True
            tally.pool, tally.model_version = cached.pool, cached.model_version
            tally.avoided_compute_ns, tally.avoided_pool = cached.compute_ns, cached.pool
            return cached.items, cached.personalized

        timeout_s = call.time_remaining_s if call.time_remaining_s is not None else self._default_deadline_s
        tally.pool = self._backend.pool_name
        with tracer.start_as_current_span(
            "triton.infer",
            attributes={attr.MODEL_NAME: self._backend.model_name, attr.POOL: self._backend.pool_name},
        ) as span:
            answer = await self._backend.recommend(query, timeout_s)
            tally.compute_ns = answer.compute_ns
            tally.model_version = answer.model_version
            span.set_attribute(attr.COMPUTE_NS, answer.compute_ns)
        with tally.meter:
            entry = CachedAnswer(
                items=answer.items,
                personalized=answer.personalized,
                model_version=answer.model_version,
                pool=self._backend.pool_name,
                device=self._device_of(self._backend.pool_name),
                compute_ns=answer.compute_ns,
            )
        await self._cache_store(key, entry, tally)
        return answer.items, answer.personalized

    async def _cache_lookup(self, key: str, tally: _Tally) -> CachedAnswer | None:
        if self._cache is None:
            return None
        with tracer.start_as_current_span("cache.lookup") as span:
            cached = await self._cache.get(key)
            tally.cache_ops += 1
            span.set_attribute(attr.CACHE_HIT, cached is not None)
        return cached

    async def _cache_store(self, key: str, entry: CachedAnswer, tally: _Tally) -> None:
        if self._cache is None:
            return
        with tracer.start_as_current_span("cache.store"):
            await self._cache.put(key, entry)
            tally.cache_ops += 1

    def _device_of(self, pool: str) -> str:
        return self._book.pool(pool).device if pool else ""

    def _settle(self, request_id: str, tenant: str, tally: _Tally, status: str) -> AnswerInfo:
        """Prices the request, tags its span and records it in the ledger, once."""
        with tally.meter:
            device = self._device_of(tally.pool)
            usage = Usage(
                pool=tally.pool if tally.compute_ns else "",
                model_compute_ns=tally.compute_ns,
                gateway_cpu_ns=tally.meter.ns,
                cache_ops=tally.cache_ops,
                avoided_compute_ns=tally.avoided_compute_ns,
                avoided_pool=tally.avoided_pool,
            )
            cost = price_request(usage, self._book)
            info = AnswerInfo(
                request_id=request_id,
                model_name=self._backend.model_name,
                model_version=tally.model_version,
                build_id=tally.build_id,
                pool=tally.pool,
                device=device,
                cache_hit=tally.cache_hit,
                cost=cost,
            )
            trace.get_current_span().set_attributes(_span_attributes(info, tally.feature, tenant))
        self._ledger.record(
            CostRecord(
                request_id=request_id,
                timestamp=datetime.now(UTC),
                rpc=RPC_NAME,
                feature=tally.feature,
                tenant=tenant,
                model=info.model_name,
                model_version=info.model_version,
                pool=info.pool,
                device=device,
                cache_hit=info.cache_hit,
                status=status,
                compute_ns=cost.compute_ns,
                gateway_cpu_ns=usage.gateway_cpu_ns,
                cache_ops=usage.cache_ops,
                cost_total=cost.total,
                cost_compute=cost.compute,
                cost_gateway=cost.gateway,
                cost_cache=cost.cache,
                cost_avoided=cost.avoided,
                currency=cost.currency,
                price_book_version=cost.price_book_version,
            )
        )
        return info


def _span_attributes(info: AnswerInfo, feature: str, tenant: str) -> dict[str, str | int | float | bool]:
    return {
        attr.REQUEST_ID: info.request_id,
        attr.FEATURE: feature,
        attr.TENANT: tenant,
        attr.MODEL_NAME: info.model_name,
        attr.MODEL_VERSION: info.model_version,
        attr.MODEL_BUILD_ID: info.build_id,
        attr.POOL: info.pool,
        attr.DEVICE: info.device,
        attr.CACHE_HIT: info.cache_hit,
        attr.COST_TOTAL: info.cost.total,
        attr.COST_COMPUTE: info.cost.compute,
        attr.COST_GATEWAY: info.cost.gateway,
        attr.COST_CACHE: info.cost.cache,
        attr.COST_AVOIDED: info.cost.avoided,
        attr.COST_CURRENCY: info.cost.currency,
        attr.COMPUTE_NS: info.cost.compute_ns,
        attr.PRICE_BOOK_VERSION: info.cost.price_book_version,
    }
