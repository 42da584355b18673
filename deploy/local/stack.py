"""The whole local stack as one context manager: Redis (if none answers), Triton, the gateway.

Used by ``make demo`` and ``make serve``; everything it started is stopped on exit, in reverse
order, so the gateway drains and flushes its ledger while Triton is still up.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from deploy.local.gateway import GatewayProcess, settings_env
from deploy.local.ports import free_port
from deploy.local.redis import ensure_redis
from deploy.local.triton import TritonServer
from gateway.settings import Settings

log = logging.getLogger(__name__)

# Models of model_repo/ that the gateway calls (Triton loads only these).
SERVED_MODELS = ("recommender", "query_encoder", "product_index", "product_search")


@dataclass(frozen=True)
class RunningStack:
    gateway_address: str
    triton_url: str
    redis_url: str
    ledger_path: Path
    trace_file: Path
    log_dir: Path


@contextlib.contextmanager
def local_stack(
    settings: Settings,
    run_name: str,
    *,
    fresh_ledger: bool,
    gateway_port: int | None = None,
    gateway_settings: dict[str, object] | None = None,
) -> Iterator[RunningStack]:
    """Starts what is missing and yields the addresses; ``run_name`` names the folder under
    ``settings.run_dir`` that holds this run's logs, ledger and spans. The gateway listens on
    ``gateway_port``, or on a free port when it is None; ``gateway_settings`` overrides its
    settings (field name -> value)."""
    run_dir = settings.run_dir / run_name
    log_dir = run_dir / "logs"
    ledger_path, trace_file = run_dir / "ledger.sqlite", run_dir / "spans.jsonl"
    if fresh_ledger:
        for stale in (ledger_path, trace_file, *ledger_path.parent.glob("ledger.sqlite-*")):
            stale.unlink(missing_ok=True)
    with contextlib.ExitStack() as stack:
        redis = ensure_redis(settings.redis_url, log_dir)
        stack.callback(redis.stop)
        log.info("starting Triton on %s", settings.model_repository)
        triton = stack.enter_context(
            TritonServer(settings.model_repository, models=SERVED_MODELS, log_path=log_dir / "triton.log").start()
        )
        gateway_port = gateway_port or free_port()
        env = settings_env(
            triton_url=triton.grpc_url,
            redis_url=settings.redis_url,
            ledger_path=ledger_path,
            trace_exporter=_local_trace_exporter(settings),
            trace_file=trace_file,
            **(gateway_settings or {}),
        )
        log.info("starting the gateway on 127.0.0.1:%d", gateway_port)
        gateway = stack.enter_context(GatewayProcess(gateway_port, env, log_dir / "gateway.log").start())
        yield RunningStack(
            gateway_address=gateway.address,
            triton_url=triton.grpc_url,
            redis_url=settings.redis_url,
            ledger_path=ledger_path,
            trace_file=trace_file,
            log_dir=log_dir,
        )


def _local_trace_exporter(settings: Settings) -> str:
    """The configured exporter; by default OTLP when an endpoint is set, else the run's span file."""
    if settings.trace_exporter in ("auto", "none"):
        return "otlp" if settings.otlp_endpoint else "file"
    return settings.trace_exporter
