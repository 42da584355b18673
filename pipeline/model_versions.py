"""Which versions of a model exist, which one serves, and what a new build does to them.

A model directory keeps at most three numbered versions: the **serving** one, a **candidate**
(built, not promoted yet) and the **previous** serving one (kept for a rollback). Their record
is ``<repository>/<model>/versions.json`` (Triton ignores files of a model directory that are
not numbered directories)::

    {"serving": "1", "candidate": "2", "previous": null, "last_version": 2,
     "versions": {"1": {"build_id": "5dd24c307ff2", "built_at": "…", "input_fingerprint": "…",
                        "eval": {"recall_at_10": …, "ndcg_at_10": …, …}, "data": {"dataset": "…", "sha256": "…", …}},
                  "2": {…}}}

(version numbers are strings in the file, as in the rollout contract the gateway reads; ints here).

Rules (:meth:`VersionRecord.with_build`):

- the first build of a model writes version 1, which serves;
- a build whose build_id equals a kept version's is that version again: nothing new is written
  (same inputs give the same build_id, so rebuilding is idempotent); the previous version,
  rebuilt, becomes the candidate again;
- any other build writes version ``last_version + 1`` as the candidate, replacing an older
  candidate that was never promoted; the serving version stays;
- :meth:`VersionRecord.promoted` makes the candidate serve and keeps the serving one as previous
  (the older previous is retired).

Version numbers are never reused (``last_version`` only grows), so a version number names one
build for the life of the repository. The record is pure data; :mod:`pipeline.version_store`
reads and writes it beside the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, field_serializer, model_validator

VERSIONS_FILE = "versions.json"
FIRST_VERSION = 1


class Role(str, Enum):
    serving = "serving"
    candidate = "candidate"
    previous = "previous"


class VersionEntry(BaseModel):
    # extra="allow": keys another writer (the gateway's rollout) adds survive a rewrite.
    model_config = ConfigDict(frozen=True, extra="allow")

    build_id: str = Field(min_length=1)
    built_at: str = ""
    input_fingerprint: str = ""
    eval: dict = Field(default_factory=dict, description="The version's headline figures (its eval.json has all).")
    data: dict = Field(default_factory=dict, description="What it was trained on: dataset, sha256, date range.")


class VersionRecord(BaseModel):
    """The kept versions of one model and their roles; ``versions`` holds exactly the kept ones."""

    model_config = ConfigDict(frozen=True, extra="allow")

    serving: int | None = None
    candidate: int | None = None
    previous: int | None = None
    last_version: int = Field(0, ge=0)
    versions: dict[int, VersionEntry] = Field(default_factory=dict)

    @field_serializer("serving", "candidate", "previous")
    def _version_as_text(self, version: int | None) -> str | None:
        return None if version is None else str(version)

    @model_validator(mode="after")
    def _roles_name_kept_versions(self) -> VersionRecord:
        roles = {role.value: getattr(self, role.value) for role in Role}
        named = [version for version in roles.values() if version is not None]
        if len(named) != len(set(named)):
            raise ValueError(f"one version holds two roles: {roles}")
        if set(named) != set(self.versions):
            raise ValueError(f"versions {sorted(self.versions)} must be exactly the ones with a role: {roles}")
        if (self.candidate is not None or self.previous is not None) and self.serving is None:
            raise ValueError("a candidate or previous version without a serving one")
        if named and max(named) > self.last_version:
            raise ValueError(f"last_version {self.last_version} is below version {max(named)}")
        return self

    # --- reading ---------------------------------------------------------------------------------

    def kept(self) -> list[int]:
        """The versions on disk, ascending: what the config's ``version_policy`` lists."""
        return sorted(self.versions)

    def role_of(self, version: int) -> Role | None:
        return next((role for role in Role if getattr(self, role.value) == version), None)

    def version_of(self, build_id: str) -> int | None:
        return next((version for version, entry in self.versions.items() if entry.build_id == build_id), None)

    def build_id(self, version: int) -> str:
        return self.versions[version].build_id

    @property
    def serving_build_id(self) -> str:
        if self.serving is None:
            raise LookupError("no version serves yet")
        return self.build_id(self.serving)

    # --- transitions (each returns a new record and the versions to delete) -------------------

    def _with(self, **changes: object) -> VersionRecord:
        """A validated copy (``model_copy`` would skip the validation)."""
        return VersionRecord(**{**dict(self), **changes})

    def with_build(self, entry: VersionEntry, *, serve: bool = False) -> BuildOutcome:
        """Where a build of ``entry.build_id`` goes; ``serve`` promotes it at once (a local workflow)."""
        existing = self.version_of(entry.build_id)
        if existing is not None and existing == self.previous:  # rebuilt the one served before: it is a candidate again
            retired = (self.candidate,) if self.candidate is not None else ()
            versions = {v: e for v, e in self.versions.items() if v not in retired}
            record = self._with(candidate=existing, previous=None, versions=versions)
            outcome = BuildOutcome(record, existing, retired=retired, is_new=False)
            return outcome.then_promoted() if serve else outcome
        if existing is not None:
            outcome = BuildOutcome(self, existing, retired=(), is_new=False)
            return outcome.then_promoted() if serve and existing == self.candidate else outcome
        if self.serving is None:
            version = self.last_version + 1
            record = VersionRecord(serving=version, last_version=version, versions={version: entry})
            return BuildOutcome(record, version, retired=(), is_new=True)
        version = self.last_version + 1
        retired = (self.candidate,) if self.candidate is not None else ()
        versions = {v: e for v, e in self.versions.items() if v not in retired}
        versions[version] = entry
        record = self._with(candidate=version, last_version=version, versions=versions)
        outcome = BuildOutcome(record, version, retired=retired, is_new=True)
        return outcome.then_promoted() if serve else outcome

    def promoted(self, keep_previous: bool = True) -> tuple[VersionRecord, tuple[int, ...]]:
        """The candidate serves, the serving version becomes previous (or is retired)."""
        if self.candidate is None:
            raise LookupError("there is no candidate to promote")
        retired = [v for v in (self.previous,) if v is not None]
        previous = self.serving if keep_previous else None
        if not keep_previous and self.serving is not None:
            retired.append(self.serving)
        versions = {v: e for v, e in self.versions.items() if v not in retired}
        record = self._with(serving=self.candidate, candidate=None, previous=previous, versions=versions)
        return record, tuple(retired)

    def without_candidate(self) -> tuple[VersionRecord, tuple[int, ...]]:
        """Drops the candidate (a refused build)."""
        if self.candidate is None:
            raise LookupError("there is no candidate to drop")
        versions = {v: e for v, e in self.versions.items() if v != self.candidate}
        return self._with(candidate=None, versions=versions), (self.candidate,)


@dataclass(frozen=True)
class BuildOutcome:
    record: VersionRecord
    version: int  # the version holding the build
    retired: tuple[int, ...]  # versions to delete from disk
    is_new: bool  # False: the build_id was already kept; nothing is written

    def then_promoted(self) -> BuildOutcome:
        record, retired = self.record.promoted()
        return BuildOutcome(record, self.version, self.retired + retired, self.is_new)
