"""The input fingerprint: what a build depends on, so that an unchanged input reuses the last build.

It covers the bytes of the data file, every ``pipeline/*.py`` source, the scoring kernels the
pipeline measures, and the pipeline config. ``model.py`` is not part of it: editing the serving
code needs no retraining (the build re-syncs it into a non-default repository on every run).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pipeline.config import PipelineSettings
from pipeline.serving_kernels import MODEL_SOURCE_DIR, SCORING_MODULE

PIPELINE_DIR = Path(__file__).resolve().parent
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def source_files() -> list[Path]:
    return sorted(PIPELINE_DIR.glob("*.py")) + [MODEL_SOURCE_DIR / f"{SCORING_MODULE}.py"]


def input_fingerprint(data_file: Path, config: PipelineSettings, sources: list[Path] | None = None) -> str:
    digest = hashlib.sha256()
    digest.update(f"data:{file_sha256(data_file)}\n".encode())
    for source in sources if sources is not None else source_files():
        digest.update(f"source:{source.name}:{file_sha256(source)}\n".encode())
    digest.update(f"config:{config.model_dump_json()}\n".encode())
    return digest.hexdigest()
