"""The local stack's own settings: the same TOLLGATE_* variables as before, defaults in the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.local.settings import REPO_ROOT, LocalStackSettings
from gateway.settings import Settings

VARIABLES = {"run_dir": "TOLLGATE_RUN_DIR", "model_repository": "TOLLGATE_MODEL_REPOSITORY", "data_dir": "TOLLGATE_DATA_DIR"}


def test_paths_come_from_their_tollgate_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for field, variable in VARIABLES.items():
        monkeypatch.setenv(variable, str(tmp_path / field))
    monkeypatch.setenv("TOLLGATE_PORT", "50099")  # a gateway setting: ignored here
    settings = LocalStackSettings()
    assert {field: getattr(settings, field) for field in VARIABLES} == {field: tmp_path / field for field in VARIABLES}


def test_defaults_are_the_repositorys_own_folders(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in VARIABLES.values():
        monkeypatch.delenv(variable, raising=False)
    settings = LocalStackSettings()
    assert settings.run_dir == REPO_ROOT / "var"
    assert settings.model_repository == REPO_ROOT / "model_repo"
    assert (REPO_ROOT / "deploy" / "local" / "settings.py").is_file()


def test_the_gateway_does_not_read_the_local_stacks_paths() -> None:
    assert not set(VARIABLES) & set(Settings.model_fields)
