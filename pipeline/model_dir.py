"""A Triton model directory, and how a build replaces it without ever leaving a half-written one.

Layout of one model (``1/model.py`` and its helpers are tracked sources, not build output)::

    <repository>/<model>/config.pbtxt              rendered by the build; names its build_id
    <repository>/<model>/1/artifacts/              everything the build wrote for the model
    <repository>/<model>/1/artifacts/manifest.json in the build's last model: build_id(s), input fingerprint

A model may keep several numbered versions (the recommender does: see
:mod:`pipeline.model_versions`); ``ModelDir.version`` names the one a ``ModelDir`` stands for,
and a config that lists several declares each one's build_id as ``build_id.<N>``.

A build writes one model (the recommender) or several that go together (search: encoder,
index, ensemble); the last of them holds the manifest.

Atomicity: every model's artifacts are written into a hidden staging directory beside
``artifacts/`` (Triton ignores non-numeric entries of a model directory). Committing a model
removes its ``config.pbtxt`` (without it Triton does not load the model and the build is not
complete), renames the staging directory over ``artifacts/`` and writes the config (temp file +
rename) last; models are committed in order, the one holding the manifest last. A build
interrupted before the commit leaves the previous build in place; one interrupted during it
leaves a missing config, a config whose build_id differs from the manifest, or an old
manifest: all count as "not built". One writer at a time.

A build_id is the first 12 hex digits of a sha256 over what a model serves (see the
``*_build_id`` functions); a config declares it as the parameter ``build_id``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

log = logging.getLogger(__name__)

VERSION = "1"
ARTIFACTS_DIR = "artifacts"
CONFIG_FILE = "config.pbtxt"
MANIFEST_FILE = "manifest.json"
STAGING_PREFIX = ".artifacts-"
BUILD_ID_HEX_DIGITS = 12
BUILD_ID_PARAMETER = "build_id"
BUILD_COMMAND = "python -m pipeline build"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelDir:
    repository: Path
    name: str
    version: int = int(VERSION)

    @property
    def path(self) -> Path:
        return self.repository / self.name

    @property
    def version_dir(self) -> Path:
        return self.path / str(self.version)

    @property
    def artifacts_dir(self) -> Path:
        return self.version_dir / ARTIFACTS_DIR

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def manifest_file(self) -> Path:
        return self.artifacts_dir / MANIFEST_FILE

    def at_version(self, version: int) -> ModelDir:
        return replace(self, version=version)

    def declares_build_id(self, build_id: str) -> bool:
        """The config declares ``build_id`` for this version: ``build_id.<N>`` (single-version config: ``build_id``)."""
        if not self.config_file.is_file():
            return False
        text = self.config_file.read_text()
        versioned = version_build_id_parameter(self.version)
        if f'key: "{versioned}"' in text:
            return declares_build_id(text, build_id, versioned)
        return declares_build_id(text, build_id)

    def sync_sources(self, source_dir: Path, names: Sequence[str]) -> None:
        """Copies the tracked ``model.py`` and its helpers into a repository other than the tracked one."""
        if self.version_dir.resolve() == source_dir.resolve():
            return
        self.version_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            source, target = source_dir / name, self.version_dir / name
            if not target.exists() or target.read_bytes() != source.read_bytes():
                write_atomically(target, source.read_bytes())


PathsT = TypeVar("PathsT")


@dataclass(frozen=True)
class BuildResult(Generic[PathsT]):
    paths: PathsT
    manifest: dict
    reused: bool


# --- config.pbtxt ------------------------------------------------------------------------------


def rendered_header(model_kind: str) -> str:
    """First line of a rendered ``config.pbtxt``: it is build output, not source."""
    return f"# Rendered by `{BUILD_COMMAND} {model_kind}`; do not edit (the next build overwrites it).\n"


def declares_build_id(config_text: str, build_id: str, parameter: str = BUILD_ID_PARAMETER) -> bool:
    return f'key: "{parameter}"\n    value {{ string_value: "{build_id}" }}' in config_text


def version_build_id_parameter(version: int) -> str:
    """The config parameter naming one version's build_id in a config that lists several versions."""
    return f"{BUILD_ID_PARAMETER}.{version}"


