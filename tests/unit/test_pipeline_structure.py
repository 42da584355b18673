"""The pipeline's boundaries: offline code only, one CLI for both models, fingerprints that see their shared code."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
from typer.testing import CliRunner

from pipeline import __main__ as cli
from pipeline.model_dir import BuildResult
from pipeline.recommender import fingerprint as recommender_fingerprint
from pipeline.search import fingerprint as search_fingerprint
from pipeline.settings import PipelineSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
PIPELINE_DIR = REPO_ROOT / "pipeline"
RUNTIME_PACKAGES = ("gateway", "deploy", "costing", "benchmarks")


def imported_modules(path: Path) -> set[str]:
    """Absolute module names a file imports (``from a import b`` counts as ``a`` and ``a.b``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def shared_modules_imported_by(package: str) -> set[str]:
    """The ``pipeline/<module>.py`` modules a model package imports, directly or through each other."""
    pending, shared = sorted((PIPELINE_DIR / package).glob("*.py")), set()
    while pending:
        for name in imported_modules(pending.pop()):
            parts = name.split(".")
            if parts[0] == "pipeline" and len(parts) > 1 and parts[1] not in shared:
                if (PIPELINE_DIR / f"{parts[1]}.py").is_file():
                    shared.add(parts[1])
                    pending.append(PIPELINE_DIR / f"{parts[1]}.py")
    return shared


def test_the_offline_build_imports_no_runtime_code() -> None:
    offenders = sorted(
        f"{path.relative_to(REPO_ROOT)} imports {name}"
        for path in PIPELINE_DIR.rglob("*.py")
        for name in imported_modules(path)
        if name.split(".")[0] in RUNTIME_PACKAGES
    )
    assert offenders == []


@pytest.mark.parametrize(
    ("package", "fingerprint"), [("recommender", recommender_fingerprint), ("search", search_fingerprint)]
)
def test_each_fingerprint_covers_the_shared_modules_its_package_imports(package: str, fingerprint: ModuleType) -> None:
    assert set(fingerprint.SHARED_MODULES) == shared_modules_imported_by(package)
    fingerprinted = set(fingerprint.source_files())
    assert {PIPELINE_DIR / f"{module}.py" for module in fingerprint.SHARED_MODULES} <= fingerprinted
    assert set((PIPELINE_DIR / package).glob("*.py")) <= fingerprinted


def test_paths_come_from_the_project_wide_environment_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TOLLGATE_DATA_DIR", raising=False)
    monkeypatch.delenv("TOLLGATE_MODEL_REPOSITORY", raising=False)
    defaults = PipelineSettings()
    assert defaults.data_dir == REPO_ROOT.parent / "shared" / "data"
    assert defaults.model_repository == REPO_ROOT / "model_repo"

    monkeypatch.setenv("TOLLGATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TOLLGATE_MODEL_REPOSITORY", str(tmp_path / "repo"))
    monkeypatch.setenv("TOLLGATE_PORT", "1")  # another component's variable: ignored
    configured = PipelineSettings()
    assert (configured.data_dir, configured.model_repository) == (tmp_path / "data", tmp_path / "repo")


@pytest.fixture
def recorded_builds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[str, bool]]:
    """Replaces both builds by fakes that record (model, force) and report a tiny eval.json."""
    calls: list[tuple[str, bool]] = []
    eval_file = tmp_path / "eval.json"
    eval_file.write_text(json.dumps({"build_id": "aaaaaaaaaaaa"}))

    paths = SimpleNamespace(eval_file=eval_file)

    def fake(model: cli.Model):
        def run(force: bool = False) -> BuildResult:
            calls.append((model.value, force))
            return BuildResult(paths=paths, manifest={"build_id": "aaaaaaaaaaaa"}, reused=not force)

        return run, lambda evaluation, reused: []

    monkeypatch.setattr(cli, "BUILDS", {model: fake(model) for model in cli.Model})
    return calls


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["build"], [("recommender", False), ("search", False)]),
        (["build", "--force"], [("recommender", True), ("search", True)]),
        (["build", "search"], [("search", False)]),
        (["build", "recommender", "--force"], [("recommender", True)]),
    ],
)
def test_one_command_builds_one_model_or_both_recommender_first(recorded_builds, arguments, expected) -> None:
    result = CliRunner().invoke(cli.app, arguments)
    assert result.exit_code == 0, result.output
    assert recorded_builds == expected


def test_an_unknown_model_is_refused(recorded_builds) -> None:
    result = CliRunner().invoke(cli.app, ["build", "ranker"])
    assert result.exit_code == 2
    assert recorded_builds == []
