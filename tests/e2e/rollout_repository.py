"""The rollout tests' model repository (deploy/local/versioned_repository.py): version 1 the
project's build, 2 a copy of it with its own build id, 3 a copy whose model fails every call
(a candidate broken at run time); Triton loads 1 and 2 at start."""

from __future__ import annotations

from pathlib import Path

from deploy.local.versioned_repository import MODEL, SERVING, build_versioned_repository

__all__ = ["BROKEN_CANDIDATE", "GOOD_CANDIDATE", "MODEL", "SERVING", "rollout_repository"]

GOOD_CANDIDATE, BROKEN_CANDIDATE = "2", "3"
CANDIDATE_BUILDS = {GOOD_CANDIDATE: "rollout-test-v2", BROKEN_CANDIDATE: "rollout-test-v3"}


def rollout_repository(source: Path, target: Path) -> dict[str, str]:
    return build_versioned_repository(
        source, target, CANDIDATE_BUILDS, kept=(SERVING, GOOD_CANDIDATE), broken=(BROKEN_CANDIDATE,)
    )
