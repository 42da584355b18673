"""Where the local stack (``make demo``, ``make serve``, ``make cluster``, the benchmarks and
the e2e tests) keeps its files, read from ``TOLLGATE_*`` environment variables.

The gateway never needs these: it is told its ledger, span file and pools by the processes
that start it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]


class LocalStackSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOLLGATE_", env_file=None, extra="ignore")

    run_dir: Path = Field(REPO_ROOT / "var", description="Logs, ledgers and reports of local runs.")
    model_repository: Path = Field(REPO_ROOT / "model_repo", description="Triton model repository.")
    # The pipeline reads the same variable to build the models; the demo and the benchmarks
    # read it to plan traffic from the same customers and products.
    data_dir: Path = Field(REPO_ROOT.parent / "shared" / "data", description="Real datasets.")


@lru_cache(maxsize=1)
def get_local_settings() -> LocalStackSettings:
    """The process-wide local-stack settings, read once from the environment."""
    return LocalStackSettings()
