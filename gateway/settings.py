"""The one typed settings object of the gateway, read from ``TOLLGATE_*`` environment variables.

The gateway's own knobs live here, with their defaults and why; the costing's own knobs live in
``costing.settings.CostingSettings``, which ``Settings`` extends. Where the local stack keeps its
files is deploy/local/settings.py's business, and the model builds' paths are the pipeline's own.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from costing.settings import CostingSettings
from gateway.tenants import TenantConfig, UndeclaredFeature

REPO_ROOT = Path(__file__).resolve().parent.parent


class PoolConfig(BaseModel):
    """A pool: Triton endpoints serving the same model repository on one kind of device.
    Its device kind, location (private/public) and price come from the price-book entry of
    the same name."""

    name: str = Field(description="Price-book pool name, e.g. 'gpu-local' or 'cpu-local'.")
    endpoints: list[str] = Field(min_length=1, description="Triton gRPC addresses (host:port).")
    max_in_flight: int = Field(64, ge=1, description="Calls in flight to this pool before it counts as full.")


class Settings(CostingSettings):
    """The gateway's settings; the costing's (price book, ledger, reconciliation, metrics,
    budgets) come from ``CostingSettings``, so ``Settings(ledger_path=...)`` still sets them."""

    model_config = SettingsConfigDict(env_prefix="TOLLGATE_", env_file=None, extra="ignore")

    # --- gRPC front door ---------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address the gateway listens on.")
    port: int = Field(50051, description="gRPC port of the gateway.")
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Gateway worker processes sharing the port (SO_REUSEPORT); one per core the gateway may use.",
    )
    worker_index: int = Field(
        0, ge=0, description="Set by `tollgate serve` in each worker it starts (per-worker journal and metrics port)."
    )
    gil_switch_interval_s: float = Field(
        0.0005,
        gt=0,
        le=0.1,
        description="How soon a thread holding the GIL (the ledger's writes, the span exporter) hands it back to the "
        "event loop; Python's default of 5 ms shows in the p99 (sys.setswitchinterval).",
    )
    default_deadline_s: float = Field(
        2.0, gt=0, description="Deadline applied to the Triton call when the caller sends none."
    )
    deadline_margin_s: float = Field(
        0.03, ge=0, description="The gateway stops waiting for the model this long (at most half the time left) before "
        "the caller's deadline, so the caller gets its DEADLINE_EXCEEDED with the request id and cost trailers.",
    )
    reflection_enabled: bool = Field(
        True, description="Serve gRPC reflection (grpcurl without proto files); off in production."
    )
    tls_cert_file: Path | None = Field(None, description="PEM certificate chain of the listener; set with tls_key_file to serve TLS.")
    tls_key_file: Path | None = Field(None, description="PEM private key of the listener.")
    tls_client_ca_file: Path | None = Field(
        None,
        description="PEM CA of client certificates: set, every client must present one (mutual TLS) and a "
        "certificate whose common name is a registered tenant authenticates as that tenant's caller.",
    )

    # --- tenants and access ------------------------------------------------------------------
    tenants: list[TenantConfig] = Field(
        default_factory=list,
        description="Registered tenants and the features each declares, as JSON, e.g. "
        '[{"id":"shop-uk","features":["home_feed","cart_upsell","search_box"]}]. Only these tenants and '
        "features become labels in metrics, spans, budgets and the ledger.",
    )
    undeclared_feature: UndeclaredFeature = Field(
        "reject", description="A feature the tenant did not declare: 'reject' (INVALID_ARGUMENT) or 'other' (counted as other)."
    )
    api_keys_file: Path | None = Field(
        None, description="API key store (tollgate keys ...); callers send 'authorization: Bearer <key>'."
    )
    max_concurrent_calls: int = Field(
        512, ge=1, description="Calls in progress in one gateway above which new ones get RESOURCE_EXHAUSTED at once."
    )
    api_keys_reload_s: float = Field(2.0, gt=0, description="How often the key file is checked for changes.")

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
    outlier_max_ejection_percent: float = Field(
        10.0, gt=0, le=100, description="Most endpoints (in %) ejected at once; at least one may be, never the last (Envoy's rule)."
    )
    triton_call_timeout_s: float = Field(
        1.0, gt=0, description="The gateway's own limit on one Triton call: no answer within it is the endpoint's fault "
        "(counts towards ejecting it, and the call is retried elsewhere if the caller's deadline allows).",
    )
    outlier_base_ejection_s: float = Field(2.0, gt=0, description="First ejection; doubles on each repeat.")
    outlier_max_ejection_s: float = Field(30.0, gt=0, description="Longest ejection.")
    triton_admin_key: SecretStr | None = Field(
        None,
        description="Key of Triton's restricted protocols (statistics, model repository, ...): sent as the "
        "header triton-grpc-protocol-admin-key on the gateway's statistics calls and on the rollout's loads.",
    )
    triton_max_reconnect_backoff_s: float = Field(
        1.0, gt=0, description="Longest wait between reconnects to a Triton that went away (gRPC's default is 120 s)."
    )
    triton_max_rows_per_call: int = Field(
        32, ge=1, description="Most concurrent calls of one model version sent as one Triton request of several rows "
        "(only to a model whose config declares padded_rows, and at most its max_batch_size); 1 = one request per call.",
    )
    triton_busy_requests: int = Field(
        2, ge=1, description="Requests of one model version in flight to an endpoint from which on a new call waits "
        "for a request to return (at most triton_max_row_wait_s) and joins the next request (Nagle's rule: the model is "
        "busy with those, so the wait costs little).",
    )
    triton_max_row_wait_s: float = Field(
        0.005, ge=0, description="Longest such wait; 0 = a call never waits (it still joins the calls of its loop iteration).",
    )
    recommender_model: str = Field("recommender", description="Triton model that answers Recommend.")
    search_model: str = Field("product_search", description="Triton model (ensemble) that answers Search.")
    readiness_poll_s: float = Field(
        1.0, gt=0, description="How often the gateway re-checks Triton server and model readiness."
    )

    # --- model rollout (gateway/rollout.py) ------------------------------------------------------
    rollout_refresh_s: float = Field(
        1.0, gt=0, description="How often each gateway re-reads the rollout state of its models from Redis "
        "(kept as last known while Redis is down).",
    )
    rollout_store_timeout_s: float = Field(1.0, gt=0, description="Budget of one read or write of the rollout state in Redis.")
    rollout_ready_timeout_s: float = Field(
        60.0, gt=0, description="Longest wait for Triton to load a version and for every endpoint to report it ready.",
    )
    rollout_drain_s: float = Field(
        3.0, ge=0, description="After traffic leaves a version (promote, roll back) it is unloaded only this much later, "
        "so calls already sent to it, and replicas that have not re-read the state yet, finish on it.",
    )
    rollout_shadow_max_in_flight: int = Field(
        16, ge=1, description="Shadow calls in flight per gateway; a mirror above it is skipped (counted), never queued.",
    )
    rollout_shadow_max_busy_share: float = Field(
        0.5, gt=0, le=1, description="Shadow calls are made only while the pools' calls in flight are below this share of "
        "their concurrency limits (max_in_flight): the callers' calls keep the capacity they need.",
    )
    rollout_shadow_timeout_s: float = Field(1.0, gt=0, description="Deadline of one shadow call to the candidate.")
    rollout_slo_window_s: float = Field(
        30.0, gt=0, description="Sliding window over which a candidate's error rate and p99 are judged.",
    )
    rollout_slo_min_calls: int = Field(
        20, ge=1, description="Calls of the candidate in the window before its SLOs are judged.",
    )
    rollout_slo_max_error_rate: float = Field(
        0.05, ge=0, le=1, description="Error rate of the candidate above which it is rolled back automatically.",
    )
    rollout_slo_max_p99_ms: float = Field(
        500.0, gt=0, description="p99 latency of the candidate's calls (ms) above which it is rolled back automatically.",
    )
    rollout_slo_check_s: float = Field(
        0.25, gt=0, description="How often at most the candidate's window is judged (it sorts the window's latencies).",
    )

    # --- Redis cache --------------------------------------------------------------------
    cache_enabled: bool = Field(True, description="Turn the result cache off (benchmarks, debugging).")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis used as the result cache.")
    cache_prefix: str = Field("tollgate:", description="Key prefix of every cache entry.")
    cache_ttl_s: int = Field(300, ge=1, description="Lifetime of a cached answer, in seconds.")
    cache_timeout_s: float = Field(
        0.05, gt=0, description="Budget of one cache operation; past it the request goes uncached."
    )
    cache_secret: SecretStr | None = Field(
        None,
        description="Secret (>= 16 bytes) that keys the hash of cache keys and seals cache entries; the same on "
        "every replica. Empty: a random one per process (entries are then neither shared nor kept across restarts).",
    )
    cache_breaker_failures: int = Field(
        3, ge=1, description="Consecutive cache failures after which the cache is skipped for a cool-down."
    )
    cache_breaker_cooldown_s: float = Field(
        5.0, gt=0, description="How long the cache is skipped before one call probes it again."
    )

    # --- OpenTelemetry ----------------------------------------------------------------------
    tracing_enabled: bool = Field(
        True, description="Spans and their cost attributes; off only to measure what tracing costs."
    )
    trace_sample_ratio: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Share of calls without a caller's traceparent that are traced (head sampling). A caller's "
        "traceparent is always followed: sampled, the call is traced; unsampled, it is not. Cost is recorded "
        "whatever the sampling.",
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
    trace_file_max_bytes: int = Field(
        64 * 2**20, ge=1, description="The span file is rotated (spans.jsonl -> spans.jsonl.1) when it would grow past this."
    )
    trace_file_backups: int = Field(
        3, ge=0, description="Rotated span files kept; older ones are deleted, so a run's spans take at most "
        "(backups + 1) x trace_file_max_bytes.",
    )
    service_name: str = Field("tollgate-gateway", description="OpenTelemetry service.name of the gateway.")

    def effective_pools(self) -> list[PoolConfig]:
        return self.pools or [PoolConfig(name=self.pool_name, endpoints=[self.triton_url])]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
