"""Semantic product search: the build behind the Triton models ``query_encoder``, ``product_index``
and the ensemble ``product_search``.

Usage::

    python -m pipeline.search build [--force]       # or, from Python:
    from pipeline.search import build_search
    eval_file = build_search()                     # model_repo/product_search/1/artifacts/eval.json

The build is skipped when its input fingerprint (data file, sources, encoder, libraries,
config) matches the last one; ``force=True`` rebuilds.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["build_search"]


def build_search(force: bool = False) -> Path:
    """Builds (or reuses) the search models; returns the path of eval.json."""
    from pipeline.search.build import build_search as run

    return run(force=force)
