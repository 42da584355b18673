"""Builds the router from the settings' pools and the price book's labels for them."""

from __future__ import annotations

from collections.abc import Callable

from costing.price_book import PriceBook
from gateway.outlier_detection import OutlierDetector
from gateway.pool import Endpoint, Pool
from gateway.retry_budget import RetryBudget
from gateway.router import Router
from gateway.settings import Settings
from gateway.triton_model import RowsPolicy


def build_router(
    settings: Settings, book: PriceBook, model_names: list[str], on_ejection: Callable[[Endpoint], None] | None = None
) -> Router:
    pools = []
    rows_policy = RowsPolicy(
        settings.triton_max_rows_per_call, settings.triton_busy_requests, settings.triton_max_row_wait_s
    )
    for rank, config in enumerate(settings.effective_pools()):
        entry = book.pool(config.name)  # an unknown pool fails here, at start-up, naming the known ones
        endpoints = [
            Endpoint(
                url,
                config.name,
                entry.device,
                model_names,
                OutlierDetector(
                    settings.outlier_consecutive_failures,
                    settings.outlier_base_ejection_s,
                    settings.outlier_max_ejection_s,
                ),
                settings.triton_max_reconnect_backoff_s,
                rows_policy,
            )
            for url in config.endpoints
        ]
        pools.append(
            Pool(
                name=config.name,
                device=entry.device,
                location=entry.location,
                usd_per_hour=entry.usd_per_unit_hour,
                rank=rank,
                max_in_flight=config.max_in_flight,
                endpoints=endpoints,
                latency_memory_s=settings.latency_memory_s,
            )
        )
    budget = RetryBudget(
        settings.retry_budget_ratio, settings.retry_budget_min_per_window, settings.retry_budget_window_s
    )
    return Router(
        pools,
        settings.routing_policy,
        settings.latency_objective_ms,
        budget,
        settings.max_attempts,
        call_timeout_s=settings.triton_call_timeout_s,
        max_ejection_percent=settings.outlier_max_ejection_percent,
        on_ejection=on_ejection,
    )
