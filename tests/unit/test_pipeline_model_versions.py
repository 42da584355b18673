"""Version bookkeeping: which version a build writes, which it replaces, what the config lists."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from pipeline.model_dir import ModelDir, write_json
from pipeline.model_versions import VersionEntry, VersionRecord
from pipeline.recommender.config import RecommenderPipelineSettings
from pipeline.recommender.triton_config import render_config
from pipeline.version_store import load_record, retire, save_record


def entry(build_id: str) -> VersionEntry:
    return VersionEntry(build_id=build_id, input_fingerprint=f"inputs-of-{build_id}")


def test_the_first_build_serves_as_version_1() -> None:
    outcome = VersionRecord().with_build(entry("aaa"))
    assert (outcome.version, outcome.is_new, outcome.retired) == (1, True, ())
    assert (outcome.record.serving, outcome.record.candidate, outcome.record.kept()) == (1, None, [1])


def test_the_same_build_id_writes_nothing() -> None:
    record = VersionRecord().with_build(entry("aaa")).record
    again = record.with_build(entry("aaa"))
    assert (again.version, again.is_new, again.record) == (1, False, record)


def test_a_new_build_id_is_the_next_version_as_candidate_and_the_serving_one_stays() -> None:
    record = VersionRecord().with_build(entry("aaa")).record
    outcome = record.with_build(entry("bbb"))
    assert (outcome.version, outcome.is_new, outcome.retired) == (2, True, ())
    assert (outcome.record.serving, outcome.record.candidate) == (1, 2)
    assert outcome.record.build_id(1) == "aaa" and outcome.record.build_id(2) == "bbb"


def test_a_newer_candidate_replaces_an_unpromoted_one_and_numbers_are_never_reused() -> None:
    record = VersionRecord().with_build(entry("aaa")).record.with_build(entry("bbb")).record
    outcome = record.with_build(entry("ccc"))
    assert (outcome.version, outcome.retired) == (3, (2,))
    assert (outcome.record.serving, outcome.record.candidate, outcome.record.kept()) == (1, 3, [1, 3])
    dropped, retired = outcome.record.without_candidate()
    assert retired == (3,) and dropped.with_build(entry("ddd")).version == 4


def test_promotion_keeps_the_serving_version_as_previous_and_retires_the_older_one() -> None:
    record = VersionRecord().with_build(entry("aaa")).record.with_build(entry("bbb")).record
    promoted, retired = record.promoted()
    assert (promoted.serving, promoted.previous, promoted.candidate, retired) == (2, 1, None, ())
    third, retired = promoted.with_build(entry("ccc")).record.promoted()
    assert (third.serving, third.previous, third.kept(), retired) == (3, 2, [2, 3], (1,))
    without_previous, retired = promoted.with_build(entry("ddd")).record.promoted(keep_previous=False)
    assert (without_previous.kept(), retired) == ([3], (1, 2))


def test_rebuilding_the_previous_version_makes_it_the_candidate_again() -> None:
    promoted, _ = VersionRecord().with_build(entry("aaa")).record.with_build(entry("bbb")).record.promoted()
    outcome = promoted.with_build(entry("aaa"))
    assert (outcome.version, outcome.is_new) == (1, False)
    assert (outcome.record.serving, outcome.record.candidate, outcome.record.previous) == (2, 1, None)


def test_building_with_serve_promotes_at_once() -> None:
    record = VersionRecord().with_build(entry("aaa")).record
    outcome = record.with_build(entry("bbb"), serve=True)
    assert (outcome.version, outcome.record.serving, outcome.record.previous) == (2, 2, 1)


def test_nothing_to_promote_or_drop_is_an_error() -> None:
    record = VersionRecord().with_build(entry("aaa")).record
    with pytest.raises(LookupError, match="no candidate"):
        record.promoted()
    with pytest.raises(LookupError, match="no candidate"):
        record.without_candidate()


def test_a_record_whose_roles_disagree_with_its_versions_is_refused() -> None:
    with pytest.raises(ValidationError, match="exactly the ones with a role"):
        VersionRecord(serving=1, last_version=2, versions={1: entry("aaa"), 2: entry("bbb")})
    with pytest.raises(ValidationError, match="two roles"):
        VersionRecord(serving=1, candidate=1, last_version=1, versions={1: entry("aaa")})
    with pytest.raises(ValidationError, match="last_version"):
        VersionRecord(serving=3, last_version=2, versions={3: entry("aaa")})


def test_the_config_lists_the_kept_versions_and_each_ones_build_id() -> None:
    record = VersionRecord().with_build(entry("aaa")).record.with_build(entry("bbb")).record
    text = render_config(RecommenderPipelineSettings(), record, "artifacts")
    assert "version_policy: { specific: { versions: [ 1, 2 ] } }" in text
    for key, value in (("build_id", "aaa"), ("serving_version", "1"), ("build_id.1", "aaa"), ("build_id.2", "bbb")):
        assert f'key: "{key}"\n    value {{ string_value: "{value}" }}' in text


def test_the_record_round_trips_and_a_pre_versions_build_serves_as_version_1(tmp_path) -> None:
    model = ModelDir(tmp_path, "recommender")
    assert load_record(model) == VersionRecord()
    model.artifacts_dir.mkdir(parents=True)
    write_json(model.manifest_file, {"build_id": "legacy", "input_fingerprint": "f"})
    legacy = load_record(model)
    assert (legacy.serving, legacy.build_id(1), legacy.versions[1].input_fingerprint) == (1, "legacy", "f")
    record = legacy.with_build(entry("bbb")).record
    save_record(model, record)
    assert load_record(model) == record


def test_retiring_deletes_a_version_but_only_the_artifacts_of_the_tracked_sources(tmp_path) -> None:
    model = ModelDir(tmp_path, "recommender")
    for version in (1, 2):
        (model.at_version(version).artifacts_dir).mkdir(parents=True)
        (model.at_version(version).version_dir / "model.py").write_text("# source\n")
    retire(model, [1, 2], tracked_dir=model.at_version(1).version_dir)
    assert not model.at_version(2).version_dir.exists()
    assert (model.at_version(1).version_dir / "model.py").is_file() and not model.at_version(1).artifacts_dir.exists()


def test_a_record_another_writer_changed_is_read_tolerantly_and_its_extra_keys_survive(tmp_path) -> None:
    # As a rollout tool might leave it: no last_version, previous pointing at the serving version,
    # a rolled-back version without a role, and keys of its own.
    model = ModelDir(tmp_path, "recommender")
    model.path.mkdir(parents=True)
    (model.path / "versions.json").write_text(json.dumps({
        "serving": "2", "candidate": None, "previous": "2", "rolled_back_at": "2026-11-26T07:00:00+00:00",
        "versions": {"1": {"build_id": "aaa"}, "2": {"build_id": "bbb", "traffic": "serving"}},
    }))  # fmt: skip
    record = load_record(model)
    assert (record.serving, record.previous, record.kept(), record.last_version) == (2, None, [2], 2)
    assert record.with_build(entry("ccc")).version == 3  # numbers are not reused: 1 existed
    save_record(model, record)
    saved = json.loads((model.path / "versions.json").read_text())
    assert saved["rolled_back_at"] == "2026-11-26T07:00:00+00:00" and saved["versions"]["2"]["traffic"] == "serving"