# --- build ids -------------------------------------------------------------------------------


def arrays_build_id(arrays: Mapping[str, np.ndarray]) -> str:
    """Over the arrays' names, dtypes, shapes and bytes (not an .npz's bytes: numpy's zip writer stamps the time)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape}\n".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:BUILD_ID_HEX_DIGITS]


def files_build_id(files: Sequence[Path], root: Path, extra: str = "") -> str:
    """Over ``extra``, then each file's path relative to ``root`` and its bytes, in path order."""
    digest = hashlib.sha256(extra.encode())
    for path in sorted(files):
        digest.update(f"\n{path.relative_to(root).as_posix()}\n".encode())
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()[:BUILD_ID_HEX_DIGITS]


def combined_build_id(*build_ids: str) -> str:
    """The build_id of a model made of others (an ensemble)."""
    return hashlib.sha256(":".join(build_ids).encode()).hexdigest()[:BUILD_ID_HEX_DIGITS]


# --- manifest and completeness ---------------------------------------------------------------


def read_manifest(manifest_file: Path) -> dict | None:
    try:
        return json.loads(manifest_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def manifest_build_id(manifest: Mapping, model_name: str) -> str:
    """The build_id the manifest gives a model: ``build_ids[model]`` for a build of several, else ``build_id``."""
    if "build_ids" in manifest:
        return manifest["build_ids"].get(model_name, "")
    return manifest.get("build_id", "")


def is_complete(models: Sequence[ModelDir], required_files: Sequence[Path], fingerprint: str | None = None) -> bool:
    """True when ``models`` hold a finished build (of ``fingerprint``, if given).

    The last model holds the manifest; every model's config must declare the build_id the
    manifest gives it, and every required file must exist.
    """
    manifest = read_manifest(models[-1].manifest_file)
    if manifest is None or (fingerprint is not None and manifest.get("input_fingerprint") != fingerprint):
        return False
    if not all(path.is_file() for path in required_files):
        return False
    return all(model.declares_build_id(manifest_build_id(manifest, model.name)) for model in models)


# --- staged writing --------------------------------------------------------------------------


class StagedBuild:
    """Staging directories for ``models``; ``commit`` swaps them in, leaving the context discards what is left."""

    def __init__(self, models: Sequence[ModelDir]) -> None:
        self.models = tuple(models)
        self.staging: dict[str, Path] = {}

    def __enter__(self) -> StagedBuild:
        for model in self.models:
            model.version_dir.mkdir(parents=True, exist_ok=True)
            for leftover in model.version_dir.glob(f"{STAGING_PREFIX}*"):
                log.warning("removing %s left by an interrupted build", leftover)
                shutil.rmtree(leftover, ignore_errors=True)
            staged = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=model.version_dir))
            staged.chmod(0o755)
            self.staging[model.name] = staged
        return self

    def directory(self, model: ModelDir) -> Path:
        return self.staging[model.name]

    def commit(self, configs: Mapping[str, str]) -> None:
        """Swaps every staged directory in and writes its config (model name -> text), in model order."""
        for model in self.models:
            model.config_file.unlink(missing_ok=True)
            retired = None
            if model.artifacts_dir.exists():
                retired = model.version_dir / f"{STAGING_PREFIX}retired-{uuid.uuid4().hex[:8]}"
                model.artifacts_dir.rename(retired)
            self.staging.pop(model.name).rename(model.artifacts_dir)
            if retired is not None:
                shutil.rmtree(retired, ignore_errors=True)
            write_atomically(model.config_file, configs[model.name].encode())

    def __exit__(self, *exc_info: object) -> None:
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
