"""Where the deployment tools are, after ``install-deploy-tools.sh`` made sure they are there.

``ensure()`` runs the installer once per process (it is idempotent and quick when nothing is
missing) and returns the tools' paths. ``python -m deploy.tools.toolchain`` does the same from
the shell (the Makefile's prerequisite) and prints where each tool is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

INSTALLER = Path(__file__).with_name("install-deploy-tools.sh")


@dataclass(frozen=True)
class Toolchain:
    kubectl: Path
    promtool: Path
    prometheus: Path


def tools_dir() -> Path:
    """Beside the interpreter's environment, so that each venv has its own tools."""
    return Path(os.environ.get("DEPLOY_TOOLS_DIR", Path(sys.prefix) / "deploy-tools"))


@lru_cache(maxsize=1)
def ensure() -> Toolchain:
    env = {**os.environ, "PYTHON": sys.executable, "DEPLOY_TOOLS_DIR": str(tools_dir())}
    subprocess.run(["bash", str(INSTALLER)], check=True, env=env)
    bin_dir = tools_dir() / "bin"
    return Toolchain(kubectl=bin_dir / "kubectl", promtool=bin_dir / "promtool", prometheus=bin_dir / "prometheus")


if __name__ == "__main__":
    for name, path in vars(ensure()).items():
        print(f"{name}: {path.resolve()}")
