"""Assembles the gateway (settings -> parts -> grpc.aio server) and runs it until stopped.

Shutdown order matters for finance: stop taking calls, let in-flight calls finish, then flush
the ledger and the spans, so no request's cost record is lost on a clean stop.

Health: the standard service reports readiness per RPC service ("" = all of them) from the
Triton pools; ``liveness`` is SERVING from start to shutdown, whatever the pools do, so an
orchestrator restarts a hung gateway but not one waiting for its models.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import sys
from collections.abc import Callable

import grpc
from prometheus_client import CollectorRegistry
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from costing.accounting import CostAccounting
from costing.price_book import load_price_book
from gateway import cost_servicer, recommendation_servicer, rollout_servicer, search_servicer
from gateway.admission import Admission
from gateway.api_keys import KeyStore
from gateway.authentication import Authenticator
from gateway.call_tracing import CallTracer
from gateway.circuit_breaker import CircuitBreaker
from gateway.gc_tuning import freeze_startup_heap
from gateway.health_metrics import HealthMetrics
from gateway.grpc_call import CallerReader, register
from gateway.recommend_route import RecommendRoute
from gateway.request_flow import RequestFlow
from gateway.result_cache import CacheKeys, CacheSecret, ResultCache
from gateway.search_route import SearchRoute
from gateway.request_metrics import RequestMetrics
from gateway.settings import Settings
from gateway.router import Router
from gateway.settlement import Settlement
from gateway.tenants import TenantRegistry, tenant_rates
from gateway.tls import server_credentials
from gateway.tracing import setup_tracing
from gateway.rollout import RolloutController, ShadowMirror
from gateway.rollout_metrics import RolloutMetrics
from gateway.rollout_store import RolloutStore
from gateway.rollout_window import Slo
from gateway.router_factory import build_router
from gateway.triton_repository import TritonRepository
from gateway.validation import Limits

log = logging.getLogger(__name__)

# Stop/grace budget: long enough for in-flight model calls, short enough for a rolling restart.
SHUTDOWN_GRACE_S = 5.0
# The header of Triton's restricted protocols (--grpc-restricted-protocol=...:admin-key=...).
TRITON_ADMIN_HEADER = "triton-grpc-protocol-admin-key"
# Health service name of the liveness probe (SERVING while the process runs).
LIVENESS_SERVICE = "liveness"


class Gateway:
    """The running gateway: its server, its Triton models, cache, cost accounting and tracing."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._tracing = setup_tracing(settings) if settings.tracing_enabled else None
        tracer = (
            CallTracer(self._tracing.recorder if self._tracing else None, settings.trace_sample_ratio)
            if settings.tracing_enabled
            else None
        )
        book = load_price_book(settings.price_book_path)
        self._book_version = book.version
        self._accounting = CostAccounting.from_settings(settings, book)
        health_metrics = HealthMetrics(self._accounting.metrics.registry)
        self._router = build_router(
            settings,
            book,
            [settings.recommender_model, settings.search_model],
            on_ejection=lambda endpoint: health_metrics.ejections.labels(endpoint.pool_name).inc(),
        )
        recommender = self._router.model(settings.recommender_model)
        search = self._router.model(settings.search_model)
        # Which model each service needs; the health service reports them one by one.
        self._models = {
            recommendation_servicer.SERVICE.full_name: recommender,
            search_servicer.SERVICE.full_name: search,
        }
        cache_secret = _cache_secret(settings)
        self._cache = (
            ResultCache.from_url(
                settings.redis_url,
                settings.cache_ttl_s,
                settings.cache_timeout_s,
                cache_secret,
                known_pools=[pool.name for pool in settings.effective_pools()],
                breaker=CircuitBreaker(settings.cache_breaker_failures, settings.cache_breaker_cooldown_s),
                metrics=health_metrics,
            )
            if settings.cache_enabled
            else None
        )
        request_metrics = RequestMetrics(self._accounting.metrics.registry)
        settlement = Settlement(
            book,
            self._accounting.writer,
            commit_before_answer=settings.ledger_commit_before_answer,
            observe_duration=request_metrics.observe_duration,
            pricer=self._accounting.pricer,
        )
        flow = RequestFlow(
            cache=self._cache,
            settlement=settlement,
            default_deadline_s=settings.default_deadline_s,
            deadline_margin_s=settings.deadline_margin_s,
            budget_check=self._accounting.should_shed if settings.budgets else None,
            admission=Admission(settings.max_concurrent_calls, tenant_rates(settings.tenants)),
            accepting=self._ledger_accepting,
        )
        self._rollouts = _rollout_controller(settings, self._router, settlement, self._accounting.metrics.registry)
        limits = Limits(settings.max_k, settings.max_exclude_item_ids, settings.max_id_length, settings.max_query_chars)
        callers = _callers(settings, on_refused=lambda reason: health_metrics.refused.labels(reason).inc())
        cache_keys = CacheKeys(settings.cache_prefix, cache_secret)

        self._health = health_aio.HealthServicer()
        # No interceptor: each model call opens its own trace (gateway/call_tracing.py).
        self._server = grpc.aio.server()
        register(
            self._server,
            recommendation_servicer.SERVICE,
            recommendation_servicer.RecommendationServicer(
                flow, RecommendRoute(recommender, cache_keys), limits, callers, tracer
            ),
        )
        register(
            self._server,
            search_servicer.SERVICE,
            search_servicer.SearchServicer(flow, SearchRoute(search, cache_keys), limits, callers, tracer),
        )
        register(self._server, cost_servicer.SERVICE, cost_servicer.CostServicer(self._accounting, callers))
        register(self._server, rollout_servicer.SERVICE, rollout_servicer.RolloutServicer(self._rollouts, callers))
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        if settings.reflection_enabled:
            reflection.enable_server_reflection(
                (
                    *self._models,
                    cost_servicer.SERVICE.full_name,
                    rollout_servicer.SERVICE.full_name,
                    health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                    reflection.SERVICE_NAME,
                ),
                self._server,
            )
        self.port = _listen(self._server, settings)
        self._readiness_task: asyncio.Task[None] | None = None

    def _warn_unknown_variables(self) -> None:
        """A TOLLGATE_* variable that no gateway setting reads is a misspelling, or another tool's."""
        known = {f"TOLLGATE_{name.upper()}" for name in Settings.model_fields}
        unknown = sorted(name for name in os.environ if name.startswith("TOLLGATE_") and name not in known)
        if unknown:
            log.warning("environment variables that no gateway setting reads (misspelt, or another tool's): %s", ", ".join(unknown))

    async def start(self) -> None:
        self._warn_unknown_variables()
        models = (self.settings.recommender_model, self.settings.search_model)
        admin_key = self.settings.triton_admin_key
        headers = {TRITON_ADMIN_HEADER: admin_key.get_secret_value()} if admin_key else None
        await self._accounting.start(triton_clients=self._router.stats_clients(), models=models, stats_headers=headers)
        await self._set_health(serving=False)
        await self._health.set(LIVENESS_SERVICE, _status(True))
        await self._health.set(cost_servicer.SERVICE.full_name, _status(True))
        # Check Triton once before taking calls: with several workers on one port, a call may
        # reach a worker other than the one whose health check said SERVING.
        await self._router.check_readiness(timeout_s=self.settings.readiness_poll_s)
        # The rollout state (serving version, candidate) before the first call.
        await self._rollouts.start()
        await self._server.start()
        self._readiness_task = asyncio.create_task(self._watch_readiness(), name="triton-readiness")
        pools = ", ".join(f"{pool.name} {pool.endpoints}" for pool in self.settings.effective_pools())
        tls = "mutual TLS" if self.settings.tls_client_ca_file else "TLS" if self.settings.tls_cert_file else "plaintext"
        log.info(
            "gateway listening on %s:%d (worker %d; %s; pools: %s; routing: %s; price book %s; tenants: %s; "
            "GIL switch interval %g ms)",
            self.settings.host, self.port, self.settings.worker_index, tls, pools, self.settings.routing_policy, self._book_version,
            ", ".join(tenant.id for tenant in self.settings.tenants), sys.getswitchinterval() * 1e3,
        )

    def _ledger_accepting(self) -> bool:
        """Whether calls may start: the ledger or its journal takes records, or the gateway is
        set to fail open."""
        return self.settings.ledger_fail_open or self._accounting.writer.healthy

    async def _watch_readiness(self) -> None:
        """Re-checks every endpoint of every pool and mirrors it in the standard health service:
        a service is SERVING when some pool can serve its model (and the cost ledger can record
        its calls), the server ("") when all are."""
        poll_s = self.settings.readiness_poll_s
        while True:
            await self._router.check_readiness(timeout_s=poll_s)
            accepting = self._ledger_accepting()
            ready = {service: model.state.ready and accepting for service, model in self._models.items()}
            for service, serving in ready.items():
                await self._health.set(service, _status(serving))
            await self._health.set("", _status(all(ready.values())))
            await asyncio.sleep(poll_s)

    async def _set_health(self, serving: bool) -> None:
        for service in ("", *self._models):
            await self._health.set(service, _status(serving))

    async def stop(self, grace_s: float = SHUTDOWN_GRACE_S) -> None:
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace_s)
        if self._readiness_task is not None:
            self._readiness_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._readiness_task
        await self._rollouts.close()  # shadow calls in flight are settled before the ledger closes
        await self._accounting.close()
        if self._cache is not None:
            await self._cache.close()
        await self._router.close()
        if self._tracing is not None:
            self._tracing.shutdown()
        log.info("gateway stopped; ledger flushed")


