"""Reads and writes a model's :class:`~pipeline.model_versions.VersionRecord` beside it, and deletes retired versions.

A repository built before versions existed has no ``versions.json``: its ``1/`` is read as the
serving version 1. A record another writer changed (the gateway's promote or rollback) is read
tolerantly (:func:`normalised`), and keys this module does not know are kept when it is rewritten. Retiring a version deletes its numbered directory, except the tracked
``model_repo/<model>/1`` (it holds the model's tracked sources): there only ``artifacts/`` goes,
and Triton no longer loads it because the config's ``version_policy`` no longer lists it.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable
from pathlib import Path

from pipeline.model_dir import ARTIFACTS_DIR, ModelDir, read_manifest, write_atomically
from pipeline.model_versions import FIRST_VERSION, VERSIONS_FILE, Role, VersionEntry, VersionRecord

log = logging.getLogger(__name__)


def versions_file(model: ModelDir) -> Path:
    return model.path / VERSIONS_FILE


def load_record(model: ModelDir) -> VersionRecord:
    """The model's record; a pre-versions build in ``1/`` serves as version 1; nothing built: an empty record."""
    path = versions_file(model)
    if path.is_file():
        return VersionRecord.model_validate(normalised(json.loads(path.read_text())))
    legacy = read_manifest(model.at_version(FIRST_VERSION).manifest_file)
    if legacy and legacy.get("build_id"):
        entry = VersionEntry(
            build_id=legacy["build_id"],
            input_fingerprint=legacy.get("input_fingerprint", ""),
            built_at=legacy.get("created_at", ""),
        )
        return VersionRecord(serving=FIRST_VERSION, last_version=FIRST_VERSION, versions={FIRST_VERSION: entry})
    return VersionRecord()


def normalised(payload: dict) -> dict:
    """A record as another writer may leave it (e.g. the gateway's promote or rollback): a role that
    names a version another role already holds is dropped (serving first, then candidate), versions
    without a role are no longer kept, and a missing ``last_version`` is the highest version seen."""
    payload = dict(payload)
    versions = {str(v): entry for v, entry in payload.get("versions", {}).items()}
    taken: set[str] = set()
    for role in (Role.serving, Role.candidate, Role.previous):
        version = payload.get(role.value)
        if version is None:
            continue
        if str(version) in taken or str(version) not in versions:
            log.warning("%s: dropping role %s of version %s (%s)", VERSIONS_FILE, role.value, version,
                        "held by another role" if str(version) in taken else "not among the versions")
            payload[role.value] = None
        else:
            taken.add(str(version))
    for version in sorted(set(versions) - taken):
        log.warning("%s: version %s has no role; it is no longer kept", VERSIONS_FILE, version)
    payload["versions"] = {v: entry for v, entry in versions.items() if v in taken}
    highest = max((int(v) for v in versions), default=0)
    payload["last_version"] = max(int(payload.get("last_version") or 0), highest)
    return payload


def save_record(model: ModelDir, record: VersionRecord) -> None:
    payload = record.model_dump(mode="json")
    write_atomically(versions_file(model), (json.dumps(payload, indent=2) + "\n").encode())


def serving_dir(model: ModelDir) -> ModelDir:
    """``model`` at its serving version (version 1 when nothing is recorded yet)."""
    record = load_record(model)
    return model.at_version(record.serving if record.serving is not None else FIRST_VERSION)


def retire(model: ModelDir, versions: Iterable[int], tracked_dir: Path) -> None:
    """Deletes the retired versions' files (only ``artifacts/`` of the tracked source directory)."""
    for version in versions:
        directory = model.at_version(version).version_dir
        if not directory.exists():
            continue
        if directory.resolve() == tracked_dir.resolve():
            shutil.rmtree(directory / ARTIFACTS_DIR, ignore_errors=True)
        else:
            shutil.rmtree(directory, ignore_errors=True)
        log.info("retired %s version %d", model.name, version)
