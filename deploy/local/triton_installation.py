"""Where the nvidia-pytriton wheel keeps tritonserver 2.51, and what the binary needs to run
on these machines: its Python-backend stub in place, the interpreter's libpython and the venv's
``bin/`` first on the paths (items 1 to 3 of deploy/local/triton.py's list).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Bytes compared at a time when checking whether the installed stub is current.
COMPARE_CHUNK_BYTES = 1 << 20


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


def _interpreter_bin_dir() -> Path:
    """The venv's bin/ (where ``python3`` of this interpreter's prefix lives)."""
    prefix_bin = Path(sys.prefix) / "bin"
    return prefix_bin if prefix_bin.is_dir() else Path(sys.executable).parent


def _same_bytes(a: Path, b: Path) -> bool:
    with a.open("rb") as left, b.open("rb") as right:
        while True:
            chunk = left.read(COMPARE_CHUNK_BYTES)
            if chunk != right.read(COMPARE_CHUNK_BYTES):
                return False
            if not chunk:
                return True
