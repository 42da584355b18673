"""The costing's settings, read from ``TOLLGATE_*`` environment variables.

Costing owns these fields: the price book, the ledger, the reconciliation, the cost metrics
and the budgets. The gateway's ``Settings`` extends ``CostingSettings``, so one environment
configures both and ``tollgate cost`` reads the same variables as the gateway.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from costing.budgets import BudgetConfig
from costing.ledger import sqlite_url

# The checkout (or installation) root: the default ledger lives in its var/, as local runs expect.
_ROOT = Path(__file__).resolve().parent.parent


class CostingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOLLGATE_", env_file=None, extra="ignore")

    # --- price book and ledger ------------------------------------------------------------
    price_book_path: Path = Field(
        _ROOT / "costing" / "price_book.toml", description="Price book that turns compute into money."
    )
    ledger_path: Path = Field(_ROOT / "var" / "ledger.sqlite", description="SQLite cost ledger.")
    ledger_flush_interval_s: float = Field(
        1.0, gt=0, description="How often buffered cost records are written to the ledger."
    )

    ledger_commit_before_answer: bool = Field(
        False,
        description="Answer a call only once its cost record is written (group commit), so a killed "
        "gateway loses no record a caller was given; costs one ledger write per batch of concurrent calls.",
    )

    ledger_journal_path: Path | None = Field(
        None,
        description="Local append-only journal that takes cost records while the ledger database fails "
        "(replayed when it recovers); best on another disk than a SQLite ledger. Empty: beside ledger_path.",
    )
    ledger_fail_open: bool = Field(
        False,
        description="When neither the ledger nor its journal can take records: false (default) refuses new "
        "calls with UNAVAILABLE and reports NOT_SERVING until they can; true keeps serving, with the "
        "records waiting in memory (at most ledger_max_pending; older ones are dropped and counted).",
    )
    ledger_max_pending: int = Field(
        100_000, ge=1, description="Cost records kept in memory while they cannot be written."
    )

    # --- cost accounting (ledger backend, reconciliation, metrics, budgets) ---------------------
    ledger_url: str | None = Field(
        None,
        description="Cost ledger database: sqlite:///relative/path, sqlite:////absolute/path, or "
        "postgresql://user@host:5432/db (shared by several gateway replicas). Empty: SQLite at ledger_path.",
    )
    ledger_schema: str | None = Field(
        None, description="PostgreSQL schema of the ledger (empty: the connection's search_path)."
    )
    reconciliation_enabled: bool = Field(
        True, description="Reconcile each pool per window against Triton's statistics and persist the windows."
    )
    reconciliation_window_s: float = Field(
        60.0,
        gt=0,
        description="Length of a booked window (aligned to the clock from the epoch, so replicas agree; "
        "choose a divisor of a day so that no window straddles two days).",
    )
    reconciliation_grace_s: float = Field(
        5.0,
        ge=0,
        description="Wait after a window ends before reconciling it, so every replica has flushed its records "
        "(keep above 2 x ledger_flush_interval_s, below reconciliation_window_s).",
    )
    reconciliation_tolerance: float = Field(
        0.02, gt=0, description="Share of a Triton charge's used compute left unmetered by requests above which it is logged."
    )
    egress_path: str = Field(
        "",
        description="Network path of this listener's answers to its callers, a price-book egress path "
        "(same_zone, cross_zone, internet); empty: the price book's default_path (in-cluster callers).",
    )
    egress_paths: dict[str, str] = Field(
        default_factory=dict,
        description='Per-tenant egress path, as JSON, e.g. {"shop-uk":"internet"}: tenants that call from elsewhere.',
    )
    metrics_port: int = Field(0, ge=0, description="Prometheus /metrics port of the cost counters; 0 = off.")
    metrics_host: str = Field("127.0.0.1", description="Address the Prometheus exporter listens on.")
    budgets: list[BudgetConfig] = Field(
        default_factory=list,
        description="Monthly budgets as JSON, e.g. "
        '[{"scope":"feature","name":"home_feed","usd_per_month":50,"shed":true},'
        '{"scope":"tenant","name":"shop-uk","usd_per_month":200,"basis":"fully_loaded"}] '
        "(basis: direct, the default, or fully_loaded).",
    )
    budget_alert_ratios: list[float] = Field(
        [0.8, 1.0], description="Shares of a budget at which an alert is raised (log + metric)."
    )
    budget_refresh_s: float = Field(
        30.0, gt=0, description="How often month-to-date spend is re-read from the (shared) ledger."
    )

    def effective_ledger_url(self) -> str:
        """The ledger these settings name: ``ledger_url``, else SQLite at ``ledger_path``."""
        return self.ledger_url or sqlite_url(self.ledger_path)

    def effective_journal_path(self) -> Path:
        """``ledger_journal_path``, else ``ledger-journal.jsonl`` beside ``ledger_path``."""
        return self.ledger_journal_path or self.ledger_path.with_name("ledger-journal.jsonl")


@lru_cache(maxsize=1)
def get_costing_settings() -> CostingSettings:
    """The process-wide costing settings, read once from the environment."""
    return CostingSettings()
