"""Writes the recommender's Triton model directory through a staged build (see :mod:`pipeline.model_dir`).

Layout (``1/model.py`` and ``1/recommender_scoring.py`` are tracked source, copied into every
other version; see :mod:`pipeline.model_versions` for which versions are kept)::

    <repository>/recommender/config.pbtxt                  rendered: version_policy, each version's build_id
    <repository>/recommender/versions.json                 serving, candidate, previous version
    <repository>/recommender/<N>/artifacts/recommender.npz everything model.py loads
    <repository>/recommender/<N>/artifacts/manifest.json   build_id, version, input fingerprint, files
    <repository>/recommender/<N>/artifacts/eval.json       evaluation and measurement figures

The build_id is :func:`pipeline.model_dir.arrays_build_id` over the arrays of ``recommender.npz``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from pipeline import model_dir
from pipeline.fingerprint import file_sha256
from pipeline.model_dir import ModelDir, StagedBuild
from pipeline.model_versions import VersionEntry, VersionRecord
from pipeline.recommender import version_comparison
from pipeline.recommender.config import RecommenderPipelineSettings
from pipeline.recommender.encoding import UserItemMatrix
from pipeline.recommender.serving_kernels import MODEL_SOURCE_DIR, SERVING_SOURCES
from pipeline.recommender.triton_config import render_config
from pipeline.version_store import load_record, retire, save_record

log = logging.getLogger(__name__)

WEIGHTS_FILE = "recommender.npz"
EVAL_FILE = "eval.json"


@dataclass(frozen=True)
class RecommenderDir(ModelDir):
    @property
    def weights_file(self) -> Path:
        return self.artifacts_dir / WEIGHTS_FILE

    @property
    def eval_file(self) -> Path:
        return self.artifacts_dir / EVAL_FILE


@dataclass(frozen=True)
class ServingArtifacts:
    """What the served model needs; ``seen`` holds ALL cleaned purchases of every user.

    ``scorer_arrays`` are the chosen model's own arrays, named as ``recommender_scoring.user_scorer``
    reads them: for ``scorer_kind`` "item-item" the pruned int8 matrix (``neighbour_columns``,
    ``neighbour_weights_int8``, ``neighbour_scales``), ``item_prior`` and ``history_weights``
    (aligned with ``seen``); for "factors" the item table in fp32 and int8 with its scales and
    bias, and ``user_vectors`` (row-aligned with ``user_ids``).
    """

    scorer_kind: str
    item_ids: list[str]
    item_titles: list[str]
    user_ids: list[str]
    popularity_scores: np.ndarray  # float32 [n_items], share of customers who bought the item
    seen: UserItemMatrix
    scorer_arrays: dict[str, np.ndarray]

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "scorer_kind": np.asarray(self.scorer_kind),
            "item_ids": np.asarray(self.item_ids, dtype=str),
            "item_titles": np.asarray(self.item_titles, dtype=str),
            "user_ids": np.asarray(self.user_ids, dtype=str),
            "popularity_scores": self.popularity_scores.astype(np.float32),
            "popularity_ranking": np.argsort(-self.popularity_scores, kind="stable").astype(np.int32),
            "seen_indptr": self.seen.indptr.astype(np.int64),
            "seen_indices": self.seen.indices.astype(np.int32),
            **self.scorer_arrays,
        }


def read_manifest(paths: RecommenderDir) -> dict | None:
    return model_dir.read_manifest(paths.manifest_file)


def is_complete(paths: RecommenderDir, fingerprint: str | None = None) -> bool:
    """True when the repository holds a finished build (of ``fingerprint``, if given)."""
    return model_dir.is_complete([paths], [paths.weights_file], fingerprint)


def sync_serving_sources(paths: RecommenderDir) -> None:
    paths.sync_sources(MODEL_SOURCE_DIR, SERVING_SOURCES)


# version -> (build_id, arrays, blend settings) of the versions to score -> the eval.json entry
ScoreVersions = Callable[[Mapping[int, tuple[str, Mapping[str, np.ndarray], Mapping[str, float]]]], dict]


@dataclass(frozen=True)
class VersionWrite:
    paths: RecommenderDir  # at the version that holds the build
    manifest: dict
    record: VersionRecord
    is_new: bool  # False: the build_id was already kept, nothing was written


def write_version(
    paths: RecommenderDir,
    config: RecommenderPipelineSettings,
    arrays: dict[str, np.ndarray],
    evaluation: dict,
    fingerprint: str,
    *,
    trained_on: Mapping[str, object] | None = None,
    score_versions: ScoreVersions | None = None,
    serve: bool = False,
) -> VersionWrite:
    """Writes a build as a version of ``paths``'s model (see :mod:`pipeline.model_versions`).

    A build_id the model already keeps writes nothing (its manifest takes the new input
    fingerprint, so that the next run reuses it); any other becomes the serving version 1 of an
    empty model or the new candidate. ``score_versions`` scores the new version and the serving
    one on the same split; its result goes into the new version's eval.json. ``trained_on``:
    the data the build was trained on (recorded in versions.json and the manifest). ``serve``
    promotes the build at once.
    """
    build_id = model_dir.arrays_build_id(arrays)
    before = load_record(paths)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    entry = VersionEntry(build_id=build_id, built_at=now, input_fingerprint=fingerprint, data=dict(trained_on or {}))
    outcome = before.with_build(entry, serve=serve)
    target = paths.at_version(outcome.version)
    if not outcome.is_new and is_complete(target):
        return _keep_version(paths, target, config, outcome.record, outcome.retired, fingerprint, trained_on or {})

    sync_serving_sources(target)
    if score_versions is not None:
        scored = {outcome.version: (build_id, arrays, version_comparison.blend_of(evaluation))}
        if before.serving is not None and before.serving != outcome.version:
            serving = paths.at_version(before.serving)
            serving_eval = json.loads(serving.eval_file.read_text())
            scored[before.serving] = (
                before.serving_build_id,
                version_comparison.load_arrays(serving.weights_file),
                version_comparison.blend_of(serving_eval),
            )
        evaluation = {**evaluation, version_comparison.GATE_EVALUATION_KEY: score_versions(scored)}
    entry = entry.model_copy(update={"eval": headline_figures(evaluation, outcome.version)})
    record = outcome.record._with(versions={**outcome.record.versions, outcome.version: entry})
    with StagedBuild([target]) as stage:
        staging = stage.directory(target)
        np.savez(staging / WEIGHTS_FILE, **arrays)
        model_dir.write_json(staging / EVAL_FILE, {"build_id": build_id, "version": outcome.version, **evaluation})
        manifest = {
            "build_id": build_id,
            "version": outcome.version,
            "input_fingerprint": fingerprint,
            "model_name": config.model_name,
            "built_at": now,
            "trained_on": dict(trained_on or {}),
            "n_items": len(arrays["item_ids"]),
            "n_users": len(arrays["user_ids"]),
            "scorer_kind": str(arrays["scorer_kind"]),
            "files": {
                name: {"bytes": (staging / name).stat().st_size, "sha256": file_sha256(staging / name)}
                for name in (WEIGHTS_FILE, EVAL_FILE)
            },
        }
        model_dir.write_json(staging / model_dir.MANIFEST_FILE, manifest)
        save_record(paths, record)
        stage.commit({paths.name: render_config(config, record, model_dir.ARTIFACTS_DIR)})
    retire(paths, outcome.retired, MODEL_SOURCE_DIR)
    log.info("wrote %s version %d (build_id %s, %s)", paths.path, outcome.version, build_id,
             record.role_of(outcome.version).value)
    return VersionWrite(target, manifest, record, is_new=True)


def headline_figures(evaluation: Mapping, version: int) -> dict:
    """What versions.json keeps of a version's evaluation: its gate figures and a trained build's test figures."""
    gate = evaluation.get(version_comparison.GATE_EVALUATION_KEY, {})
    figures: dict = {"gate": gate.get("versions", {}).get(str(version), {})}
    if "model_int8" in evaluation:
        figures["test_served_form"] = evaluation["model_int8"]
        figures["served"] = evaluation.get("served", {}).get("label", "")
    return figures


def _keep_version(
    paths: RecommenderDir,
    target: RecommenderDir,
    config: RecommenderPipelineSettings,
    record: VersionRecord,
    retired: tuple[int, ...],
    fingerprint: str,
    trained_on: Mapping[str, object],
) -> VersionWrite:
    """The build is a version already kept: record the inputs that give it, apply a promotion.

    A version written before versions were recorded gets its training data and headline figures here.
    """
    manifest = read_manifest(target) or {}
    if manifest.get("input_fingerprint") != fingerprint:
        manifest["input_fingerprint"] = fingerprint
        model_dir.write_atomically(target.manifest_file, (json.dumps(manifest, indent=2) + "\n").encode())
    entry = record.versions[target.version]
    update: dict[str, object] = {"input_fingerprint": fingerprint}
    if not entry.data and trained_on:
        update["data"] = dict(trained_on)
    if not entry.eval and target.eval_file.is_file():
        update["eval"] = headline_figures(json.loads(target.eval_file.read_text()), target.version)
    entry = entry.model_copy(update=update)
    record = record.model_copy(update={"versions": {**record.versions, target.version: entry}})
    apply_record(paths, config, record, retired)
    log.info("build %s is %s version %d already: nothing new written", entry.build_id, paths.name, target.version)
    return VersionWrite(target, manifest, record, is_new=False)


def apply_record(
    paths: RecommenderDir, config: RecommenderPipelineSettings, record: VersionRecord, retired: tuple[int, ...] = ()
) -> None:
    """Saves ``record``, renders the config of its versions and deletes the retired ones (promote, drop)."""
    save_record(paths, record)
    model_dir.write_atomically(paths.config_file, render_config(config, record, model_dir.ARTIFACTS_DIR).encode())
    retire(paths, retired, MODEL_SOURCE_DIR)


def reusable_version(paths: RecommenderDir, fingerprint: str) -> RecommenderDir | None:
    """A kept, complete version built from ``fingerprint`` (serving first), if any."""
    record = load_record(paths)
    for version in [record.serving, record.candidate, record.previous]:
        if version is not None and is_complete(paths.at_version(version), fingerprint):
            return paths.at_version(version)
    return None


TRITON_COMPUTE_KEY = "triton_compute_ns"


def record_triton_compute(paths: RecommenderDir, figures: dict) -> dict:
    """Adds COMPUTE_NS measured through Triton to the build's eval.json (and its manifest entry).

    ``figures``: {"build_id", "known_users": {...}, "unknown_users": {...}} with per-request
    medians in ns; the served candidate's row gets the known users' figures, popularity's row
    (the unknown-user fallback) the unknown users'. Returns the updated evaluation.
    """
    evaluation = json.loads(paths.eval_file.read_text())
    evaluation[TRITON_COMPUTE_KEY] = figures
    for row in evaluation["candidates"]:
        if row.get("served"):
            row[TRITON_COMPUTE_KEY] = figures["known_users"]
        elif row["name"] == "popularity":
            row[TRITON_COMPUTE_KEY] = figures["unknown_users"]
    model_dir.write_atomically(paths.eval_file, (json.dumps(evaluation, indent=2) + "\n").encode())
    manifest = read_manifest(paths)
    if manifest is not None and EVAL_FILE in manifest.get("files", {}):
        manifest["files"][EVAL_FILE] = {
            "bytes": paths.eval_file.stat().st_size,
            "sha256": file_sha256(paths.eval_file),
        }
        model_dir.write_atomically(paths.manifest_file, (json.dumps(manifest, indent=2) + "\n").encode())
    return evaluation


def triton_compute_of(evaluation: dict) -> dict | None:
    """The Triton measurement recorded for this very build, if any."""
    figures = evaluation.get(TRITON_COMPUTE_KEY)
    return figures if figures and figures.get("build_id") == evaluation.get("build_id") else None
