"""Money figures of the benchmark, priced by the one pricing function (``costing.cost.price_request``)."""

from __future__ import annotations

from costing.cost import NS_PER_HOUR, Usage, price_request
from costing.price_book import PriceBook

PER = 1000  # requests


def compute_cost_per_1k(book: PriceBook, pool: str, compute_ns_per_request: float) -> float:
    """USD per 1,000 requests for the model compute alone (what direct Triton would be billed)."""
    usage = Usage(pool=pool, model_compute_ns=int(round(compute_ns_per_request)), gateway_cpu_ns=0, cache_ops=0)
    return price_request(usage, book).total * PER


def gateway_cpu_ns(book: PriceBook, gateway_cost_usd: float) -> float:
    """The gateway CPU time that a ``cost.gateway`` amount stands for (inverse of its price)."""
    return gateway_cost_usd / book.gateway.usd_per_vcpu_hour * NS_PER_HOUR
