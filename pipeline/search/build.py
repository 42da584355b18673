"""The search build: catalogue -> fp32 product index -> ONNX export -> int8 quantisation -> evaluation.

Every catalogue title is embedded with the fp32 encoder (torch, the published weights); only
the *query* encoder is quantised (queries are encoded per request, the index once). The
evaluation compares, on the same fp32 index: the int8 ONNX Runtime query encoder, the fp32
encoder and a BM25 baseline on the judged set (``judged.py``), the agreement of int8 with fp32,
and the encode latency of torch fp32, ONNX Runtime fp32 and ONNX Runtime int8.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pipeline.model_dir import (
    ARTIFACTS_DIR,
    MANIFEST_FILE,
    BuildResult,
    StagedBuild,
    arrays_build_id,
    combined_build_id,
    files_build_id,
    write_json,
)
from pipeline.search import layout
from pipeline.search.catalogue import Catalogue, SearchData, load_search_data
from pipeline.search.config import SearchPipelineSettings
from pipeline.search.encoder_latency import measure_encode_latency
from pipeline.search.evaluate import evaluate_search
from pipeline.search.fingerprint import encoder_model_dir, search_fingerprint
from pipeline.search.judged import JudgedSet, derive_judged_set
from pipeline.search.layout import SearchPaths
from pipeline.search.onnx_export import export_fp32, quantize_int8
from pipeline.search.serving_sources import encoding_module
from pipeline.search.triton_config import render_encoder_config, render_ensemble_config, render_index_config
from pipeline.seeding import seed_everything
from pipeline.settings import PipelineSettings

log = logging.getLogger(__name__)


def search_paths(settings: PipelineSettings | None = None, config: SearchPipelineSettings | None = None) -> SearchPaths:
    settings = settings or PipelineSettings()
    return SearchPaths.in_repository(Path(settings.model_repository), config or SearchPipelineSettings())


def current_fingerprint(settings: PipelineSettings | None = None, config: SearchPipelineSettings | None = None) -> str:
    settings = settings or PipelineSettings()
    config = config or SearchPipelineSettings()
    return search_fingerprint(Path(settings.data_dir) / config.dataset_file, config)


def is_up_to_date(settings: PipelineSettings | None = None, config: SearchPipelineSettings | None = None) -> bool:
    return layout.is_complete(search_paths(settings, config), current_fingerprint(settings, config))


def build_search(
    force: bool = False, settings: PipelineSettings | None = None, config: SearchPipelineSettings | None = None
) -> BuildResult[SearchPaths]:
    """Builds the three search models into ``settings.model_repository``; reuses a build of the same inputs."""
    settings = settings or PipelineSettings()
    config = config or SearchPipelineSettings()
    paths = search_paths(settings, config)
    data_file = Path(settings.data_dir) / config.dataset_file
    fingerprint = search_fingerprint(data_file, config)
    if not force and layout.is_complete(paths, fingerprint):
        layout.sync_serving_sources(paths)
        manifest = layout.read_manifest(paths) or {}
        log.info("reusing search build %s in %s (inputs unchanged)", manifest.get("build_id"), settings.model_repository)
        return BuildResult(paths=paths, manifest=manifest, reused=True)

    started = time.perf_counter()
    seed_everything(config.seed)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.build_threads)
    try:
        data = load_search_data(data_file)
        judged = derive_judged_set(
            data.sale_descriptions,
            data.catalogue.titles_by_id(),
            config.junk_markers,
            config.min_query_words,
            data.all_descriptions,
        )
        log.info("judged set: %s", judged.summary())
        layout.sync_serving_sources(paths)
        with StagedBuild(paths.models) as stage, tempfile.TemporaryDirectory(prefix="tollgate-search-") as work:
            manifest = _build_into(stage, paths, Path(work), data, judged, config, fingerprint, started)
            stage.commit(render_configs(config, manifest["build_ids"]))
    finally:
        torch.set_num_threads(previous_threads)
    log.info("search build %s written in %.0f s", manifest["build_id"], time.perf_counter() - started)
    return BuildResult(paths=paths, manifest=manifest, reused=False)


def render_configs(config: SearchPipelineSettings, build_ids: dict[str, str]) -> dict[str, str]:
    """The three rendered ``config.pbtxt``, by model name."""
    return {
        config.encoder_model_name: render_encoder_config(
            config, build_ids[config.encoder_model_name], ARTIFACTS_DIR, layout.ONNX_FILE
        ),
        config.index_model_name: render_index_config(
            config, build_ids[config.index_model_name], ARTIFACTS_DIR, layout.INDEX_FILE
        ),
        config.ensemble_model_name: render_ensemble_config(config, build_ids[config.ensemble_model_name]),
    }


def embed_catalogue(encoder, catalogue: Catalogue, batch_size: int) -> np.ndarray:
    """fp32, L2-normalised ``[n_items, 384]`` in catalogue order."""
    chunks = []
    for start in tqdm(range(0, len(catalogue), batch_size), desc="embedding catalogue", unit="batch", leave=False):
        chunks.append(encoder.encode(list(catalogue.titles[start : start + batch_size])))
    embeddings = np.concatenate(chunks).astype(np.float32)
    return embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)


def _build_into(
    stage: StagedBuild,
    paths: SearchPaths,
    work: Path,
    data: SearchData,
    judged: JudgedSet,
    config: SearchPipelineSettings,
    fingerprint: str,
    started: float,
) -> dict:
    """Writes the three staged model directories; returns the manifest."""
    encoding = encoding_module()
    encoder_dir = encoder_model_dir()
    tokenizer = encoding.load_tokenizer(encoder_dir / layout.TOKENIZER_FILE, config.max_length)
    torch_fp32 = encoding.TorchQueryEncoder(encoder_dir, tokenizer, device="cpu", dtype="float32")

    index_started = time.perf_counter()
    embeddings = embed_catalogue(torch_fp32, data.catalogue, config.index_batch_size)
    index_arrays = {
        "embeddings": embeddings,
        "item_ids": np.asarray(data.catalogue.item_ids, dtype=str),
        "titles": np.asarray(data.catalogue.titles, dtype=str),
    }
    np.savez(stage.directory(paths.index) / layout.INDEX_FILE, **index_arrays)
    index_seconds = time.perf_counter() - index_started
    log.info("indexed %d titles in %.1f s", len(data.catalogue), index_seconds)

    fp32_onnx, int8_onnx = _write_encoder(stage.directory(paths.encoder), encoder_dir, tokenizer, work, config)
    encoders = {
        "torch_fp32": torch_fp32,
        "ort_fp32": encoding.OnnxQueryEncoder(fp32_onnx, tokenizer, config.build_threads),
        "ort_int8": encoding.OnnxQueryEncoder(int8_onnx, tokenizer, config.build_threads),
    }
    evaluation = evaluate_search(encoders, embeddings, data.catalogue, judged, config)
    evaluation["encode_latency"] = measure_encode_latency(
        {
            "torch_fp32": lambda threads: torch_fp32,  # its threads are set through torch.set_num_threads
            "ort_fp32": lambda threads: encoding.OnnxQueryEncoder(fp32_onnx, tokenizer, threads),
            "ort_int8": lambda threads: encoding.OnnxQueryEncoder(int8_onnx, tokenizer, threads),
        },
        [query.text for query in judged.queries],
        config.bench_batch_sizes,
        config.bench_threads,
        config.bench_warmup,
        config.bench_repeats,
        config.seed,
    )
    evaluation["encoder"].update(
        {
            "onnx_fp32_mb": round(fp32_onnx.stat().st_size / 1e6, 1),
            "onnx_int8_mb": round(int8_onnx.stat().st_size / 1e6, 1),
            "index_seconds": round(index_seconds, 1),
        }
    )

    encoder_artifacts = stage.directory(paths.encoder)
    encoder_files = [path for path in encoder_artifacts.rglob("*") if path.is_file()]
    build_ids = {
        paths.encoder.name: files_build_id(encoder_files, encoder_artifacts, extra=f"max_length={config.max_length}"),
        paths.index.name: arrays_build_id(index_arrays),
    }
    build_ids[paths.ensemble.name] = combined_build_id(build_ids[paths.encoder.name], build_ids[paths.index.name])
    evaluation = {
        "build_id": build_ids[paths.ensemble.name],
        "build_ids": build_ids,
        **evaluation,
        "dataset": data.cleaned.stats.as_dict(),
        "config": config.model_dump(mode="json"),
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    manifest = {
        "build_id": build_ids[paths.ensemble.name],
        "build_ids": build_ids,
        "input_fingerprint": fingerprint,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "n_items": len(data.catalogue),
        "dim": int(embeddings.shape[1]),
        "models": [model.name for model in paths.models],
    }
    _write_reports(stage.directory(paths.ensemble), evaluation, judged, manifest)
    return manifest


def _write_encoder(
    target: Path, encoder_dir: Path, tokenizer, work: Path, config: SearchPipelineSettings
) -> tuple[Path, Path]:
    """int8 ONNX graph, tokenizer and the fp32 weights (for GPU instances) into ``target``; returns both graphs."""
    fp32_onnx = export_fp32(encoder_dir, tokenizer, work / "encoder_fp32.onnx", config.onnx_opset)
    int8_onnx = quantize_int8(fp32_onnx, target / layout.ONNX_FILE, config.quantize_per_channel)
    shutil.copyfile(encoder_dir / layout.TOKENIZER_FILE, target / layout.TOKENIZER_FILE)
    (target / layout.HF_MODEL_DIR).mkdir()
    for name in layout.HF_MODEL_FILES:
        shutil.copyfile(encoder_dir / name, target / layout.HF_MODEL_DIR / name)
    return fp32_onnx, int8_onnx


def _write_reports(target: Path, evaluation: dict, judged: JudgedSet, manifest: dict) -> None:
    write_json(target / layout.EVAL_FILE, evaluation)
    rows = [{"query": query.text, "relevant": sorted(query.relevant), "source": query.source} for query in judged.queries]
    (target / layout.JUDGED_FILE).write_text(json.dumps(rows, indent=1) + "\n")
    write_json(target / MANIFEST_FILE, manifest)  # last: the manifest marks the build as written
