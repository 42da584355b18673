"""Loads a tracked model source from ``model_repo/`` by file path, so the build runs the served code.

The models' helper modules (scoring kernels, tokenisation, top-k) live beside their ``model.py``
so that the model repository stays self-contained: it also runs in NVIDIA's Triton container,
where this package is not installed. The build imports those very files to build, evaluate and
measure, instead of keeping copies that could drift.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from pipeline.model_dir import ModelDir
from pipeline.settings import REPO_ROOT

# The tracked sources; the repository a build writes (PipelineSettings.model_repository) may be elsewhere.
TRACKED_MODEL_REPO = REPO_ROOT / "model_repo"


def tracked_version_dir(model_name: str) -> Path:
    """The tracked ``model_repo/<model>/1``, which holds the model's ``model.py`` and its helpers."""
    return ModelDir(TRACKED_MODEL_REPO, model_name).version_dir


def load_source(directory: Path, module_name: str) -> ModuleType:
    """Imports ``directory/<module_name>.py`` under its bare name, the name ``model.py`` imports it by."""
    path = directory / f"{module_name}.py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module
