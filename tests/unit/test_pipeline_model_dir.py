"""The shared model directory: staged build then swap, interrupted builds, completeness, build ids.

Expected values are written out by hand: file contents the test itself staged, and build ids
computed outside Python from the documented recipes (``printf ... | sha256sum | cut -c1-12``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.model_dir import (
    STAGING_PREFIX,
    ModelDir,
    StagedBuild,
    arrays_build_id,
    combined_build_id,
    files_build_id,
    is_complete,
    write_json,
)


def config_text(build_id: str) -> str:
    """A config.pbtxt declaring ``build_id`` the way both models' configs render it."""
    return f'name: "m"\nparameters [\n  {{\n    key: "build_id"\n    value {{ string_value: "{build_id}" }}\n  }}\n]\n'


def stage_build(model: ModelDir, build_id: str, weights: bytes, fingerprint: str = "fp-1") -> None:
    with StagedBuild([model]) as stage:
        (stage.directory(model) / "weights.bin").write_bytes(weights)
        write_json(stage.directory(model) / "manifest.json", {"build_id": build_id, "input_fingerprint": fingerprint})
        stage.commit({model.name: config_text(build_id)})


def staging_dirs(model: ModelDir) -> list[Path]:
    return list(model.version_dir.glob(f"{STAGING_PREFIX}*"))


@pytest.fixture
def model(tmp_path: Path) -> ModelDir:
    return ModelDir(tmp_path / "repo", "m")


def test_layout_of_a_model_directory(model: ModelDir, tmp_path: Path) -> None:
    assert model.path == tmp_path / "repo" / "m"
    assert model.config_file == tmp_path / "repo" / "m" / "config.pbtxt"
    assert model.artifacts_dir == tmp_path / "repo" / "m" / "1" / "artifacts"
    assert model.manifest_file == tmp_path / "repo" / "m" / "1" / "artifacts" / "manifest.json"


def test_staged_files_appear_only_when_committed(model: ModelDir) -> None:
    with StagedBuild([model]) as stage:
        (stage.directory(model) / "weights.bin").write_bytes(b"v1")
        assert not model.artifacts_dir.exists() and not model.config_file.exists()
        assert stage.directory(model).parent == model.version_dir
        stage.commit({model.name: config_text("aaaaaaaaaaaa")})
    assert sorted(path.name for path in model.artifacts_dir.iterdir()) == ["weights.bin"]
    assert (model.artifacts_dir / "weights.bin").read_bytes() == b"v1"
    assert model.config_file.read_text() == config_text("aaaaaaaaaaaa")
    assert staging_dirs(model) == []


def test_a_second_build_swaps_the_first_out(model: ModelDir) -> None:
    stage_build(model, "aaaaaaaaaaaa", b"v1")
    stage_build(model, "bbbbbbbbbbbb", b"v2")
    assert (model.artifacts_dir / "weights.bin").read_bytes() == b"v2"
    assert json.loads(model.manifest_file.read_text())["build_id"] == "bbbbbbbbbbbb"
    assert is_complete([model], [model.artifacts_dir / "weights.bin"], "fp-1")
    assert staging_dirs(model) == []  # the retired first build is gone too


def test_an_interrupted_build_leaves_the_previous_complete_directory(model: ModelDir) -> None:
    stage_build(model, "aaaaaaaaaaaa", b"v1")
    with pytest.raises(RuntimeError), StagedBuild([model]) as stage:
        (stage.directory(model) / "weights.bin").write_bytes(b"half")
        raise RuntimeError("killed before the commit")
    assert (model.artifacts_dir / "weights.bin").read_bytes() == b"v1"
    assert model.config_file.read_text() == config_text("aaaaaaaaaaaa")
    assert is_complete([model], [model.artifacts_dir / "weights.bin"], "fp-1")
    assert staging_dirs(model) == []


def test_staging_left_by_a_killed_process_is_removed_by_the_next_build(model: ModelDir) -> None:
    leftover = model.version_dir / f"{STAGING_PREFIX}killed"
    leftover.mkdir(parents=True)
    (leftover / "weights.bin").write_bytes(b"half")
    stage_build(model, "aaaaaaaaaaaa", b"v1")
    assert staging_dirs(model) == []


def test_completeness(model: ModelDir) -> None:
    weights = model.artifacts_dir / "weights.bin"
    assert not is_complete([model], [weights])  # nothing built yet

    stage_build(model, "aaaaaaaaaaaa", b"v1", fingerprint="fp-1")
    assert is_complete([model], [weights])
    assert is_complete([model], [weights], "fp-1")
    assert not is_complete([model], [weights], "fp-2")  # built from other inputs
    assert not is_complete([model], [weights, model.artifacts_dir / "missing.bin"])

    model.config_file.write_text(config_text("cccccccccccc"))  # a config of another build
    assert not is_complete([model], [weights])
    model.config_file.unlink()  # interrupted between the swap and the config
    assert not is_complete([model], [weights])


def test_no_manifest_is_not_complete(model: ModelDir) -> None:
    stage_build(model, "aaaaaaaaaaaa", b"v1")
    model.manifest_file.unlink()
    assert not is_complete([model], [model.artifacts_dir / "weights.bin"])
    model.manifest_file.write_text("{ half-written")
    assert not is_complete([model], [model.artifacts_dir / "weights.bin"])


def test_a_build_of_several_models_declares_one_build_id_each(tmp_path: Path) -> None:
    first, last = ModelDir(tmp_path, "first"), ModelDir(tmp_path, "last")
    build_ids = {"first": "111111111111", "last": "222222222222"}
    with StagedBuild([first, last]) as stage:
        write_json(stage.directory(last) / "manifest.json", {"build_id": "222222222222", "build_ids": build_ids})
        stage.commit({name: config_text(build_id) for name, build_id in build_ids.items()})
    assert is_complete([first, last], [])
    first.config_file.write_text(config_text("222222222222"))  # the manifest's other id is not this model's
    assert not is_complete([first, last], [])


def test_sync_sources_copies_into_another_repository_only(model: ModelDir, tmp_path: Path) -> None:
    tracked = tmp_path / "tracked" / "m" / "1"
    tracked.mkdir(parents=True)
    (tracked / "model.py").write_text("served = True\n")
    model.sync_sources(tracked, ["model.py"])
    assert (model.version_dir / "model.py").read_text() == "served = True\n"
    ModelDir(tmp_path / "tracked", "m").sync_sources(tracked, ["model.py"])  # the tracked directory itself: a no-op
    assert sorted(path.name for path in tracked.iterdir()) == ["model.py"]


def test_build_ids_follow_their_documented_recipes(tmp_path: Path) -> None:
    # sha256("aaaaaaaaaaaa:bbbbbbbbbbbb")[:12]
    assert combined_build_id("a" * 12, "b" * 12) == "3c42f9cf7e92"
    # sha256(b"x:<i4:(2,)\n" + the two little-endian int32 1 and 2)[:12]
    assert arrays_build_id({"x": np.array([1, 2], dtype="<i4")}) == "64fd291a3997"
    # sha256(b"max_length=64" + b"\nw.bin\n" + b"v1")[:12]
    (tmp_path / "w.bin").write_bytes(b"v1")
    assert files_build_id([tmp_path / "w.bin"], tmp_path, extra="max_length=64") == "ffec0d04e98b"
