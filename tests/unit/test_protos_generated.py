"""gateway/api/ must be exactly what `make protos` generates from protos/."""

import importlib.util
from pathlib import Path

from gateway.settings import REPO_ROOT


def _generator():
    spec = importlib.util.spec_from_file_location("protos_generate", REPO_ROOT / "protos" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_in_sync_with_the_protos(tmp_path: Path):
    generator = _generator()
    fresh = {path.name: path.read_text() for path in generator.generate(tmp_path / "api")}
    committed = {path.name: path.read_text() for path in generator.OUTPUT_DIR.glob("*_pb2*.py*")}
    assert fresh.keys() == committed.keys()
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"run `make protos`: {stale} differ from protos/"
