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
database of its own there and drops it when it stops (unless ``keep_database``). The
Prometheus server and promtool come from deploy/tools/install-deploy-tools.sh.

Run: ``make cluster`` (or ``python -m deploy.local.cluster --help``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import typer

from deploy.local.gateway import GatewayProcess, settings_env
from deploy.local.ports import free_port
from deploy.local.redis import delete_prefixed, ensure_redis
from deploy.local.stack import pools_setting, start_tritons
from deploy.local.triton import TritonServer
from deploy.tools import toolchain
from gateway.settings import REPO_ROOT, Settings, get_settings

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
DEFAULT_POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# Pools in the gateway's order of preference (gpu_first); names are price-book entries.
POOLS = ("gpu-local", "cpu-local")
# The production rules, evaluated by the local Prometheus too (same job names and labels).
RULE_FILES = tuple(
    REPO_ROOT / "deploy" / "prometheus" / "rules" / name
    for name in ("tollgate-recording.yml", "tollgate-objectives.yml", "tollgate-alerts.yml")
)
GATEWAY_JOB = "tollgate-gateway"
TRITON_JOB = "triton"
HTTP_TIMEOUT_S = 5.0


# --- PostgreSQL: a database of the cluster's own ---------------------------------------------


def _psycopg() -> Any:
    import psycopg  # installed by deploy/tools/install-deploy-tools.sh (and by the PG ledger's deps)

    return psycopg


def database_url(admin_url: str, database: str) -> str:
    """``admin_url`` with its database replaced by ``database``."""
    parts = urllib.parse.urlsplit(admin_url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + database))


@contextlib.contextmanager
def postgres_database(admin_url: str, name: str, *, keep: bool = False) -> Iterator[str]:
    """Creates database ``name`` on the server of ``admin_url``, yields its URL, drops it on
    exit (FORCE: a killed gateway's connection may linger) unless ``keep``."""
    psycopg = _psycopg()
    sql = psycopg.sql
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as exc:
        raise RuntimeError(
            f"PostgreSQL does not answer at {admin_url} ({exc}); start it (on these machines: "
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) or pass --postgres-admin-url"
        ) from exc
    log.info("created database %s", name)
    try:
        yield database_url(admin_url, name)
    finally:
        if keep:
            log.info("kept database %s", name)
        else:
            with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            log.info("dropped database %s", name)


# --- Prometheus ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScrapeTarget:
    job: str
    address: str  # host:port of a /metrics endpoint
    labels: dict[str, str] = field(default_factory=dict)


def prometheus_config(
    targets: Sequence[ScrapeTarget], *, scrape_interval_s: float, rule_files: Sequence[Path] = RULE_FILES
) -> dict[str, Any]:
    """A Prometheus configuration with one static target group per target (so each keeps its
    own labels), under the job names of deploy/prometheus/prometheus.yml."""
    jobs: dict[str, list[dict[str, Any]]] = {}
    for target in targets:
        jobs.setdefault(target.job, []).append({"targets": [target.address], "labels": dict(target.labels)})
    interval = f"{int(scrape_interval_s * 1000)}ms"
    return {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [{"job_name": job, "static_configs": groups} for job, groups in jobs.items()],
    }


class PrometheusError(RuntimeError):
    pass


