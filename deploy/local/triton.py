"""Runs the real Triton Inference Server (2.51, shipped in the nvidia-pytriton wheel) as a local process.

The standalone binary needs four things on these machines (see shared/notes/triton-on-this-machine.md),
all applied here:

1. the Python-backend stub of this interpreter's version copied into
   ``pytriton/tritonserver/backends/python/`` and ``--backend-directory`` pointing at ``backends``;
2. the interpreter's own libpython first on ``LD_LIBRARY_PATH`` (Debian's older libpython3.11
   breaks multiprocessing inside the stub), then ``nvidia_pytriton.libs``;
3. the venv's ``bin/`` first on ``PATH`` (the stub finds its Python prefix, hence torch, there);
4. explicit ports (a taken port only fails after the models have loaded).

The server runs in its own process group, so ``stop()``/``kill()`` also end the stub processes.

Manual use: ``python -m deploy.local.triton --help``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import typer

from deploy.local.ports import free_port
from gateway.settings import get_settings

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
EXIT_TIMEOUT_S = 5
READY_POLL_S = 0.1
HTTP_PROBE_TIMEOUT_S = 1.0
LOG_TAIL_BYTES = 4000


class TritonStartError(RuntimeError):
    """The server exited or did not get itself and every model ready in time."""


@dataclass(frozen=True)
class TritonInstallation:
    """Where the nvidia-pytriton wheel keeps the server, its backends and libraries."""

    package_dir: Path  # <site-packages>/pytriton

    @classmethod
    def locate(cls) -> "TritonInstallation":
        spec = importlib.util.find_spec("pytriton")
        if spec is None or not spec.submodule_search_locations:
            raise TritonStartError("nvidia-pytriton is not installed in this interpreter")
        return cls(Path(next(iter(spec.submodule_search_locations))))

    @property
    def server_binary(self) -> Path:
        return self.package_dir / "tritonserver" / "bin" / "tritonserver"

    @property
    def backends_dir(self) -> Path:
        return self.package_dir / "tritonserver" / "backends"

    @property
    def libs_dir(self) -> Path:
        return self.package_dir.parent / "nvidia_pytriton.libs"

    @property
    def stub_source(self) -> Path:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        return self.package_dir / "tritonserver" / "python_backend_stubs" / version / "triton_python_backend_stub"

    @property
    def stub_target(self) -> Path:
        return self.backends_dir / "python" / "triton_python_backend_stub"

    def ensure_python_stub(self) -> Path:
        """Copies this Python's stub next to libtriton_python.so (idempotent; atomic rename)."""
        source, target = self.stub_source, self.stub_target
        if not source.is_file():
            raise TritonStartError(f"no Python-backend stub for Python {sys.version_info[:2]} at {source}")
        if target.is_file() and target.stat().st_size == source.stat().st_size and _same_bytes(source, target):
            return target
        handle, temp = tempfile.mkstemp(prefix=".stub-", dir=target.parent)
        os.close(handle)
        try:
            shutil.copy2(source, temp)
            os.chmod(temp, 0o755)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        log.info("installed Python-backend stub %s", target)
        return target

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        libdir = sysconfig.get_config_var("LIBDIR")
        library_path = [p for p in (libdir, str(self.libs_dir), env.get("LD_LIBRARY_PATH")) if p]
        env["LD_LIBRARY_PATH"] = os.pathsep.join(library_path)
        env["PATH"] = os.pathsep.join(p for p in (str(_interpreter_bin_dir()), env.get("PATH")) if p)
        return env


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
        self.log_path = log_path or get_settings().run_dir / "logs" / f"triton-{self.grpc_port}.log"
        self.extra_args = tuple(extra_args)
        self.models = tuple(models) if models is not None else None
        self.installation = TritonInstallation.locate()
        self._process: subprocess.Popen | None = None

    # --- addresses ---------------------------------------------------------------------------

    @property
    def grpc_url(self) -> str:
        return f"{HOST}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"{HOST}:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"{HOST}:{self.metrics_port}"

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
            f"--grpc-address={HOST}",
            f"--grpc-port={self.grpc_port}",
            f"--http-address={HOST}",
            f"--http-port={self.http_port}",
            f"--metrics-address={HOST}",
            f"--metrics-port={self.metrics_port}",
            "--disable-auto-complete-config",
            "--allow-gpu-metrics=false",
            f"--exit-timeout-secs={EXIT_TIMEOUT_S}",
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


def _interpreter_bin_dir() -> Path:
    """The venv's bin/ (where ``python3`` of this interpreter's prefix lives)."""
    prefix_bin = Path(sys.prefix) / "bin"
    return prefix_bin if prefix_bin.is_dir() else Path(sys.executable).parent


def _same_bytes(a: Path, b: Path) -> bool:
    with a.open("rb") as left, b.open("rb") as right:
        while True:
            chunk = left.read(1 << 20)
            if chunk != right.read(1 << 20):
                return False
            if not chunk:
                return True


app = typer.Typer(add_completion=False, help="Run tritonserver in the foreground until Ctrl-C (or SIGTERM).")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@app.command()
def run(
    model_repository: Path = typer.Option(None, help="Triton model repository; default: settings.model_repository."),
    grpc_port: int = typer.Option(None, help="gRPC port (0 = any free port); default: port of settings.triton_url."),
    http_port: int = typer.Option(8000, help="HTTP port (0 = any free port)."),
    metrics_port: int = typer.Option(8002, help="Metrics port (0 = any free port)."),
    log_path: Path = typer.Option(None, help="Server log file; default: run_dir/logs/triton-GRPC_PORT.log."),
    model: list[str] = typer.Option(None, help="Load only this model (repeatable); default: every model."),
    ready_timeout_s: float = typer.Option(120.0, help="How long to wait for the server and its models."),
) -> None:
    """Run tritonserver in the foreground until Ctrl-C (or SIGTERM)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    if grpc_port is None:
        grpc_port = int(settings.triton_url.rsplit(":", 1)[1])
    server = TritonServer(
        model_repository or settings.model_repository,
        grpc_port=grpc_port or None,
        http_port=http_port or None,
        metrics_port=metrics_port or None,
        log_path=log_path,
        models=model or None,
    )
    signal.signal(signal.SIGTERM, _interrupt)
    with server.start(ready_timeout_s):
        log.info(
            "grpc %s  http %s  metrics %s  log %s", server.grpc_url, server.http_url, server.metrics_url, server.log_path
        )
        try:
            while server.is_running():
                time.sleep(0.5)
            server.kill()
            log.error("tritonserver exited on its own (rc %s)\n%s", server.returncode, server.log_tail())
            raise typer.Exit(1)
        except KeyboardInterrupt:
            log.info("stopping tritonserver")


if __name__ == "__main__":
    app()
