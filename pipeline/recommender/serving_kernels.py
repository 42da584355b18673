"""Imports the scoring kernels that ``model_repo/recommender/1/model.py`` serves with.

The build loads that very file (see :mod:`pipeline.model_sources`) to evaluate the int8 table
exactly as a model instance scores with it, and to measure its speed.
"""

from __future__ import annotations

from functools import lru_cache
from types import ModuleType

from pipeline.model_sources import load_source, tracked_version_dir

MODEL_SOURCE_DIR = tracked_version_dir("recommender")
SCORING_MODULE = "recommender_scoring"
SERVING_SOURCES = ("model.py", f"{SCORING_MODULE}.py")


@lru_cache(maxsize=1)
def scoring_module() -> ModuleType:
    return load_source(MODEL_SOURCE_DIR, SCORING_MODULE)