def _callers(settings: Settings, on_refused: Callable[[str], None]) -> CallerReader:
    """Authentication from the API key file and, with mutual TLS, client certificates; the
    registered tenants bound every tenant and feature label."""
    if not settings.tenants:
        raise RuntimeError("no tenants are registered: set TOLLGATE_TENANTS (README 'Security model')")
    tenants = TenantRegistry(settings.tenants, settings.undeclared_feature)
    unknown = tenants.unknown_budget_names([(budget.scope, budget.name) for budget in settings.budgets])
    if unknown:
        raise RuntimeError(f"budgets name no registered tenant or declared feature: {', '.join(unknown)}")
    keys = KeyStore(settings.api_keys_file, settings.api_keys_reload_s, tenants.ids) if settings.api_keys_file else None
    cert_tenants = tenants.ids if settings.tls_client_ca_file else frozenset()
    if keys is None and not cert_tenants:
        raise RuntimeError("no way to authenticate callers: set TOLLGATE_API_KEYS_FILE or mutual TLS")
    return CallerReader(Authenticator(keys, cert_tenants=cert_tenants), tenants, on_refused)


def _rollout_controller(
    settings: Settings, router: Router, settlement: Settlement, registry: CollectorRegistry
) -> RolloutController:
    """Model rollouts: state in Redis under the cache prefix, versions loaded with Triton's admin key."""
    admin_key = settings.triton_admin_key
    headers = {TRITON_ADMIN_HEADER: admin_key.get_secret_value()} if admin_key else None
    clients = [(endpoint.url, endpoint.client) for endpoint in router.endpoints()]
    return RolloutController(
        router,
        RolloutStore(settings.redis_url, settings.cache_prefix, settings.rollout_store_timeout_s),
        TritonRepository(clients, headers, settings.rollout_ready_timeout_s),
        ShadowMirror(
            settlement,
            settings.rollout_shadow_max_in_flight,
            settings.rollout_shadow_timeout_s,
            settings.rollout_shadow_max_busy_share,
        ),
        RolloutMetrics(registry),
        [settings.recommender_model, settings.search_model],
        slo=Slo(
            settings.rollout_slo_window_s,
            settings.rollout_slo_min_calls,
            settings.rollout_slo_max_error_rate,
            settings.rollout_slo_max_p99_ms,
        ),
        slo_check_s=settings.rollout_slo_check_s,
        refresh_s=settings.rollout_refresh_s,
        drain_s=settings.rollout_drain_s,
        readiness_timeout_s=settings.rollout_ready_timeout_s,
    )


def _listen(server: grpc.aio.Server, settings: Settings) -> int:
    address = f"{settings.host}:{settings.port}"
    if settings.tls_cert_file and settings.tls_key_file:
        credentials = server_credentials(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"cannot listen on {address}")
    return port


def _cache_secret(settings: Settings) -> CacheSecret:
    if settings.cache_secret is not None:
        return CacheSecret(settings.cache_secret.get_secret_value().encode())
    if settings.cache_enabled:
        log.warning("TOLLGATE_CACHE_SECRET is not set: cache entries are sealed with a random per-process secret")
    return CacheSecret(secrets.token_bytes(32))


def _status(serving: bool) -> int:
    return health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING


async def run_gateway(settings: Settings) -> None:
    """Runs until SIGTERM or SIGINT, then stops cleanly."""
    gateway = Gateway(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # The ledger's writes (~6 ms of Python per second at 450 calls/s) run in a thread: at Python's
    # default switch interval the event loop could wait 5 ms at a time for the GIL.
    sys.setswitchinterval(settings.gil_switch_interval_s)
    await gateway.start()
    freeze_startup_heap()
    await stop.wait()
    log.info("stop requested; draining in-flight calls")
    await gateway.stop()
