"""``make cluster``: Tollgate's production topology as local processes on loopback.

Two gateway replicas (clients spread calls over them with gRPC's client-side round-robin),
two Triton pools, Redis, PostgreSQL as the shared cost ledger, and a real Prometheus server
scraping every gateway's and every Triton's metrics and evaluating the production rules
(deploy/prometheus/rules). What Kubernetes does in deploy/k8s, done with processes:

    client ──round_robin──┬─▶ gateway 1 ─┬─▶ Triton "gpu-local" ┐
                          └─▶ gateway 2 ─┴─▶ Triton "cpu-local" ┤◀── Prometheus (scrapes all,
                                  │   └──▶ Redis (cache)         │    evaluates the rules)
                                  └──────▶ PostgreSQL (ledger) ◀─┘

This machine has no GPU: the pool named ``gpu-local`` is a second CPU Triton *labelled* gpu,
priced and preferred as the GPU pool, which is all the routing and costing see.

PostgreSQL is the machine's own server (``--postgres-admin-url``); the cluster creates a
database of its own there (deploy/local/postgres.py) and drops it when it stops (unless
``keep_database``). The Prometheus server (deploy/local/prometheus.py) and promtool come from
deploy/tools/install-deploy-tools.sh.

Run: ``make cluster`` (or ``python -m deploy.local.cluster_cli --help``; the command line is
deploy/local/cluster_cli.py).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from deploy.local.access import LocalAccess, provision
from deploy.local.gateway import settings_env
from deploy.local.ports import LOOPBACK, free_port
from deploy.local.postgres import DEFAULT_POSTGRES_ADMIN_URL, postgres_database
from deploy.local.prometheus import GATEWAY_JOB, TRITON_JOB, PrometheusServer, ScrapeTarget, prometheus_config
from deploy.local.redis import delete_prefixed, ensure_redis
from deploy.local.replica import ReplicaProcess
from deploy.local.settings import LocalStackSettings, get_local_settings
from deploy.local.stack import pools_setting, start_tritons
from deploy.local.triton import TritonServer
from deploy.tools import toolchain
from gateway.settings import Settings

log = logging.getLogger(__name__)

# Pools in the gateway's order of preference (gpu_first); names are price-book entries.
POOLS = ("gpu-local", "cpu-local")
CLIENT_CHANNEL_OPTIONS = (("grpc.lb_policy_name", "round_robin"),)
# Exit codes of a replica stopped on purpose. On Ctrl-C the terminal's SIGINT reaches the
# gateways too: they drain and flush, then our SIGTERM finds them past their handlers and
# ends them (-15), which is not a failure.
STOPPED_NORMALLY = (0, None, -signal.SIGINT, -signal.SIGTERM)


@dataclass
class RunningCluster:
    replicas: list[ReplicaProcess]
    tritons: dict[str, TritonServer]  # pool -> server
    prometheus: PrometheusServer
    ledger_url: str
    redis_url: str
    cache_prefix: str
    log_dir: Path
    access: LocalAccess  # tenants and API keys shared by every replica
    _restart: Callable[[int], ReplicaProcess]

    @property
    def gateway_addresses(self) -> list[str]:
        return [replica.address for replica in self.replicas]

    @property
    def client_target(self) -> str:
        """gRPC target naming every replica; with CLIENT_CHANNEL_OPTIONS
        (("grpc.lb_policy_name", "round_robin")) calls rotate over the replicas that are up."""
        return "ipv4:" + ",".join(self.gateway_addresses)

    def restart(self, index: int) -> ReplicaProcess:
        """Start replica ``index`` again (after a kill), on the same ports."""
        self.replicas[index] = self._restart(index)
        return self.replicas[index]


@contextlib.contextmanager
def local_cluster(
    settings: Settings,
    run_name: str = "cluster",
    *,
    local_settings: LocalStackSettings | None = None,
    replicas: int = 2,
    postgres_admin_url: str = DEFAULT_POSTGRES_ADMIN_URL,
    keep_database: bool = False,
    scrape_interval_s: float = 1.0,
    ledger_flush_interval_s: float = 0.2,
    extra_settings: dict[str, object] | None = None,
) -> Iterator[RunningCluster]:
    """Starts the whole cluster and yields it; everything it started is stopped on exit, the
    gateways first (they drain and flush their ledgers while Triton and PostgreSQL are up).
    ``run_name`` names the folder under the local stack's ``run_dir`` that holds its logs."""
    local_settings = local_settings or get_local_settings()
    tools = toolchain.ensure()
    run_id = uuid.uuid4().hex[:8]
    run_dir = local_settings.run_dir / run_name
    log_dir = run_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        redis_handle = ensure_redis(settings.redis_url, log_dir)
        stack.callback(redis_handle.stop)
        cache_prefix = f"tollgate-cluster:{run_id}:"
        stack.callback(_delete_cache_keys, settings.redis_url, cache_prefix)
        ledger_url = stack.enter_context(
            postgres_database(postgres_admin_url, f"tollgate_cluster_{run_id}", keep=keep_database)
        )
        tritons = start_tritons(local_settings.model_repository, POOLS, log_dir, stack)
        access = provision(run_dir / "access")
        base_env = settings_env(
            **access.settings(),
            pools=pools_setting(tritons),
            redis_url=settings.redis_url,
            cache_prefix=cache_prefix,
            ledger_url=ledger_url,
            ledger_flush_interval_s=ledger_flush_interval_s,
            # A replica answers only once the call's cost record is in the shared ledger, so
            # killing it loses no record a caller was given.
            ledger_commit_before_answer=True,
            metrics_host=LOOPBACK,
            readiness_poll_s=0.5,
            trace_exporter="none",
            **(extra_settings or {}),
        )
        ports = [(free_port(), free_port()) for _ in range(replicas)]

        def start_replica(index: int) -> ReplicaProcess:
            port, metrics_port = ports[index]
            name = f"gateway-{index + 1}"
            # ledger_path only matters if ledger_url were ignored: keep such a file out of var/.
            ledger_path = run_dir / name / "ledger.sqlite"
            env = {**base_env, **settings_env(metrics_port=metrics_port, ledger_path=ledger_path)}
            replica = ReplicaProcess(name, port, metrics_port, env, log_dir / f"{name}.log")
            replica.start()
            log.info("%s on %s (metrics %s)", name, replica.address, replica.metrics_address)
            return replica

        # One after the other: both create the ledger schema (serialised by an advisory lock
        # anyway), and two model-heavy starts at once only slow each other on two cores.
        running = [start_replica(index) for index in range(replicas)]
        stack.callback(_stop_replicas, running)

        targets = [ScrapeTarget(GATEWAY_JOB, r.metrics_address, {"replica": r.name}) for r in running]
        targets += [ScrapeTarget(TRITON_JOB, server.metrics_url, {"pool": pool}) for pool, server in tritons.items()]
        prometheus_dir = Path(tempfile.mkdtemp(prefix="prometheus-", dir=run_dir))
        stack.callback(shutil.rmtree, prometheus_dir, True)
        prometheus = PrometheusServer(
            tools.prometheus,
            prometheus_config(targets, scrape_interval_s=scrape_interval_s),
            prometheus_dir,
            log_dir / "prometheus.log",
        ).start()
        stack.callback(prometheus.stop)
        prometheus.wait_for_targets(len(targets))
        yield RunningCluster(
            replicas=running,
            tritons=tritons,
            prometheus=prometheus,
            ledger_url=ledger_url,
            redis_url=settings.redis_url,
            cache_prefix=cache_prefix,
            log_dir=log_dir,
            access=access,
            _restart=start_replica,
        )


def _stop_replicas(replicas: list[ReplicaProcess]) -> None:
    for replica in replicas:
        code = replica.stop()
        if code not in STOPPED_NORMALLY:
            log.warning("%s exited with %s; see %s", replica.name, code, replica.log_path)


def _delete_cache_keys(redis_url: str, prefix: str) -> None:
    try:
        delete_prefixed(redis_url, prefix)
    except redis.RedisError as exc:
        log.warning("could not delete the cluster's cache keys: %s", exc)

