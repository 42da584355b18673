"""Runs the gateway (``python -m gateway serve``) as a child process configured by environment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def settings_env(**values: object) -> dict[str, str]:
    """Settings field values as the TOLLGATE_* variables the gateway reads."""
    return {f"TOLLGATE_{name.upper()}": str(value) for name, value in values.items()}


class GatewayProcess:
    """The real gateway in its own process; ``start`` returns once its health check says SERVING."""

    def __init__(
        self, port: int, env: dict[str, str], log_path: Path, credentials: grpc.ChannelCredentials | None = None
    ) -> None:
        """``credentials``: TLS credentials of the readiness check, for a TLS listener."""
        self.port = port
        self._credentials = credentials
        self.address = f"127.0.0.1:{port}"
        self._env = {**os.environ, **env, **settings_env(host="127.0.0.1", port=port)}
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(
        self, ready_timeout_s: float = 60.0, require_serving: bool = True, service: str = ""
    ) -> GatewayProcess:
        """``service``: the health-checked service to wait for ("" = the whole server)."""
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = self._log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"], env=self._env, stdout=log_file, stderr=subprocess.STDOUT
        )
        wanted = health_pb2.HealthCheckResponse.SERVING if require_serving else None
        self._wait_for_health(wanted, service, ready_timeout_s)
        return self

    def _wait_for_health(self, wanted: int | None, service: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        channel = (
            grpc.secure_channel(self.address, self._credentials) if self._credentials else grpc.insecure_channel(self.address)
        )
        with channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    raise RuntimeError(f"gateway exited with {self._process.returncode}; see {self._log_path}")
                try:
                    status = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1).status
                    if wanted is None or status == wanted:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.2)
        raise RuntimeError(f"gateway on {self.address} not healthy after {timeout_s}s; see {self._log_path}")

    @property
    def pid(self) -> int | None:
        """The gateway's process id while it runs."""
        return self._process.pid if self._process is not None else None

    def kill(self) -> int:
        """SIGKILL, as a crash would: nothing is drained or flushed. Returns the exit code."""
        if self._process is None:
            return 0
        self._process.kill()
        code = self._process.wait()
        self._process = None
        return code

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM (the gateway drains and flushes its ledger), SIGKILL if it hangs; returns the exit code."""
        if self._process is None:
            return 0
        self._process.send_signal(signal.SIGTERM)
        try:
            code = self._process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            code = self._process.wait()
        self._process = None
        return code

    def __enter__(self) -> GatewayProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
