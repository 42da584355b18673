"""A gateway replica of the local cluster: a gateway process with a name and a Prometheus
endpoint."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from deploy.local.gateway import GatewayProcess
from deploy.local.ports import LOOPBACK

METRICS_TIMEOUT_S = 5.0


class ReplicaProcess(GatewayProcess):
    """A gateway replica with a name and a Prometheus endpoint; ``kill()`` (SIGKILL: no drain,
    no final ledger flush) shows what a crash costs."""

    def __init__(self, name: str, port: int, metrics_port: int, env: dict[str, str], log_path: Path) -> None:
        super().__init__(port, env, log_path)
        self.name = name
        self.metrics_port = metrics_port
        self.metrics_address = f"{LOOPBACK}:{metrics_port}"
        self.log_path = log_path

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://{self.metrics_address}/metrics", timeout=METRICS_TIMEOUT_S) as reply:
            return reply.read().decode()

    def counter_total(self, name: str) -> float:
        """Sum of counter ``name`` (e.g. tollgate_cost_usd_total) over its label sets, read from
        this replica's own /metrics."""
        total = 0.0
        for line in self.metrics_text().splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                total += float(line.rsplit(" ", 1)[1])
        return total
