"""Imports the scoring kernels that ``model_repo/recommender/1/model.py`` serves with.

They live beside ``model.py`` so that the model repository stays self-contained (it also runs in
NVIDIA's Triton container, where this package is not installed); the pipeline loads the very
same file to measure speed, instead of keeping a copy that could drift.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType

MODEL_SOURCE_DIR = Path(__file__).resolve().parent.parent / "model_repo" / "recommender" / "1"
SCORING_MODULE = "recommender_scoring"
SERVING_SOURCES = ("model.py", f"{SCORING_MODULE}.py")


@lru_cache(maxsize=1)
def scoring_module() -> ModuleType:
    path = MODEL_SOURCE_DIR / f"{SCORING_MODULE}.py"
    spec = importlib.util.spec_from_file_location(SCORING_MODULE, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[SCORING_MODULE] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module
