"""The one place where a request's cost is computed.

A request pays for four things: the device time of the model call on its pool, the gateway
CPU spent on it, its cache operations and the bytes of its response (egress). A cache hit runs
no model but still pays the gateway, the cache and its bytes, so it is never a silent zero;
what it saved (the compute its cached answer originally cost) is reported separately as
``avoided`` and is not part of ``total``.

This is the *direct* cost. What a pool spends beyond what its requests measured (overhead),
the capacity nobody used (idle), storage and operations are allocated per window by
``costing.reconciliation``.
"""

from __future__ import annotations

from dataclasses import dataclass

from costing.price_book import PriceBook

NS_PER_SECOND = 1_000_000_000
NS_PER_HOUR = 3_600 * NS_PER_SECOND
OPS_PER_MILLION = 1_000_000
BYTES_PER_GB = 1_000_000_000  # egress is priced per decimal GB


@dataclass(frozen=True)
class Usage:
    """What one request consumed, as measured by the gateway."""

    pool: str  # pool that served the model call ("" when no model ran)
    model_compute_ns: int  # model-measured device time of this request (0 on a cache hit)
    gateway_cpu_ns: int  # gateway CPU time spent on this request
    cache_ops: int  # cache (Redis) operations made for this request
    avoided_compute_ns: int = 0  # on a cache hit: the compute the cached answer originally cost
    avoided_pool: str = ""  # ... and the pool it ran on
    response_bytes: int = 0  # bytes of the response sent to the caller (egress)

    def __post_init__(self) -> None:
        for name in ("model_compute_ns", "gateway_cpu_ns", "cache_ops", "avoided_compute_ns", "response_bytes"):
            if getattr(self, name) < 0:
                raise ValueError(f"Usage.{name} must not be negative, got {getattr(self, name)}")
        if self.model_compute_ns and not self.pool:
            raise ValueError("Usage.model_compute_ns is set but no pool says what it ran on")
        if self.avoided_compute_ns and not self.avoided_pool:
            raise ValueError("Usage.avoided_compute_ns is set but no avoided_pool says what it ran on")


@dataclass(frozen=True)
class RequestCost:
    """The price of one request, in ``currency``; ``total = compute + gateway + cache + egress``."""

    currency: str
    total: float
    compute: float
    gateway: float
    cache: float
    avoided: float  # compute a cache hit saved; not included in total
    compute_ns: int
    price_book_version: str
    egress: float = 0.0


def price_request(usage: Usage, book: PriceBook) -> RequestCost:
    """Price ``usage`` with ``book``; raises UnknownPoolError for a pool the book does not list."""
    compute = _device_cost(usage.model_compute_ns, usage.pool, book)
    gateway = usage.gateway_cpu_ns * book.gateway.usd_per_vcpu_hour / NS_PER_HOUR
    cache = usage.cache_ops * book.cache.usd_per_million_ops / OPS_PER_MILLION
    egress = usage.response_bytes * book.egress.usd_per_gb / BYTES_PER_GB
    avoided = _device_cost(usage.avoided_compute_ns, usage.avoided_pool, book)
    return RequestCost(
        currency=book.currency,
        total=compute + gateway + cache + egress,
        compute=compute,
        gateway=gateway,
        cache=cache,
        avoided=avoided,
        compute_ns=usage.model_compute_ns,
        price_book_version=book.version,
        egress=egress,
    )


def _device_cost(device_ns: int, pool: str, book: PriceBook) -> float:
    if not pool:  # Usage guarantees device_ns == 0 here
        return 0.0
    # Looked up even for 0 ns, so that a misnamed pool fails loudly on the first request.
    return device_ns * book.pool(pool).usd_per_unit_hour / NS_PER_HOUR
