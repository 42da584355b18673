"""Costing owns its settings: ``CostingSettings`` reads the same TOLLGATE_* variables the
gateway always read, the gateway's ``Settings`` exposes them unchanged, and costing imports
nothing from the packages above it."""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from costing.budgets import BudgetConfig
from costing.settings import CostingSettings, get_costing_settings
from gateway.settings import REPO_ROOT, Settings

COSTING = REPO_ROOT / "costing"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No TOLLGATE_* variable of the calling shell leaks into these tests."""
    for name in [name for name in os.environ if name.startswith("TOLLGATE_")]:
        monkeypatch.delenv(name)
    get_costing_settings.cache_clear()
    yield
    get_costing_settings.cache_clear()


def test_costing_settings_and_gateway_settings_read_the_same_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    budgets = [
        {"scope": "feature", "name": "home_feed", "usd_per_month": 50, "shed": True},
        {"scope": "tenant", "name": "shop-uk", "usd_per_month": 200},
    ]
    monkeypatch.setenv("TOLLGATE_LEDGER_URL", "postgresql://tollgate@db:5432/tollgate")
    monkeypatch.setenv("TOLLGATE_LEDGER_SCHEMA", "replica_test")
    monkeypatch.setenv("TOLLGATE_BUDGETS", json.dumps(budgets))
    monkeypatch.setenv("TOLLGATE_BUDGET_ALERT_RATIOS", "[0.5, 0.9]")
    monkeypatch.setenv("TOLLGATE_RECONCILIATION_WINDOW_S", "30")
    monkeypatch.setenv("TOLLGATE_METRICS_PORT", "9464")
    monkeypatch.setenv("TOLLGATE_LEDGER_COMMIT_BEFORE_ANSWER", "true")
    monkeypatch.setenv("TOLLGATE_PORT", "50099")  # a gateway field: CostingSettings ignores it

    expected = {
        "ledger_url": "postgresql://tollgate@db:5432/tollgate",
        "ledger_schema": "replica_test",
        "budgets": [BudgetConfig.model_validate(budget) for budget in budgets],
        "budget_alert_ratios": [0.5, 0.9],
        "reconciliation_window_s": 30.0,
        "metrics_port": 9464,
        "ledger_commit_before_answer": True,
    }
    for settings in (CostingSettings(), get_costing_settings(), Settings()):
        assert {name: getattr(settings, name) for name in expected} == expected
        assert settings.effective_ledger_url() == "postgresql://tollgate@db:5432/tollgate"
    assert Settings().port == 50099 and not hasattr(CostingSettings(), "port")


def test_the_effective_ledger_url_defaults_to_sqlite_at_ledger_path(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    for settings in (CostingSettings(ledger_path=path), Settings(ledger_path=path)):
        assert settings.effective_ledger_url() == f"sqlite:///{path.resolve()}"
    assert CostingSettings().ledger_path == REPO_ROOT / "var" / "ledger.sqlite"
    assert CostingSettings().price_book_path == COSTING / "price_book.toml"


def test_the_gateway_settings_take_every_costing_field_unchanged() -> None:
    for name, field in CostingSettings.model_fields.items():
        gateway_field = Settings.model_fields[name]
        assert (gateway_field.default, gateway_field.description) == (field.default, field.description), name
        assert gateway_field.annotation == field.annotation, name


def test_costing_imports_nothing_from_the_packages_above_it() -> None:
    above = {"gateway", "deploy", "pipeline", "benchmarks"}
    offenders = []
    for path in sorted(COSTING.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offenders += [f"{path.relative_to(REPO_ROOT)}: {name}" for name in names if name.split(".")[0] in above]
    assert offenders == []
