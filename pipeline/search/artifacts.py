"""Writes the three search model directories; never leaves a half-written build that looks finished.

Layout (``model.py`` and its helper module are tracked source, not written here)::

    <repository>/query_encoder/config.pbtxt                      rendered, names its build_id
    <repository>/query_encoder/1/artifacts/encoder_int8.onnx     ONNX Runtime int8 graph (CPU instances)
    <repository>/query_encoder/1/artifacts/tokenizer.json
    <repository>/query_encoder/1/artifacts/hf_model/             fp32 weights + config (GPU instances)
    <repository>/product_index/config.pbtxt
    <repository>/product_index/1/artifacts/index.npz             embeddings, item_ids, titles
    <repository>/product_search/config.pbtxt                     the ensemble
    <repository>/product_search/1/artifacts/eval.json            evaluation and measurements
    <repository>/product_search/1/artifacts/judged_queries.json  the judged set (query, relevant codes, source)
    <repository>/product_search/1/artifacts/manifest.json        fingerprint + the three build_ids

Atomicity: each model's artifacts are written into a hidden staging directory beside
``artifacts/`` (Triton ignores non-numeric entries of a model directory). Committing removes
the model's ``config.pbtxt`` (without it Triton does not load the model and the build is not
complete), renames the staging directory over ``artifacts/`` and writes the config (temp file +
rename) last; the ensemble, holding the manifest, is committed last. An interrupted build
leaves a missing config, a config whose build_id differs from the manifest, or an old
manifest: all count as "not built". One writer at a time.

build_ids (12 hex digits of a sha256): ``query_encoder`` over its artifact files' bytes plus
the rendered ``max_length``; ``product_index`` over the index arrays' names, dtypes, shapes and
bytes (not the .npz bytes: numpy's zip writer stamps the time); ``product_search`` over the
two others.
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
from pathlib import Path

import numpy as np

from pipeline.export import arrays_build_id
from pipeline.search.config import SearchPipelineSettings
from pipeline.search.serving_sources import ENCODER_SOURCES, INDEX_SOURCES
from pipeline.search.triton_config import declares_build_id

log = logging.getLogger(__name__)

VERSION = "1"
ARTIFACTS_DIR = "artifacts"
CONFIG_FILE = "config.pbtxt"
ONNX_FILE = "encoder_int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
HF_MODEL_DIR = "hf_model"
HF_MODEL_FILES = ("config.json", "model.safetensors")
INDEX_FILE = "index.npz"
EVAL_FILE = "eval.json"
JUDGED_FILE = "judged_queries.json"
MANIFEST_FILE = "manifest.json"
BUILD_ID_HEX_DIGITS = 12
STAGING_PREFIX = ".artifacts-"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelDir:
    repository: Path
    name: str

    @property
    def model_dir(self) -> Path:
        return self.repository / self.name

    @property
    def version_dir(self) -> Path:
        return self.model_dir / VERSION

    @property
    def artifacts_dir(self) -> Path:
        return self.version_dir / ARTIFACTS_DIR

    @property
    def config_file(self) -> Path:
        return self.model_dir / CONFIG_FILE


@dataclass(frozen=True)
class SearchPaths:
    encoder: ModelDir
    index: ModelDir
    ensemble: ModelDir

    @classmethod
    def in_repository(cls, repository: Path, config: SearchPipelineSettings) -> SearchPaths:
        return cls(
            encoder=ModelDir(repository, config.encoder_model_name),
            index=ModelDir(repository, config.index_model_name),
            ensemble=ModelDir(repository, config.ensemble_model_name),
        )

    @property
    def models(self) -> tuple[ModelDir, ModelDir, ModelDir]:
        return (self.encoder, self.index, self.ensemble)

    @property
    def eval_file(self) -> Path:
        return self.ensemble.artifacts_dir / EVAL_FILE

    @property
    def manifest_file(self) -> Path:
        return self.ensemble.artifacts_dir / MANIFEST_FILE

    @property
    def index_file(self) -> Path:
        return self.index.artifacts_dir / INDEX_FILE

    @property
    def onnx_file(self) -> Path:
        return self.encoder.artifacts_dir / ONNX_FILE


def files_build_id(files: list[Path], root: Path, extra: str = "") -> str:
    digest = hashlib.sha256(extra.encode())
    for path in sorted(files):
        digest.update(f"\n{path.relative_to(root).as_posix()}\n".encode())
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()[:BUILD_ID_HEX_DIGITS]


def combined_build_id(*build_ids: str) -> str:
    return hashlib.sha256(":".join(build_ids).encode()).hexdigest()[:BUILD_ID_HEX_DIGITS]


def index_build_id(arrays: dict[str, np.ndarray]) -> str:
    return arrays_build_id(arrays)


def read_manifest(paths: SearchPaths) -> dict | None:
    try:
        return json.loads(paths.manifest_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def is_complete(paths: SearchPaths, fingerprint: str | None = None) -> bool:
    """True when the repository holds a finished search build (of ``fingerprint``, if given)."""
    manifest = read_manifest(paths)
    if manifest is None or (fingerprint is not None and manifest.get("input_fingerprint") != fingerprint):
        return False
    build_ids = manifest.get("build_ids", {})
    for model in paths.models:
        if not model.config_file.is_file() or not model.artifacts_dir.is_dir():
            return False
        if not declares_build_id(model.config_file.read_text(), build_ids.get(model.name, "")):
            return False
    return paths.onnx_file.is_file() and paths.index_file.is_file() and paths.eval_file.is_file()


def sync_serving_sources(paths: SearchPaths) -> None:
    """Copies the tracked model sources into a repository other than the tracked one (e.g. a test's)."""
    for model, (source_dir, names) in ((paths.encoder, ENCODER_SOURCES), (paths.index, INDEX_SOURCES)):
        if model.version_dir.resolve() == source_dir.resolve():
            continue
        model.version_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            source, target = source_dir / name, model.version_dir / name
            if not target.exists() or target.read_bytes() != source.read_bytes():
                write_atomically(target, source.read_bytes())
    paths.ensemble.version_dir.mkdir(parents=True, exist_ok=True)


class StagedBuild:
    """Staging directories for the three models; ``commit`` swaps them in, leaving the context discards them."""

    def __init__(self, paths: SearchPaths) -> None:
        self.paths = paths
        self.staging: dict[str, Path] = {}

    def __enter__(self) -> StagedBuild:
        sync_serving_sources(self.paths)
        for model in self.paths.models:
            for leftover in model.version_dir.glob(f"{STAGING_PREFIX}*"):
                log.warning("removing %s left by an interrupted build", leftover)
                shutil.rmtree(leftover, ignore_errors=True)
            staged = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=model.version_dir))
            staged.chmod(0o755)
            self.staging[model.name] = staged
        return self

    def directory(self, model: ModelDir) -> Path:
        return self.staging[model.name]

    def commit(self, configs: dict[str, str]) -> None:
        """Swaps every staged directory in and writes its config; the ensemble (manifest) goes last."""
        for model in self.paths.models:
            model.config_file.unlink(missing_ok=True)
            retired = None
            if model.artifacts_dir.exists():
                retired = model.version_dir / f"{STAGING_PREFIX}retired-{uuid.uuid4().hex[:8]}"
                model.artifacts_dir.rename(retired)
            self.staging.pop(model.name).rename(model.artifacts_dir)
            if retired is not None:
                shutil.rmtree(retired, ignore_errors=True)
            write_atomically(model.config_file, configs[model.name].encode())

    def __exit__(self, *exc_info) -> None:
        for staged in self.staging.values():
            shutil.rmtree(staged, ignore_errors=True)
        self.staging.clear()


def write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2) + "\n")


def write_atomically(target: Path, data: bytes) -> None:
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
