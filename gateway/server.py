"""Assembles the gateway (settings -> parts -> grpc.aio server) and runs it until stopped.

Shutdown order matters for finance: stop taking calls, let in-flight calls finish, then flush
the ledger and the spans, so no request's cost record is lost on a clean stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters
from opentelemetry.sdk.trace import TracerProvider

from costing.ledger import LedgerWriter, SqliteLedger
from costing.price_book import load_price_book
from gateway.api import recommendation_pb2, recommendation_pb2_grpc
from gateway.recommend_flow import RecommendFlow
from gateway.recommendation_servicer import RecommendationServicer
from gateway.result_cache import ResultCache
from gateway.settings import Settings
from gateway.tracing import setup_tracing
from gateway.triton_recommender import TritonRecommender
from gateway.validation import Limits

log = logging.getLogger(__name__)

RECOMMENDATION_SERVICE = recommendation_pb2.DESCRIPTOR.services_by_name["RecommendationService"].full_name
# Stop/grace budget: long enough for in-flight model calls, short enough for a rolling restart.
SHUTDOWN_GRACE_S = 5.0


class Gateway:
    """The running gateway: its server, its Triton pool, cache, ledger and tracing."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._tracer_provider = setup_tracing(settings) if settings.tracing_enabled else None
        book = load_price_book(settings.price_book_path)
        pool = book.pool(settings.pool_name)
        self._backend = TritonRecommender(settings.triton_url, settings.recommender_model, settings.pool_name, pool.device)
        self._cache = (
            ResultCache.from_url(settings.redis_url, settings.cache_ttl_s, settings.cache_timeout_s)
            if settings.cache_enabled
            else None
        )
        self._ledger_store = SqliteLedger(settings.ledger_path)
        self._ledger = LedgerWriter(self._ledger_store, settings.ledger_flush_interval_s)
        flow = RecommendFlow(
            backend=self._backend,
            cache=self._cache,
            price_book=book,
            ledger=self._ledger,
            limits=Limits(settings.max_k, settings.max_exclude_item_ids, settings.max_id_length),
            cache_prefix=settings.cache_prefix,
            default_deadline_s=settings.default_deadline_s,
        )
        self._health = health_aio.HealthServicer()
        self._server = grpc.aio.server(interceptors=_interceptors(self._tracer_provider))
        recommendation_pb2_grpc.add_RecommendationServiceServicer_to_server(
            RecommendationServicer(flow, settings.tenant_metadata_key, settings.default_tenant), self._server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            (RECOMMENDATION_SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self._server,
        )
        self.port = self._server.add_insecure_port(f"{settings.host}:{settings.port}")
        if self.port == 0:
            raise RuntimeError(f"cannot listen on {settings.host}:{settings.port}")
        self._readiness_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._ledger.start()
        await self._set_health(serving=False)
        await self._server.start()
        self._readiness_task = asyncio.create_task(self._watch_readiness(), name="triton-readiness")
        log.info("gateway listening on %s:%d (Triton %s)", self.settings.host, self.port, self.settings.triton_url)

    async def _watch_readiness(self) -> None:
        """Re-checks Triton and mirrors it in the standard health service."""
        poll_s = self.settings.readiness_poll_s
        while True:
            state = await self._backend.check_readiness(timeout_s=poll_s)
            await self._set_health(serving=state.ready)
            await asyncio.sleep(poll_s)

    async def _set_health(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for service in ("", RECOMMENDATION_SERVICE):
            await self._health.set(service, status)

    async def stop(self, grace_s: float = SHUTDOWN_GRACE_S) -> None:
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace_s)
        if self._readiness_task is not None:
            self._readiness_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._readiness_task
        await self._ledger.close()
        self._ledger_store.close()
        if self._cache is not None:
            await self._cache.close()
        await self._backend.close()
        if self._tracer_provider is not None:
            self._tracer_provider.shutdown()
        log.info("gateway stopped; ledger flushed")


def _interceptors(provider: TracerProvider | None) -> list[grpc.aio.ServerInterceptor]:
    """The OpenTelemetry server interceptor (W3C context from metadata, one span per RPC),
    except for health checks and reflection, which would only add noise."""
    if provider is None:
        return []
    noise = filters.any_of(filters.health_check(), filters.service_prefix("grpc.reflection"))
    return [aio_server_interceptor(tracer_provider=provider, filter_=filters.negate(noise))]


async def run_gateway(settings: Settings) -> None:
    """Runs until SIGTERM or SIGINT, then stops cleanly."""
    gateway = Gateway(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await gateway.start()
    await stop.wait()
    log.info("stop requested; draining in-flight calls")
    await gateway.stop()
