"""The tracked model sources the build shares with Triton, loaded from ``model_repo/`` by file path.

``query_encoding.py`` (tokenisation + encoders) and ``index_search.py`` (top-k) live beside
their ``model.py`` so that the model repository stays self-contained (it also runs in NVIDIA's
Triton container, where this package is not installed); the build imports the very same files
to build the index, evaluate and measure, instead of keeping copies that could drift.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType

MODEL_REPO_SOURCES = Path(__file__).resolve().parents[2] / "model_repo"
ENCODER_SOURCE_DIR = MODEL_REPO_SOURCES / "query_encoder" / "1"
INDEX_SOURCE_DIR = MODEL_REPO_SOURCES / "product_index" / "1"
ENCODING_MODULE = "query_encoding"
INDEX_MODULE = "index_search"
# What each model's version directory needs besides its build artifacts (copied into a non-default repository).
ENCODER_SOURCES = (ENCODER_SOURCE_DIR, ("model.py", f"{ENCODING_MODULE}.py"))
INDEX_SOURCES = (INDEX_SOURCE_DIR, ("model.py", f"{INDEX_MODULE}.py"))


def _load(directory: Path, name: str) -> ModuleType:
    path = directory / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@lru_cache(maxsize=1)
def encoding_module() -> ModuleType:
    return _load(ENCODER_SOURCE_DIR, ENCODING_MODULE)


@lru_cache(maxsize=1)
def index_module() -> ModuleType:
    return _load(INDEX_SOURCE_DIR, INDEX_MODULE)


def kernel_files() -> list[Path]:
    """The shared sources whose code shapes the build's outputs and figures (part of the fingerprint)."""
    return [ENCODER_SOURCE_DIR / f"{ENCODING_MODULE}.py", INDEX_SOURCE_DIR / f"{INDEX_MODULE}.py"]
