"""The recommender build's input fingerprint: an unchanged input reuses the last build.

It covers the bytes of the data file; every ``pipeline/recommender/*.py`` source, the shared
modules they import and the scoring kernels the build evaluates and measures; the versions of
the libraries that fit candidates (``implicit``, ``scipy``); and the config.
``model.py`` is not part of it: editing the serving code needs no retraining (the build
re-syncs it into a non-default repository on every run).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from pipeline.fingerprint import input_fingerprint, shared_sources
from pipeline.recommender.config import RecommenderPipelineSettings
from pipeline.recommender.serving_kernels import MODEL_SOURCE_DIR, SCORING_MODULE

RECOMMENDER_DIR = Path(__file__).resolve().parent
# The shared pipeline modules this package imports (tests/unit/test_pipeline_structure.py checks the list).
SHARED_MODULES = (
    "data", "fingerprint", "metrics", "model_dir", "model_sources", "model_versions", "seeding", "settings",
    "version_store",
)
FITTING_LIBRARIES = ("implicit", "scipy", "numpy", "torch")


def source_files() -> list[Path]:
    return (
        sorted(RECOMMENDER_DIR.glob("*.py"))
        + shared_sources(*SHARED_MODULES)
        + [MODEL_SOURCE_DIR / f"{SCORING_MODULE}.py"]
    )


def recommender_fingerprint(
    data_file: Path, config: RecommenderPipelineSettings, sources: list[Path] | None = None
) -> str:
    libraries = [f"library:{name}=={importlib.metadata.version(name)}" for name in FITTING_LIBRARIES]
    return input_fingerprint(data_file, sources if sources is not None else source_files(), config, libraries)
