"""The processes a benchmark measures: one real Triton, Redis, and gateways in several configurations.

Every gateway variant talks to the *same* Triton, so a comparison between variants (or with
direct Triton) differs only in the gateway's configuration. Redis keys carry a prefix unique
to the run (``tollgate-bench:<uuid>:``) and only those keys are ever deleted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path


from benchmarks.pinning import descendants
from deploy.local.access import LocalAccess, provision
from deploy.local.gateway import GatewayProcess, settings_env
from deploy.local.ports import free_port
from deploy.local.redis import delete_prefixed as delete_redis_prefixed
from deploy.local.redis import ensure_redis
from deploy.local.settings import LocalStackSettings
from deploy.local.triton import TritonServer
from gateway.api_keys import Role
from gateway.settings import Settings
from pipeline.search.config import SearchPipelineSettings

log = logging.getLogger(__name__)

CACHE_PREFIX_ROOT = "tollgate-bench:"
# Calls an open-loop run keeps in flight at most (the load generator's cap, for direct Triton and
# the gateways alike: a due call finding this many open is dropped, counted as overflow), and the
# gateways' pool limit: at the gateway's default (64 per pool) a stall
# of the shared machine made the gateway shed calls with RESOURCE_EXHAUSTED while the direct run
# queued up to this many, so the two sides were not offered the same thing.
OPEN_LOOP_MAX_IN_FLIGHT = 256


@dataclass(frozen=True)
class GatewayVariant:
    name: str
    cache_enabled: bool
    tracing_enabled: bool
    trace_exporter: str = "none"  # "otlp": to the stack's OTLP sink
    trace_sample_ratio: float | None = None  # None: the gateway's default
    description: str = ""


# The configurations compared by the suite. "plain" is `tollgate serve`'s default with the cache off.
PLAIN = GatewayVariant(
    "plain", cache_enabled=False, tracing_enabled=True, description="cache off, default tracing (no exporter)"
)
CACHED = GatewayVariant(
    "cached", cache_enabled=True, tracing_enabled=True, description="cache on, default tracing (no exporter)"
)
TRACED_DEFAULT = GatewayVariant(
    "traced-default",
    cache_enabled=False,
    tracing_enabled=True,
    trace_exporter="otlp",
    description="cache off, default tracing (head-sampled at the default ratio), spans exported over OTLP",
)
TRACED_ALL = GatewayVariant(
    "traced-all",
    cache_enabled=False,
    tracing_enabled=True,
    trace_exporter="otlp",
    trace_sample_ratio=1.0,
    description="cache off, every request traced, spans exported over OTLP",
)
UNTRACED = GatewayVariant("untraced", cache_enabled=False, tracing_enabled=False, description="cache off, tracing off")
VARIANTS = (PLAIN, CACHED, TRACED_DEFAULT, TRACED_ALL, UNTRACED)


def search_models(local_settings: LocalStackSettings) -> tuple[str, ...]:
    """The search models, when the search build has put them in the repository (the gateway's
    health waits for every model it serves, so they are loaded whenever they exist)."""
    config = SearchPipelineSettings()
    names = (config.encoder_model_name, config.index_model_name, config.ensemble_model_name)
    return names if all((local_settings.model_repository / name / "config.pbtxt").is_file() for name in names) else ()


@dataclass
class RunningBench:
    triton: TritonServer
    gateways: dict[str, GatewayProcess]
    redis_url: str
    cache_prefix: str
    run_dir: Path
    access: LocalAccess
    floor: ChildProcess  # benchmarks/floor_proxy.py in front of the same Triton
    otlp_sink: ChildProcess  # benchmarks/otlp_sink.py, where the otlp variants export
    workers: int = 1  # worker processes of every gateway (= the gateway's share of the cores)

    def api_keys(self) -> dict[str, str]:
        """Tenant -> its caller key, for the load generator."""
        return {tenant: token for (tenant, role), token in self.access.tokens.items() if role is Role.CALLER}

    def gateway_address(self, variant: str) -> str:
        return self.gateways[variant].address

    def gateway_pid(self, variant: str) -> int:
        pid = self.gateways[variant].pid
        if pid is None:
            raise RuntimeError(f"gateway {variant} is not running")
        return pid

    def gateway_pids(self, variant: str) -> list[int]:
        """The gateway's process and its workers (all of them spend its CPU)."""
        return descendants(self.gateway_pid(variant))

    def clear_cache(self) -> int:
        """Deletes this run's cache keys (and only those); returns how many."""
        return delete_prefixed(self.redis_url, self.cache_prefix)


