"""The tracked model sources the search build shares with Triton: tokenisation + encoders, and top-k.

``query_encoding.py`` and ``index_search.py`` live beside their ``model.py``; the build loads the
very same files (see :mod:`pipeline.model_sources`) to build the index, evaluate and measure.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from types import ModuleType

from pipeline.model_sources import load_source, tracked_version_dir

ENCODER_SOURCE_DIR = tracked_version_dir("query_encoder")
INDEX_SOURCE_DIR = tracked_version_dir("product_index")
ENCODING_MODULE = "query_encoding"
INDEX_MODULE = "index_search"
# What each model's version directory needs besides its build artifacts (copied into a non-default repository).
ENCODER_SOURCES = (ENCODER_SOURCE_DIR, ("model.py", f"{ENCODING_MODULE}.py"))
INDEX_SOURCES = (INDEX_SOURCE_DIR, ("model.py", f"{INDEX_MODULE}.py"))


@lru_cache(maxsize=1)
def encoding_module() -> ModuleType:
    return load_source(ENCODER_SOURCE_DIR, ENCODING_MODULE)


@lru_cache(maxsize=1)
def index_module() -> ModuleType:
    return load_source(INDEX_SOURCE_DIR, INDEX_MODULE)


def kernel_files() -> list[Path]:
    """The shared sources whose code shapes the build's outputs and figures (part of the fingerprint)."""
    return [ENCODER_SOURCE_DIR / f"{ENCODING_MODULE}.py", INDEX_SOURCE_DIR / f"{INDEX_MODULE}.py"]
