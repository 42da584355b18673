"""The whole local stack as one context manager: Redis (if none answers), one Triton per
pool, the gateway.

Used by ``make demo`` and ``make serve``; everything it started is stopped on exit, in reverse
order, so the gateway drains and flushes its ledger while Triton is still up.

The local pools are the hybrid-cloud case on one machine: ``cpu-local``, the private capacity
already paid for, with a small in-flight limit, and ``cpu-public``, an on-demand public pool
that takes the overflow when the private one is full.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from deploy.local.access import LocalAccess, provision
from deploy.local.gateway import GatewayProcess, settings_env
from deploy.local.ports import free_port
from deploy.local.redis import RedisHandle, ensure_redis
from deploy.local.settings import LocalStackSettings, get_local_settings
from deploy.local.triton import TritonServer
from gateway.settings import PoolConfig, Settings
from gateway.span_file import span_files

log = logging.getLogger(__name__)

# Models of model_repo/ that the gateway calls (Triton loads only these).
SERVED_MODELS = ("recommender", "query_encoder", "product_index", "product_search")


@dataclass(frozen=True)
class LocalPool:
    name: str  # its price-book entry
    max_in_flight: int


# Private first; the public pool bursts. Four calls in flight keep the 2 cores of a small
# machine busy without queueing; more go to the public pool.
LOCAL_POOLS = (LocalPool("cpu-local", 4), LocalPool("cpu-public", 16))


@dataclass(frozen=True)
class RunningStack:
    gateway_address: str
    triton_urls: dict[str, str]  # pool -> Triton gRPC address
    redis_url: str
    ledger_path: Path
    trace_file: Path
    log_dir: Path
    access: LocalAccess  # the run's tenants and API keys (tokens in <run>/access/local-access.json)
    redis: RedisHandle  # stops the Redis this stack started (a no-op for one that was running)
    tritons: dict[str, TritonServer]  # pool -> server
    on_stop: Callable[..., object]  # on_stop(fn, *args): run fn(*args) first when the stack stops


@contextlib.contextmanager
def local_stack(
    settings: Settings,
    run_name: str,
    *,
    fresh_ledger: bool,
    gateway_port: int | None = None,
    gateway_settings: dict[str, object] | None = None,
    pools: Sequence[LocalPool] = LOCAL_POOLS,
    local_settings: LocalStackSettings | None = None,
    reuse_keys: bool = False,
    model_repository: Path | None = None,
) -> Iterator[RunningStack]:
    """Starts what is missing and yields the addresses; ``run_name`` names the folder under
    the local stack's ``run_dir`` that holds this run's logs, ledger and spans. The gateway
    listens on ``gateway_port``, or on a free port when it is None; ``gateway_settings``
    overrides its settings (field name -> value). The run's tenants and API keys are made in
    ``<run>/access`` (kept across runs with ``reuse_keys``). ``model_repository``: what Triton
    serves (default: the local settings' repository)."""
    local_settings = local_settings or get_local_settings()
    run_dir = local_settings.run_dir / run_name
    log_dir = run_dir / "logs"
    ledger_path, trace_file = run_dir / "ledger.sqlite", run_dir / "spans.jsonl"
    if fresh_ledger:
        for stale in (ledger_path, *span_files(trace_file), *ledger_path.parent.glob("ledger.sqlite-*")):
            stale.unlink(missing_ok=True)
    with contextlib.ExitStack() as stack:
        redis = ensure_redis(settings.redis_url, log_dir)
        stack.callback(redis.stop)
        repository = model_repository or local_settings.model_repository
        tritons = start_tritons(repository, [pool.name for pool in pools], log_dir, stack)
        gateway_port = gateway_port or free_port()
        access = provision(run_dir / "access", reuse=reuse_keys)
        env = settings_env(
            pools=pools_setting(tritons, {pool.name: pool.max_in_flight for pool in pools}),
            redis_url=settings.redis_url,
            ledger_path=ledger_path,
            trace_exporter=_local_trace_exporter(settings),
            trace_file=trace_file,
            trace_sample_ratio=1.0,  # the local stack shows every call's trace (production samples)
            **access.settings(),
            **(gateway_settings or {}),
        )
        log.info("starting the gateway on 127.0.0.1:%d", gateway_port)
        gateway = stack.enter_context(GatewayProcess(gateway_port, env, log_dir / "gateway.log").start())
        yield RunningStack(
            gateway_address=gateway.address,
            triton_urls={pool: server.grpc_url for pool, server in tritons.items()},
            redis_url=settings.redis_url,
            ledger_path=ledger_path,
            trace_file=trace_file,
            log_dir=log_dir,
            access=access,
            redis=redis,
            tritons=tritons,
            on_stop=stack.callback,
        )


def start_tritons(
    model_repository: Path, pools: Sequence[str], log_dir: Path, stack: contextlib.ExitStack
) -> dict[str, TritonServer]:
    """One Triton per pool on free ports, started side by side (each takes seconds to load the
    models); ``stack`` stops them."""
    servers = {
        pool: TritonServer(model_repository, models=SERVED_MODELS, log_path=log_dir / f"triton-{pool}.log")
        for pool in pools
    }
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(servers)) as executor:
        futures = {pool: executor.submit(server.start) for pool, server in servers.items()}
        for pool in futures:
            stack.callback(servers[pool].stop)
        for pool, future in futures.items():
            future.result()
            log.info("Triton of pool %s on %s", pool, servers[pool].grpc_url)
    return servers


def pools_setting(tritons: Mapping[str, TritonServer], max_in_flight: Mapping[str, int] | None = None) -> str:
    """The gateway's ``pools`` setting (JSON) for one Triton per pool; a pool missing from
    ``max_in_flight`` keeps PoolConfig's default limit."""
    limits = max_in_flight or {}
    default_limit = PoolConfig.model_fields["max_in_flight"].default
    configs = [
        PoolConfig(name=pool, endpoints=[server.grpc_url], max_in_flight=limits.get(pool, default_limit))
        for pool, server in tritons.items()
    ]
    return json.dumps([config.model_dump() for config in configs])


def _local_trace_exporter(settings: Settings) -> str:
    """The configured exporter; by default OTLP when an endpoint is set, else the run's span file."""
    if settings.trace_exporter in ("auto", "none"):
        return "otlp" if settings.otlp_endpoint else "file"
    return settings.trace_exporter
