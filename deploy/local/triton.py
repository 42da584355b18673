"""Runs the real Triton Inference Server (2.51, shipped in the nvidia-pytriton wheel) as a local process.

The standalone binary needs four things on these machines (see shared/notes/triton-on-this-machine.md),
all applied here:

1. the Python-backend stub of this interpreter's version copied into
   ``pytriton/tritonserver/backends/python/`` and ``--backend-directory`` pointing at ``backends``;
2. the interpreter's own libpython first on ``LD_LIBRARY_PATH`` (Debian's older libpython3.11
   breaks multiprocessing inside the stub), then ``nvidia_pytriton.libs``;
3. the venv's ``bin/`` first on ``PATH`` (the stub finds its Python prefix, hence torch, there);
4. explicit ports (a taken port only fails after the models have loaded).

1 to 3 are deploy/local/triton_installation.py's job. The server runs in its own process
group, so ``stop()``/``kill()`` also end the stub processes.

Manual use: ``python -m deploy.local.triton_cli --help`` (deploy/local/triton_cli.py).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from deploy.local.ports import LOOPBACK, free_port
from deploy.local.settings import get_local_settings
from deploy.local.triton_installation import TritonInstallation, TritonStartError

__all__ = ["TritonServer", "TritonStartError"]

log = logging.getLogger(__name__)

EXIT_TIMEOUT_S = 5
READY_POLL_S = 0.1
HTTP_PROBE_TIMEOUT_S = 1.0
LOG_TAIL_BYTES = 4000


class TritonServer:
    """Runs the standalone tritonserver 2.51 shipped in nvidia-pytriton against a model repository."""

    def __init__(
        self,
        model_repository: Path,
        *,
        grpc_port: int | None = None,
        http_port: int | None = None,
        metrics_port: int | None = None,
        log_path: Path | None = None,
        extra_args: Sequence[str] = (),
        models: Sequence[str] | None = None,
    ) -> None:
        """``models``: load only these (explicit model control), e.g. while other models of the
        repository are unbuilt; None loads every model and waits for all of them."""
        self.model_repository = Path(model_repository).resolve()
        self.grpc_port = grpc_port or free_port()
        self.http_port = http_port or free_port()
        self.metrics_port = metrics_port or free_port()
        self.log_path = log_path or get_local_settings().run_dir / "logs" / f"triton-{self.grpc_port}.log"
        self.extra_args = tuple(extra_args)
        self.models = tuple(models) if models is not None else None
        self.installation = TritonInstallation.locate()
        self._process: subprocess.Popen | None = None

    # --- addresses ---------------------------------------------------------------------------

    @property
    def grpc_url(self) -> str:
        return f"{LOOPBACK}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"{LOOPBACK}:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"{LOOPBACK}:{self.metrics_port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def returncode(self) -> int | None:
        """Exit status once the server has been stopped or killed (None while it is not reaped)."""
        return self._process.returncode if self._process else None

    def is_running(self) -> bool:
        return self._process is not None and not self._has_exited()

    # --- lifecycle -----------------------------------------------------------------------------

    def command(self) -> list[str]:
        return [
            str(self.installation.server_binary),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={self.installation.backends_dir}",
            f"--grpc-address={LOOPBACK}",
            f"--grpc-port={self.grpc_port}",
            f"--http-address={LOOPBACK}",
            f"--http-port={self.http_port}",
            f"--metrics-address={LOOPBACK}",
            f"--metrics-port={self.metrics_port}",
            "--disable-auto-complete-config",
            "--allow-gpu-metrics=false",
            f"--exit-timeout-secs={EXIT_TIMEOUT_S}",
            # Ready means serving, whatever a model load in progress (a rollout loads versions
            # on a live server; strict readiness would take the whole server out meanwhile).
            # Model readiness is checked per model and version (start() and the gateway).
            "--strict-readiness=false",
            *self._model_control_args(),
            *self.extra_args,
        ]

    def _model_control_args(self) -> list[str]:
        if self.models is None:
            return []
        return ["--model-control-mode=explicit", *(f"--load-model={name}" for name in self.models)]

    def start(self, ready_timeout_s: float = 120.0) -> "TritonServer":
        """Starts the server; returns once it and its models (``models``, or all) are ready."""
        if self.is_running():
            return self
        self.installation.ensure_python_stub()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:  # appends: a restart keeps the earlier log
            self._process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=self.installation.environment(),
                start_new_session=True,  # own process group: stop() reaches the stubs too
            )
        log.info(
            "tritonserver pid %d, grpc %s, http %s, log %s", self._process.pid, self.grpc_url, self.http_url, self.log_path
        )
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if not self.is_running():
                self.kill()  # reaps it, and ends any stub it left
                raise TritonStartError(
                    f"tritonserver exited with rc={self.returncode} before it was ready\n{self.log_tail()}"
                )
            if self._all_ready():
                log.info("tritonserver ready (%s)", self.grpc_url)
                return self
            time.sleep(READY_POLL_S)
        self.stop()
        raise TritonStartError(f"tritonserver not ready after {ready_timeout_s:.0f} s\n{self.log_tail()}")

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM to the process group, SIGKILL after ``timeout_s``."""
        if self._process is None:
            return
        if not self._has_exited():
            self._signal_group(signal.SIGTERM)
            if not self._wait_for_exit(timeout_s):
                log.warning("tritonserver ignored SIGTERM for %.0f s; killing it", timeout_s)
        self.kill()

    def kill(self) -> None:
        """SIGKILL to the whole process group now (server and stubs), then reap the server."""
        if self._process is None:
            return
        if self._process.returncode is None:
            # Not reaped yet, so the group id is still ours even if the server has exited.
            self._signal_group(signal.SIGKILL)
        self._process.wait()

    def log_tail(self, max_bytes: int = LOG_TAIL_BYTES) -> str:
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(max(0, self.log_path.stat().st_size - max_bytes))
                return handle.read().decode(errors="replace")
        except FileNotFoundError:
            return "(no log)"

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- internals --------------------------------------------------------------------------------

    def _has_exited(self) -> bool:
        """Whether the server has exited, WITHOUT reaping it (its pid keeps naming our process group)."""
        assert self._process is not None
        if self._process.returncode is not None:
            return True
        try:
            return os.waitid(os.P_PID, self._process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def _wait_for_exit(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self._has_exited():
            if time.monotonic() >= deadline:
                return False
            time.sleep(READY_POLL_S)
        return True

    def _signal_group(self, signum: int) -> None:
        assert self._process is not None
        try:
            os.killpg(self._process.pid, signum)  # the group id is the server's pid (new session)
        except ProcessLookupError:
            pass

    def _all_ready(self) -> bool:
        """Server ready, and every requested model (or every model of the repository) READY."""
        try:
            if not self._http_ok("/v2/health/ready"):
                return False
            if self.models is not None:
                return all(self._http_ok(f"/v2/models/{name}/ready") for name in self.models)
            request = urllib.request.Request(f"http://{self.http_url}/v2/repository/index", data=b"{}", method="POST")
            with urllib.request.urlopen(request, timeout=HTTP_PROBE_TIMEOUT_S) as reply:
                models = json.loads(reply.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            return False
        return bool(models) and all(model.get("state") == "READY" for model in models)

    def _http_ok(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}{path}", timeout=HTTP_PROBE_TIMEOUT_S) as reply:
                return reply.status == 200
        except urllib.error.HTTPError:
            return False

