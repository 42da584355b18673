"""A real Prometheus server on loopback that scrapes local processes and evaluates the
production rules (deploy/prometheus/rules), under the job names of
deploy/prometheus/prometheus.yml. The binary comes from deploy/tools/install-deploy-tools.sh.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.local.ports import LOOPBACK, free_port
from deploy.local.settings import REPO_ROOT

log = logging.getLogger(__name__)

# The production rules, evaluated by the local Prometheus too (same job names and labels).
RULE_FILES = tuple(
    REPO_ROOT / "deploy" / "prometheus" / "rules" / name
    for name in ("tollgate-recording.yml", "tollgate-objectives.yml", "tollgate-alerts.yml")
)
GATEWAY_JOB = "tollgate-gateway"
TRITON_JOB = "triton"
QUERY_TIMEOUT_S = 5.0
READY_PROBE_TIMEOUT_S = 1.0
READY_POLL_S = 0.2
TARGETS_POLL_S = 0.25
RETENTION = "1d"


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
    """The real ``prometheus`` binary on a loopback port, its data in ``work_dir``."""

    def __init__(self, binary: Path, config: dict[str, Any], work_dir: Path, log_path: Path) -> None:
        self.binary = binary
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
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
                    f"--storage.tsdb.retention.time={RETENTION}",
                    f"--web.listen-address={LOOPBACK}:{self.port}",
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
            time.sleep(READY_POLL_S)
        self.stop()
        raise PrometheusError(f"prometheus not ready after {ready_timeout_s:.0f} s; see {self.log_path}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=READY_PROBE_TIMEOUT_S) as reply:
                return reply.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of ``expr`` now: [{"metric": {...}, "value": float}, ...]."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=QUERY_TIMEOUT_S) as reply:
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
            time.sleep(TARGETS_POLL_S)
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