class PrometheusServer:
    """The real ``prometheus`` binary on a loopback port, its data in a temporary folder."""

    def __init__(self, binary: Path, config: dict[str, Any], work_dir: Path, log_path: Path) -> None:
        self.binary = binary
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.work_dir = work_dir
        self.config_path = work_dir / "prometheus.yml"
        self.log_path = log_path
        # JSON is YAML: no YAML library needed to write the configuration.
        self.config_path.write_text(json.dumps(config, indent=2) + "\n")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout_s: float = 30.0) -> PrometheusServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            self._process = subprocess.Popen(
                [
                    str(self.binary),
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.work_dir / 'data'}",
                    "--storage.tsdb.retention.time=1d",
                    f"--web.listen-address={HOST}:{self.port}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PrometheusError(f"prometheus exited with {self._process.returncode}; see {self.log_path}")
            if self._ready():
                log.info("prometheus on %s (pid %d), config %s", self.url, self._process.pid, self.config_path)
                return self
            time.sleep(0.2)
        self.stop()
        raise PrometheusError(f"prometheus not ready after {ready_timeout_s:.0f} s; see {self.log_path}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1.0) as reply:
                return reply.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of ``expr`` now: [{"metric": {...}, "value": float}, ...]."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as reply:
            body = json.loads(reply.read())
        if body.get("status") != "success":
            raise PrometheusError(f"query {expr!r} failed: {body}")
        result = body["data"]["result"]
        if body["data"]["resultType"] == "scalar":
            return [{"metric": {}, "value": float(result[1])}]
        return [{"metric": sample["metric"], "value": float(sample["value"][1])} for sample in result]

    def value(self, expr: str) -> float | None:
        """The single value of ``expr`` now, or None when it has no sample."""
        samples = self.query(expr)
        if len(samples) > 1:
            raise PrometheusError(f"{expr!r} has {len(samples)} samples, expected one")
        return samples[0]["value"] if samples else None

    def wait_for_targets(self, count: int, timeout_s: float = 30.0) -> None:
        """Returns once ``count`` targets have been scraped at least once (Prometheus applies
        discovered targets only every few seconds)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.query("up")) >= count:
                return
            time.sleep(0.25)
        raise PrometheusError(f"fewer than {count} targets scraped after {timeout_s:.0f} s: {self.targets_up()}")

    def targets_up(self) -> dict[str, bool]:
        """Scrape address -> whether its last scrape succeeded."""
        return {sample["metric"]["instance"]: sample["value"] == 1.0 for sample in self.query("up")}

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._process is None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None


# --- gateways ----------------------------------------------------------------------------------


class ReplicaProcess(GatewayProcess):
    """A gateway replica with a name and a Prometheus endpoint; ``kill()`` (SIGKILL: no drain,
    no final ledger flush) shows what a crash costs."""

    def __init__(self, name: str, port: int, metrics_port: int, env: dict[str, str], log_path: Path) -> None:
        super().__init__(port, env, log_path)
        self.name = name
        self.metrics_port = metrics_port
        self.metrics_address = f"{HOST}:{metrics_port}"
        self.log_path = log_path

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://{self.metrics_address}/metrics", timeout=HTTP_TIMEOUT_S) as reply:
            return reply.read().decode()

    def counter_total(self, name: str) -> float:
        """Sum of counter ``name`` (e.g. tollgate_cost_usd_total) over its label sets, read from
        this replica's own /metrics."""
        total = 0.0
        for line in self.metrics_text().splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                total += float(line.rsplit(" ", 1)[1])
        return total


# --- the cluster ---------------------------------------------------------------------------------


@dataclass
class RunningCluster:
    replicas: list[ReplicaProcess]
    tritons: dict[str, TritonServer]  # pool -> server
    prometheus: PrometheusServer
    ledger_url: str
    redis_url: str
    cache_prefix: str
    log_dir: Path
    _restart: Callable[[int], ReplicaProcess]

    @property
    def gateway_addresses(self) -> list[str]:
        return [replica.address for replica in self.replicas]

    @property
    def client_target(self) -> str:
        """gRPC target naming every replica; with the channel option
        ("grpc.lb_policy_name", "round_robin") calls rotate over the replicas that are up."""
        return "ipv4:" + ",".join(self.gateway_addresses)

    def restart(self, index: int) -> ReplicaProcess:
        """Start replica ``index`` again (after a kill), on the same ports."""
        self.replicas[index] = self._restart(index)
        return self.replicas[index]


CLIENT_CHANNEL_OPTIONS = (("grpc.lb_policy_name", "round_robin"),)


@contextlib.contextmanager
def local_cluster(
    settings: Settings,
    run_name: str = "cluster",
    *,
    replicas: int = 2,
    postgres_admin_url: str = DEFAULT_POSTGRES_ADMIN_URL,
    keep_database: bool = False,
    scrape_interval_s: float = 1.0,
    ledger_flush_interval_s: float = 0.2,
    extra_settings: dict[str, object] | None = None,
) -> Iterator[RunningCluster]:
    """Starts the whole cluster and yields it; everything it started is stopped on exit, the
    gateways first (they drain and flush their ledgers while Triton and PostgreSQL are up)."""
    tools = toolchain.ensure()
    run_id = uuid.uuid4().hex[:8]
    run_dir = settings.run_dir / run_name
    log_dir = run_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        redis = ensure_redis(settings.redis_url, log_dir)
        stack.callback(redis.stop)
        cache_prefix = f"tollgate-cluster:{run_id}:"
        stack.callback(_delete_cache_keys, settings.redis_url, cache_prefix)
        ledger_url = stack.enter_context(
            postgres_database(postgres_admin_url, f"tollgate_cluster_{run_id}", keep=keep_database)
        )
        tritons = start_tritons(settings.model_repository, POOLS, log_dir, stack)
        base_env = settings_env(
            pools=pools_setting(tritons),
            redis_url=settings.redis_url,
            cache_prefix=cache_prefix,
            ledger_url=ledger_url,
            ledger_flush_interval_s=ledger_flush_interval_s,
            # A replica answers only once the call's cost record is in the shared ledger, so
            # killing it loses no record a caller was given.
            ledger_commit_before_answer=True,
            metrics_host=HOST,
            readiness_poll_s=0.5,
            trace_exporter="none",
            **(extra_settings or {}),
        )
        ports = [(free_port(), free_port()) for _ in range(replicas)]

        def start_replica(index: int) -> ReplicaProcess:
            port, metrics_port = ports[index]
            name = f"gateway-{index + 1}"
            # ledger_path only matters if ledger_url were ignored: keep such a file out of var/.
            replica_dir = run_dir / name
            env = {
                **base_env,
                **settings_env(metrics_port=metrics_port, run_dir=replica_dir, ledger_path=replica_dir / "ledger.sqlite"),
            }
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
            _restart=start_replica,
        )


def _stop_replicas(replicas: list[ReplicaProcess]) -> None:
    # On Ctrl-C the terminal's SIGINT reaches the gateways too: they drain and flush, then
    # our SIGTERM finds them past their handlers and ends them (-15), which is not a failure.
    stopped_normally = (0, None, -signal.SIGINT, -signal.SIGTERM)
    for replica in replicas:
        code = replica.stop()
        if code not in stopped_normally:
            log.warning("%s exited with %s; see %s", replica.name, code, replica.log_path)


def _delete_cache_keys(redis_url: str, prefix: str) -> None:
    try:
        delete_prefixed(redis_url, prefix)
    except redis.RedisError as exc:
        log.warning("could not delete the cluster's cache keys: %s", exc)


# --- make cluster ----------------------------------------------------------------------------------

app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


@app.command()
def main(
    replicas: int = typer.Option(2, min=1, help="Gateway replicas."),
    postgres_admin_url: str = typer.Option(DEFAULT_POSTGRES_ADMIN_URL, help="PostgreSQL server to create the ledger database on."),
    keep_database: bool = typer.Option(False, help="Keep the ledger database when the cluster stops."),
) -> None:
    """Start the cluster and keep it up until Ctrl-C."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with local_cluster(
        get_settings(), replicas=replicas, postgres_admin_url=postgres_admin_url, keep_database=keep_database
    ) as cluster:
        lines = [
            "Tollgate cluster is up.",
            *(f"  {r.name}: gRPC {r.address}, metrics http://{r.metrics_address}/metrics" for r in cluster.replicas),
            *(f"  Triton {pool}: gRPC {s.grpc_url}, metrics http://{s.metrics_url}/metrics" for pool, s in cluster.tritons.items()),
            f"  Prometheus: {cluster.prometheus.url}  (try: sum(tollgate_cost_usd_total))",
            f"  ledger: {cluster.ledger_url}",
            f"  logs: {cluster.log_dir}",
            "Clients: grpc.insecure_channel("
            f"'{cluster.client_target}', options=[('grpc.lb_policy_name', 'round_robin')])",
            "Ctrl-C stops everything.",
        ]
        print("\n".join(lines), flush=True)
        stop.wait()


if __name__ == "__main__":
    app()
