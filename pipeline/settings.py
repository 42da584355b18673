"""Where the model builds read and write: the pipeline's own paths, read from ``TOLLGATE_*``.

The environment variables are the ones the gateway and the local stack read for the same
places (``TOLLGATE_DATA_DIR``, ``TOLLGATE_MODEL_REPOSITORY``), so that a build and the Triton
serving it agree without the offline build importing runtime code. The models' hyper-parameters
are not here: see :mod:`pipeline.recommender.config` and :mod:`pipeline.search.config`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class PipelineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOLLGATE_", env_file=None, extra="ignore")

    data_dir: Path = Field(REPO_ROOT.parent / "shared" / "data", description="Real datasets read at build time.")
    model_repository: Path = Field(REPO_ROOT / "model_repo", description="Triton model repository the builds write.")
