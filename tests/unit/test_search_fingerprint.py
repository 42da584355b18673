"""Reuse of a finished search build: the fingerprint, the completeness check and the atomic commit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.model_dir import MANIFEST_FILE, STAGING_PREFIX, StagedBuild, write_json
from pipeline.search import build as search_build
from pipeline.search import layout
from pipeline.search.config import SearchPipelineSettings
from pipeline.search.fingerprint import search_fingerprint, source_files
from pipeline.settings import PipelineSettings

DATA_FILE = "online-retail/online_retail.csv.gz"


@pytest.fixture
def settings(tmp_path: Path) -> PipelineSettings:
    data = tmp_path / "data" / DATA_FILE
    data.parent.mkdir(parents=True)
    data.write_bytes(b"InvoiceNo,StockCode\n536365,85123A\n")
    return PipelineSettings(data_dir=tmp_path / "data", model_repository=tmp_path / "repo")


def fake_build(paths: layout.SearchPaths, config: SearchPipelineSettings, fingerprint: str) -> dict:
    """A tiny but complete build, written through the real source sync, staging and commit path."""
    build_ids = {paths.encoder.name: "e" * 12, paths.index.name: "i" * 12, paths.ensemble.name: "s" * 12}
    layout.sync_serving_sources(paths)
    with StagedBuild(paths.models) as stage:
        (stage.directory(paths.encoder) / layout.ONNX_FILE).write_bytes(b"onnx")
        (stage.directory(paths.index) / layout.INDEX_FILE).write_bytes(b"npz")
        write_json(stage.directory(paths.ensemble) / layout.EVAL_FILE, {"build_id": build_ids[paths.ensemble.name]})
        manifest = {"build_id": build_ids[paths.ensemble.name], "build_ids": build_ids, "input_fingerprint": fingerprint}
        write_json(stage.directory(paths.ensemble) / MANIFEST_FILE, manifest)
        stage.commit(search_build.render_configs(config, build_ids))
    return manifest


def test_fingerprint_follows_data_config_and_sources(settings: PipelineSettings, tmp_path: Path):
    data = Path(settings.data_dir) / DATA_FILE
    config = SearchPipelineSettings()
    base = search_fingerprint(data, config)
    assert search_fingerprint(data, config) == base
    assert search_fingerprint(data, SearchPipelineSettings(max_length=32)) != base
    assert search_fingerprint(data, config, sources=source_files()[:-1]) != base
    data.write_bytes(data.read_bytes() + b"536366,71053\n")
    assert search_fingerprint(data, config) != base
    assert any(path.name == "judged.py" for path in source_files())


def test_a_complete_build_of_the_same_inputs_is_reused(settings: PipelineSettings, monkeypatch: pytest.MonkeyPatch):
    config = SearchPipelineSettings()
    paths = search_build.search_paths(settings, config)
    manifest = fake_build(paths, config, search_build.current_fingerprint(settings, config))
    assert layout.is_complete(paths)
    assert paths.ensemble.version_dir.is_dir()
    assert not list(paths.encoder.version_dir.glob(f"{STAGING_PREFIX}*"))

    def must_not_build(*args, **kwargs):
        raise AssertionError("an unchanged input must not rebuild")

    monkeypatch.setattr(search_build, "_build_into", must_not_build)
    monkeypatch.setattr(search_build, "load_search_data", must_not_build)
    (paths.encoder.version_dir / "model.py").unlink()
    result = search_build.build_search(settings=settings, config=config)
    assert result.reused and result.manifest == manifest
    assert result.paths.eval_file == paths.eval_file
    assert (paths.encoder.version_dir / "model.py").is_file()  # a reused build re-syncs the serving sources


def test_changed_inputs_or_a_broken_commit_are_not_complete(settings: PipelineSettings):
    config = SearchPipelineSettings()
    paths = search_build.search_paths(settings, config)
    fingerprint = search_build.current_fingerprint(settings, config)
    fake_build(paths, config, fingerprint)
    assert layout.is_complete(paths, fingerprint)
    assert not layout.is_complete(paths, "another fingerprint")
    assert not search_build.is_up_to_date(settings, SearchPipelineSettings(top_k=5))

    # A build interrupted between swapping artifacts and writing a config leaves none.
    paths.index.config_file.unlink()
    assert not layout.is_complete(paths, fingerprint)
    # A config of another build (its build_id differs from the manifest) is not complete either.
    fake_build(paths, config, fingerprint)
    other = paths.encoder.config_file.read_text().replace("e" * 12, "f" * 12)
    paths.encoder.config_file.write_text(other)
    assert not layout.is_complete(paths, fingerprint)


def test_a_failed_build_leaves_no_staging_and_keeps_the_old_one(settings: PipelineSettings):
    config = SearchPipelineSettings()
    paths = search_build.search_paths(settings, config)
    fingerprint = search_build.current_fingerprint(settings, config)
    fake_build(paths, config, fingerprint)
    with pytest.raises(RuntimeError), StagedBuild(paths.models) as stage:
        (stage.directory(paths.index) / layout.INDEX_FILE).write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert layout.is_complete(paths, fingerprint)
    assert paths.index_file.read_bytes() == b"npz"
    assert not [p for model in paths.models for p in model.version_dir.glob(f"{STAGING_PREFIX}*")]
    assert json.loads(paths.manifest_file.read_text())["input_fingerprint"] == fingerprint
