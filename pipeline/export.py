"""Writes the Triton model directory: ``config.pbtxt`` and ``1/artifacts/``; never a half-written one.

Layout (``1/model.py`` and ``1/recommender_scoring.py`` are tracked source, not written here)::

    <repository>/recommender/config.pbtxt          rendered, names the build_id
    <repository>/recommender/1/artifacts/recommender.npz   everything model.py loads
    <repository>/recommender/1/artifacts/manifest.json     build_id, input fingerprint, files
    <repository>/recommender/1/artifacts/eval.json         evaluation and measurement figures

Atomicity: the artifacts are written to a hidden staging directory beside ``artifacts/``; then
``config.pbtxt`` is removed (without it Triton will not load the model and ``is_complete`` is
false), the staging directory is renamed over ``artifacts/`` and ``config.pbtxt`` is written
(temp file + rename) last. An interrupted build therefore leaves no config or a config whose
build_id does not match the manifest, both of which count as "not built". One writer at a time.

The build_id is the first 12 hex digits of a sha256 over the names, dtypes, shapes and bytes of
the arrays in ``recommender.npz`` (not the file bytes: numpy's zip writer stamps the time).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from pipeline.config import PipelineSettings
from pipeline.encoding import UserItemMatrix
from pipeline.fingerprint import file_sha256
from pipeline.quantize import QuantizedTable
from pipeline.serving_kernels import MODEL_SOURCE_DIR, SERVING_SOURCES
from pipeline.triton_config import declares_build_id, render_config

log = logging.getLogger(__name__)

VERSION = "1"
ARTIFACTS_DIR = "artifacts"
WEIGHTS_FILE = "recommender.npz"
MANIFEST_FILE = "manifest.json"
EVAL_FILE = "eval.json"
CONFIG_FILE = "config.pbtxt"
BUILD_ID_HEX_DIGITS = 12
_STAGING_PREFIX = ".artifacts-"


@dataclass(frozen=True)
class ModelPaths:
    repository: Path
    model_name: str

    @property
    def model_dir(self) -> Path:
        return self.repository / self.model_name

    @property
    def version_dir(self) -> Path:
        return self.model_dir / VERSION

    @property
    def artifacts_dir(self) -> Path:
        return self.version_dir / ARTIFACTS_DIR

    @property
    def config_file(self) -> Path:
        return self.model_dir / CONFIG_FILE

    @property
    def manifest_file(self) -> Path:
        return self.artifacts_dir / MANIFEST_FILE

    @property
    def weights_file(self) -> Path:
        return self.artifacts_dir / WEIGHTS_FILE

    @property
    def eval_file(self) -> Path:
        return self.artifacts_dir / EVAL_FILE


@dataclass(frozen=True)
class ServingArtifacts:
    """What the served model needs; ``seen`` holds ALL cleaned purchases of every user."""

    item_ids: list[str]
    item_titles: list[str]
    item_vectors: np.ndarray  # float32 [n_items, dim]
    item_bias: np.ndarray  # float32 [n_items]
    quantized: QuantizedTable
    user_ids: list[str]
    user_vectors: np.ndarray  # float32 [n_users, dim], row-aligned with user_ids and seen
    popularity_scores: np.ndarray  # float32 [n_items], share of customers who bought the item
    seen: UserItemMatrix

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "item_ids": np.asarray(self.item_ids, dtype=str),
            "item_titles": np.asarray(self.item_titles, dtype=str),
            "item_vectors_fp32": self.item_vectors.astype(np.float32),
            "item_vectors_int8": self.quantized.values,
            "item_scales": self.quantized.scales,
            "item_bias": self.item_bias.astype(np.float32),
            "user_ids": np.asarray(self.user_ids, dtype=str),
            "user_vectors": self.user_vectors.astype(np.float32),
            "popularity_scores": self.popularity_scores.astype(np.float32),
            "popularity_ranking": np.argsort(-self.popularity_scores, kind="stable").astype(np.int32),
            "seen_indptr": self.seen.indptr.astype(np.int64),
            "seen_indices": self.seen.indices.astype(np.int32),
        }


def arrays_build_id(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape}\n".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:BUILD_ID_HEX_DIGITS]


def read_manifest(paths: ModelPaths) -> dict | None:
    try:
        return json.loads(paths.manifest_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def is_complete(paths: ModelPaths, fingerprint: str | None = None) -> bool:
    """True when the repository holds a finished build (of ``fingerprint``, if given)."""
    manifest = read_manifest(paths)
    if manifest is None or not paths.weights_file.is_file() or not paths.config_file.is_file():
        return False
    if fingerprint is not None and manifest.get("input_fingerprint") != fingerprint:
        return False
    return declares_build_id(paths.config_file.read_text(), manifest.get("build_id", ""))


def sync_serving_sources(paths: ModelPaths) -> None:
    """Copies the tracked model.py and its kernels into a repository other than the tracked one."""
    if paths.version_dir.resolve() == MODEL_SOURCE_DIR:
        return
    paths.version_dir.mkdir(parents=True, exist_ok=True)
    for name in SERVING_SOURCES:
        source, target = MODEL_SOURCE_DIR / name, paths.version_dir / name
        if not target.exists() or target.read_bytes() != source.read_bytes():
            _write_atomically(target, source.read_bytes())


def write_model(
    paths: ModelPaths,
    config: PipelineSettings,
    artifacts: ServingArtifacts,
    evaluation: dict,
    fingerprint: str,
) -> dict:
    """Writes a complete model directory; returns the manifest."""
    paths.version_dir.mkdir(parents=True, exist_ok=True)
    sync_serving_sources(paths)
    _remove_leftover_staging(paths)
    arrays = artifacts.arrays()
    build_id = arrays_build_id(arrays)
    staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=paths.version_dir))
    staging.chmod(0o755)
    try:
        np.savez(staging / WEIGHTS_FILE, **arrays)
        (staging / EVAL_FILE).write_text(json.dumps({"build_id": build_id, **evaluation}, indent=2) + "\n")
        manifest = {
            "build_id": build_id,
            "input_fingerprint": fingerprint,
            "model_name": config.model_name,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "n_items": len(artifacts.item_ids),
            "n_users": len(artifacts.user_ids),
            "dim": int(artifacts.item_vectors.shape[1]),
            "files": {
                name: {"bytes": (staging / name).stat().st_size, "sha256": file_sha256(staging / name)}
                for name in (WEIGHTS_FILE, EVAL_FILE)
            },
        }
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        _swap_in(paths, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _write_atomically(paths.config_file, render_config(config, build_id, ARTIFACTS_DIR).encode())
    log.info("wrote %s (build_id %s)", paths.model_dir, build_id)
    return manifest


def _swap_in(paths: ModelPaths, staging: Path) -> None:
    paths.config_file.unlink(missing_ok=True)
    retired = None
    if paths.artifacts_dir.exists():
        retired = paths.version_dir / f"{_STAGING_PREFIX}retired-{uuid.uuid4().hex[:8]}"
        paths.artifacts_dir.rename(retired)
    staging.rename(paths.artifacts_dir)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def _remove_leftover_staging(paths: ModelPaths) -> None:
    for leftover in paths.version_dir.glob(f"{_STAGING_PREFIX}*"):
        log.warning("removing %s left by an interrupted build", leftover)
        shutil.rmtree(leftover, ignore_errors=True)


def _write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temp, 0o644)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