def delete_prefixed(redis_url: str, prefix: str) -> int:
    if not prefix.startswith(CACHE_PREFIX_ROOT) or len(prefix) <= len(CACHE_PREFIX_ROOT):
        raise ValueError(f"refusing to delete keys outside a bench prefix: {prefix!r}")
    return delete_redis_prefixed(redis_url, prefix)


@contextlib.contextmanager
def bench_stack(
    settings: Settings,
    local_settings: LocalStackSettings,
    run_dir: Path,
    *,
    models: Sequence[str],
    variants: Sequence[GatewayVariant] = VARIANTS,
    workers: int = 1,
) -> Iterator[RunningBench]:
    """Starts Triton (``models`` only), Redis if none answers, the floor proxy, the OTLP sink
    and one gateway per variant (``workers`` worker processes each); stops all of it and
    deletes this run's cache keys on exit."""
    log_dir = run_dir / "logs"
    prefix = f"{CACHE_PREFIX_ROOT}{uuid.uuid4().hex[:12]}:"
    with contextlib.ExitStack() as stack:
        handle = ensure_redis(settings.redis_url, log_dir)
        stack.callback(handle.stop)
        triton = stack.enter_context(
            TritonServer(local_settings.model_repository, models=models, log_path=log_dir / "triton.log").start()
        )
        stack.callback(delete_prefixed, settings.redis_url, prefix)
        floor = stack.enter_context(ChildProcess("benchmarks.floor_proxy", ["--target", triton.grpc_url], log_dir))
        sink = stack.enter_context(ChildProcess("benchmarks.otlp_sink", [], log_dir))
        access = provision(run_dir / "access")
        gateways = {
            variant.name: GatewayProcess(
                free_port(),
                {
                    **_gateway_env(settings, variant, triton.grpc_url, prefix, run_dir, f"http://{sink.address}"),
                    **settings_env(**access.settings(), workers=workers),
                },
                log_dir / f"gateway-{variant.name}.log",
            )
            for variant in variants
        }
        for gateway in gateways.values():
            stack.callback(gateway.stop)
        with ThreadPoolExecutor(max_workers=len(gateways)) as pool:
            list(pool.map(lambda gateway: gateway.start(), gateways.values()))
        log.info("bench stack up: Triton %s, gateways %s", triton.grpc_url, {n: g.address for n, g in gateways.items()})
        yield RunningBench(triton, gateways, settings.redis_url, prefix, run_dir, access, floor, sink, workers)


def _gateway_env(
    settings: Settings, variant: GatewayVariant, triton_url: str, prefix: str, run_dir: Path, otlp_endpoint: str
) -> dict[str, str]:
    pool = {"name": settings.pool_name, "endpoints": [triton_url], "max_in_flight": OPEN_LOOP_MAX_IN_FLIGHT}
    values: dict[str, object] = dict(
        pools=json.dumps([pool]),
        redis_url=settings.redis_url,
        cache_enabled=variant.cache_enabled,
        cache_prefix=prefix,
        tracing_enabled=variant.tracing_enabled,
        trace_exporter=variant.trace_exporter,
        trace_file=run_dir / f"spans-{variant.name}.jsonl",
        ledger_path=run_dir / f"ledger-{variant.name}.sqlite",
    )
    if variant.trace_sample_ratio is not None:
        values["trace_sample_ratio"] = variant.trace_sample_ratio
    if variant.trace_exporter == "otlp":
        values["otlp_endpoint"] = otlp_endpoint
    return settings_env(**values)


class ChildProcess:
    """A helper of the bench (``python -m <module> --port P ...``) on a free loopback port; it
    prints one line once it listens. ``stop()`` returns what it printed after that."""

    def __init__(self, module: str, args: Sequence[str], log_dir: Path) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._command = [sys.executable, "-m", module, "--port", str(self.port), *args]
        self._log = log_dir / f"{module.rsplit('.', 1)[-1]}.log"
        self._process: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def __enter__(self) -> ChildProcess:
        self._log.parent.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(self._command, stdout=subprocess.PIPE, stderr=self._log.open("ab"), text=True)
        assert self._process.stdout is not None
        if not self._process.stdout.readline():
            raise RuntimeError(f"{' '.join(self._command)} did not start; see {self._log}")
        return self

    def stop(self) -> str:
        if self._process is None:
            return ""
        self._process.terminate()
        try:
            out, _ = self._process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            out, _ = self._process.communicate()
        self._process = None
        return out.strip()

    def __exit__(self, *exc: object) -> None:
        self.stop()
