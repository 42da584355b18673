"""Writes the recommender's Triton model directory through a staged build (see :mod:`pipeline.model_dir`).

Layout (``1/model.py`` and ``1/recommender_scoring.py`` are tracked source, not written here)::

    <repository>/recommender/config.pbtxt                  rendered, names the build_id
    <repository>/recommender/1/artifacts/recommender.npz   everything model.py loads
    <repository>/recommender/1/artifacts/manifest.json     build_id, input fingerprint, files
    <repository>/recommender/1/artifacts/eval.json         evaluation and measurement figures

The build_id is :func:`pipeline.model_dir.arrays_build_id` over the arrays of ``recommender.npz``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from pipeline import model_dir
from pipeline.fingerprint import file_sha256
from pipeline.model_dir import ModelDir, StagedBuild
from pipeline.recommender.config import RecommenderPipelineSettings
from pipeline.recommender.encoding import UserItemMatrix
from pipeline.recommender.serving_kernels import MODEL_SOURCE_DIR, SERVING_SOURCES
from pipeline.recommender.triton_config import render_config

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


def write_model(
    paths: RecommenderDir,
    config: RecommenderPipelineSettings,
    artifacts: ServingArtifacts,
    evaluation: dict,
    fingerprint: str,
) -> dict:
    """Writes a complete model directory; returns the manifest."""
    sync_serving_sources(paths)
    arrays = artifacts.arrays()
    build_id = model_dir.arrays_build_id(arrays)
    with StagedBuild([paths]) as stage:
        staging = stage.directory(paths)
        np.savez(staging / WEIGHTS_FILE, **arrays)
        model_dir.write_json(staging / EVAL_FILE, {"build_id": build_id, **evaluation})
        manifest = {
            "build_id": build_id,
            "input_fingerprint": fingerprint,
            "model_name": config.model_name,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "n_items": len(artifacts.item_ids),
            "n_users": len(artifacts.user_ids),
            "scorer_kind": artifacts.scorer_kind,
            "files": {
                name: {"bytes": (staging / name).stat().st_size, "sha256": file_sha256(staging / name)}
                for name in (WEIGHTS_FILE, EVAL_FILE)
            },
        }
        model_dir.write_json(staging / model_dir.MANIFEST_FILE, manifest)
        stage.commit({paths.name: render_config(config, build_id, model_dir.ARTIFACTS_DIR)})
    log.info("wrote %s (build_id %s)", paths.path, build_id)
    return manifest


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
