"""Where the search build puts what, and when its three model directories count as built.

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

The three are written as one staged build (:class:`pipeline.model_dir.StagedBuild`), the
ensemble (holding the manifest) committed last. build_ids: ``query_encoder`` over its artifact
files' bytes plus the rendered ``max_length``; ``product_index`` over the index arrays;
``product_search`` over the two others (see :mod:`pipeline.model_dir`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline import model_dir
from pipeline.model_dir import ModelDir
from pipeline.search.config import SearchPipelineSettings
from pipeline.search.serving_sources import ENCODER_SOURCES, INDEX_SOURCES

ONNX_FILE = "encoder_int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
HF_MODEL_DIR = "hf_model"
HF_MODEL_FILES = ("config.json", "model.safetensors")
INDEX_FILE = "index.npz"
EVAL_FILE = "eval.json"
JUDGED_FILE = "judged_queries.json"


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
        """In commit order: the ensemble, which holds the manifest, last."""
        return (self.encoder, self.index, self.ensemble)

    @property
    def eval_file(self) -> Path:
        return self.ensemble.artifacts_dir / EVAL_FILE

    @property
    def judged_file(self) -> Path:
        return self.ensemble.artifacts_dir / JUDGED_FILE

    @property
    def manifest_file(self) -> Path:
        return self.ensemble.manifest_file

    @property
    def index_file(self) -> Path:
        return self.index.artifacts_dir / INDEX_FILE

    @property
    def onnx_file(self) -> Path:
        return self.encoder.artifacts_dir / ONNX_FILE


def read_manifest(paths: SearchPaths) -> dict | None:
    return model_dir.read_manifest(paths.manifest_file)


def is_complete(paths: SearchPaths, fingerprint: str | None = None) -> bool:
    """True when the repository holds a finished search build (of ``fingerprint``, if given)."""
    return model_dir.is_complete(paths.models, [paths.onnx_file, paths.index_file, paths.eval_file], fingerprint)


def sync_serving_sources(paths: SearchPaths) -> None:
    """Copies the tracked model sources into a repository other than the tracked one (e.g. a test's)."""
    for model, (source_dir, names) in ((paths.encoder, ENCODER_SOURCES), (paths.index, INDEX_SOURCES)):
        model.sync_sources(source_dir, names)
