"""A model repository under ``var/bench/`` with the query encoder twice: int8 (as served) and fp32.

Both are the project's own ``query_encoder`` model (``model.py`` and ``query_encoding.py``
copied unchanged) with a config that differs only in its name and ``onnx_file``: the served
int8 per-channel ONNX graph, or the fp32 graph it was quantised from. The build keeps only the
int8 graph, so the fp32 one is re-exported here with the build's own exporter
(``pipeline.search.onnx_export.export_fp32``, same opset and max_length) and cached under
``var/bench/cache/`` by the encoder's build_id.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from pipeline.model_dir import ARTIFACTS_DIR, ModelDir
from pipeline.search import layout
from pipeline.search.config import SearchPipelineSettings
from pipeline.search.onnx_export import export_fp32
from pipeline.search.serving_sources import ENCODER_SOURCES, encoding_module
from pipeline.search.triton_config import render_encoder_config

log = logging.getLogger(__name__)

INT8_MODEL = "query_encoder_int8"
FP32_MODEL = "query_encoder_fp32"
FP32_ONNX = "encoder_fp32.onnx"


def build_encoder_repository(model_repository: Path, target: Path, cache_dir: Path) -> dict[str, str]:
    """Writes ``target`` (replacing it) and returns {model name: precision}."""
    config = SearchPipelineSettings()
    served = layout.SearchPaths.in_repository(model_repository, config)
    manifest = json.loads(served.manifest_file.read_text())
    build_id = manifest["build_ids"][config.encoder_model_name]
    artifacts = served.encoder.artifacts_dir
    fp32 = _fp32_graph(artifacts, cache_dir / f"encoder_fp32-{build_id}.onnx", config)
    shutil.rmtree(target, ignore_errors=True)
    graphs = {INT8_MODEL: artifacts / layout.ONNX_FILE, FP32_MODEL: fp32}
    for name, graph in graphs.items():
        model = ModelDir(target, name)
        model.artifacts_dir.mkdir(parents=True)
        source_dir, files = ENCODER_SOURCES
        for file in files:
            shutil.copyfile(source_dir / file, model.version_dir / file)
        (model.artifacts_dir / layout.TOKENIZER_FILE).symlink_to(artifacts / layout.TOKENIZER_FILE)
        (model.artifacts_dir / graph.name).symlink_to(graph.resolve())
        named = config.model_copy(update={"encoder_model_name": name})
        model.config_file.write_text(
            render_encoder_config(named, f"{build_id}-bench", ARTIFACTS_DIR, graph.name)
        )
    return {INT8_MODEL: "int8", FP32_MODEL: "fp32"}


def _fp32_graph(artifacts: Path, cached: Path, config: SearchPipelineSettings) -> Path:
    if cached.is_file():
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    log.info("exporting the fp32 ONNX query encoder once (cached at %s)", cached)
    tokenizer = encoding_module().load_tokenizer(artifacts / layout.TOKENIZER_FILE, config.max_length)
    staging = cached.with_suffix(".partial")
    export_fp32(artifacts / layout.HF_MODEL_DIR, tokenizer, staging, config.onnx_opset)
    staging.rename(cached)
    return cached
