"""The one typed settings object of the gateway, read from ``TOLLGATE_*`` environment variables.

Every knob the gateway and its costing use lives here, with its default and why. Where the
local stack keeps its files is deploy/local/settings.py's business, and the model builds'
paths are the pipeline's own.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from costing.budgets import BudgetConfig

REPO_ROOT = Path(__file__).resolve().parent.parent


class PoolConfig(BaseModel):
    """A pool: Triton endpoints serving the same model repository on one kind of device.
    Its device kind, location (private/public) and price come from the price-book entry of
    the same name."""

    name: str = Field(description="Price-book pool name, e.g. 'gpu-local' or 'cpu-local'.")
    endpoints: list[str] = Field(min_length=1, description="Triton gRPC addresses (host:port).")
    max_in_flight: int = Field(64, ge=1, description="Calls in flight to this pool before it counts as full.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOLLGATE_", env_file=None, extra="ignore")

    # --- gRPC front door ---------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address the gateway listens on.")
    port: int = Field(50051, description="gRPC port of the gateway.")
    default_deadline_s: float = Field(
        2.0, gt=0, description="Deadline applied to the Triton call when the caller sends none."
    )
    tenant_metadata_key: str = Field(
        "x-tenant-id", description="Request metadata key that carries the tenant for cost attribution."
    )
    default_tenant: str = Field("unattributed", description="Tenant recorded when the caller sends none.")

    # --- request limits (validation) -----------------------------------------------------
    max_k: int = Field(200, ge=1, description="Largest k a caller may ask for.")
    max_exclude_item_ids: int = Field(1000, ge=0, description="Longest exclude_item_ids list accepted.")
    max_id_length: int = Field(64, ge=1, description="Longest user or item id accepted, in bytes.")
    max_query_chars: int = Field(
        256, ge=1, description="Longest search query accepted (the encoder reads its first 64 tokens)."
    )

    # --- Triton pools and routing ---------------------------------------------------------------
    pools: list[PoolConfig] = Field(
        default_factory=list,
        description="Pools as JSON, e.g. "
        '[{"name":"gpu-local","endpoints":["10.0.0.5:8001"]},{"name":"cpu-local","endpoints":["127.0.0.1:8001"]}]. '
        "Empty: one pool named pool_name at triton_url.",
    )
    triton_url: str = Field("127.0.0.1:8001", description="Triton address of the single pool when pools is empty.")
    pool_name: str = Field("cpu-local", description="Price-book pool of triton_url when pools is empty.")
    routing_policy: Literal["gpu_first", "cheapest_within_slo"] = Field(
        "gpu_first", description="How a pool is chosen per call (see gateway/routing_policy.py)."
    )
    latency_objective_ms: float = Field(
        50.0, gt=0, description="Latency objective of cheapest_within_slo, on the pools' recent latency."
    )
    latency_memory_s: float = Field(
        5.0, gt=0, description="A pool's observed latency is forgotten after this long without calls there, "
        "so a pool once too slow for the objective is tried again.",
    )
    max_attempts: int = Field(3, ge=1, description="Attempts per call across pools (1 = no retry).")
    retry_budget_ratio: float = Field(0.2, ge=0, description="Retries at most this share of recent requests...")
    retry_budget_min_per_window: int = Field(10, ge=0, description="...but always this many per window.")
    retry_budget_window_s: float = Field(10.0, gt=0, description="Window of the retry budget.")
    outlier_consecutive_failures: int = Field(
        3, ge=1, description="Consecutive unavailable/timed-out calls that eject an endpoint."
    )
    outlier_base_ejection_s: float = Field(2.0, gt=0, description="First ejection; doubles on each repeat.")
    outlier_max_ejection_s: float = Field(30.0, gt=0, description="Longest ejection.")
    triton_max_reconnect_backoff_s: float = Field(
        1.0, gt=0, description="Longest wait between reconnects to a Triton that went away (gRPC's default is 120 s)."
    )
    recommender_model: str = Field("recommender", description="Triton model that answers Recommend.")
    search_model: str = Field("product_search", description="Triton model (ensemble) that answers Search.")
    readiness_poll_s: float = Field(
        1.0, gt=0, description="How often the gateway re-checks Triton server and model readiness."
    )

    # --- Redis cache --------------------------------------------------------------------
    cache_enabled: bool = Field(True, description="Turn the result cache off (benchmarks, debugging).")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis used as the result cache.")
    cache_prefix: str = Field("tollgate:", description="Key prefix of every cache entry.")
    cache_ttl_s: int = Field(300, ge=1, description="Lifetime of a cached answer, in seconds.")
    cache_timeout_s: float = Field(
        0.05, gt=0, description="Budget of one cache operation; past it the request goes uncached."
    )

    # --- costing --------------------------------------------------------------------------
    price_book_path: Path = Field(
        REPO_ROOT / "costing" / "price_book.toml", description="Price book that turns compute into money."
    )
    ledger_path: Path = Field(REPO_ROOT / "var" / "ledger.sqlite", description="SQLite cost ledger.")
    ledger_flush_interval_s: float = Field(
        1.0, gt=0, description="How often buffered cost records are written to the ledger."
    )

    ledger_commit_before_answer: bool = Field(
        False,
        description="Answer a call only once its cost record is written (group commit), so a killed "
        "gateway loses no record a caller was given; costs one ledger write per batch of concurrent calls.",
    )

    # --- costing: cost accounting (ledger backend, reconciliation, metrics, budgets) ----------
    # Owned by costing/ (see costing/accounting.py); only ever added to.
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
        60.0, gt=0, description="Length of a reconciliation window (aligned to the clock, so replicas agree)."
    )
    reconciliation_grace_s: float = Field(
        5.0,
        ge=0,
        description="Wait after a window ends before reconciling it, so every replica has flushed its records "
        "(keep above 2 x ledger_flush_interval_s, below reconciliation_window_s).",
    )
    reconciliation_tolerance: float = Field(
        0.02, gt=0, description="Attributed vs Triton compute difference above which a window is flagged."
    )
    metrics_port: int = Field(0, ge=0, description="Prometheus /metrics port of the cost counters; 0 = off.")
    metrics_host: str = Field("127.0.0.1", description="Address the Prometheus exporter listens on.")
    budgets: list[BudgetConfig] = Field(
        default_factory=list,
        description="Monthly budgets as JSON, e.g. "
        '[{"scope":"feature","name":"home_feed","usd_per_month":50,"shed":true},'
        '{"scope":"tenant","name":"shop-uk","usd_per_month":200}].',
    )
    budget_alert_ratios: list[float] = Field(
        [0.8, 1.0], description="Shares of a budget at which an alert is raised (log + metric)."
    )
    budget_refresh_s: float = Field(
        30.0, gt=0, description="How often month-to-date spend is re-read from the (shared) ledger."
    )

    # --- OpenTelemetry ----------------------------------------------------------------------
    tracing_enabled: bool = Field(
        True, description="Spans and their cost attributes; off only to measure what tracing costs."
    )
    trace_exporter: Literal["auto", "none", "otlp", "console", "file"] = Field(
        "auto",
        description="Where spans go. 'auto': OTLP when an OTLP endpoint is configured, else nowhere. "
        "'otlp' also honours the standard OTEL_EXPORTER_OTLP_* variables (headers, certificates, ...).",
    )
    otlp_endpoint: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "TOLLGATE_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"
        ),
        description="OTLP/gRPC collector, e.g. http://otel-collector:4317 (the standard OTEL_ variables work too).",
    )
    trace_file: Path = Field(REPO_ROOT / "var" / "spans.jsonl", description="Span file for trace_exporter=file.")
    service_name: str = Field("tollgate-gateway", description="OpenTelemetry service.name of the gateway.")

    def effective_pools(self) -> list[PoolConfig]:
        return self.pools or [PoolConfig(name=self.pool_name, endpoints=[self.triton_url])]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
