"""Input fingerprints: what a build depends on, so that an unchanged input reuses the last build.

Both models hash the same way: the data file's bytes, then each source file (name and bytes),
then lines of their own (e.g. encoder weights, library versions), then the config as JSON.
Which sources and which extra lines is each model's choice (``<model>/fingerprint.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel

PIPELINE_DIR = Path(__file__).resolve().parent
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def shared_sources(*modules: str) -> list[Path]:
    """The files of the shared ``pipeline.<module>`` modules a model's build imports."""
    return [PIPELINE_DIR / f"{module}.py" for module in modules]


def input_fingerprint(
    data_file: Path, sources: Iterable[Path], config: BaseModel, extra_lines: Iterable[str] = ()
) -> str:
    digest = hashlib.sha256()
    digest.update(f"data:{file_sha256(data_file)}\n".encode())
    for source in sources:
        digest.update(f"source:{source.name}:{file_sha256(source)}\n".encode())
    for line in extra_lines:
        digest.update(f"{line}\n".encode())
    digest.update(f"config:{config.model_dump_json()}\n".encode())
    return digest.hexdigest()
