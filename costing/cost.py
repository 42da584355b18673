"""The one place where a request's cost is computed.

A request pays for four things: the device time of the model call on its pool, the gateway
CPU spent on it, its cache operations and the bytes of its response (egress, priced by the
network path to its caller). A cache hit runs no model but still pays the gateway, the cache
and its bytes, so it is never a silent zero; what it saved (the compute its cached answer
originally cost, plus that pool's overhead share) is reported separately as ``avoided`` and is
not part of ``total``. Avoided compute on a provisioned pool saves no cash (the pool is paid
anyway), which ``avoided_is_cash`` says.

Amounts are integer pico-units (``costing.money``); each part is rounded once, and ``total``
is the exact sum of the parts. This is the *direct* cost. What each resource spends beyond what
its requests measured (overhead), the capacity nobody used (idle), storage and operations are
origin charges of each window, allocated by ``costing.reconciliation``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from costing.money import NS_PER_HOUR, NS_PER_SECOND, exact, from_pico, pico_of
from costing.price_book import PriceBook

__all__ = ["NS_PER_HOUR", "NS_PER_SECOND", "RequestCost", "Usage", "price_request"]

OPS_PER_MILLION = 1_000_000
BYTES_PER_GB = 1_000_000_000  # egress is priced per decimal GB
_ZERO = Fraction(0)


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
    egress_path: str = ""  # network path of those bytes ("" = the price book's default)

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
    """The price of one request in integer pico-units of ``currency``;
    ``total_pico = compute_pico + gateway_pico + cache_pico + egress_pico``. The float
    properties are for display (metrics, spans, the proto) only."""

    currency: str
    compute_pico: int
    gateway_pico: int
    cache_pico: int
    egress_pico: int
    avoided_pico: int  # compute (+ its overhead share) a cache hit saved; not part of the total
    avoided_is_cash: bool  # False when the avoided compute was on a provisioned pool (paid anyway)
    compute_ns: int
    price_book_version: str
    egress_path: str = ""

    @property
    def total_pico(self) -> int:
        return self.compute_pico + self.gateway_pico + self.cache_pico + self.egress_pico

    total = property(lambda self: from_pico(self.total_pico))
    compute = property(lambda self: from_pico(self.compute_pico))
    gateway = property(lambda self: from_pico(self.gateway_pico))
    cache = property(lambda self: from_pico(self.cache_pico))
    egress = property(lambda self: from_pico(self.egress_pico))
    avoided = property(lambda self: from_pico(self.avoided_pico))


def price_request(usage: Usage, book: PriceBook, *, avoided_overhead_ratio: Fraction = _ZERO) -> RequestCost:
    """Price ``usage`` with ``book``; raises UnknownPoolError for a pool the book does not list
    and KeyError for an unknown egress path. ``avoided_overhead_ratio``: overhead / direct of the
    avoided pool and model in the last booked window (a cache hit also saves that share)."""
    compute = _device_pico(usage.model_compute_ns, usage.pool, book)
    gateway = pico_of(usage.gateway_cpu_ns, exact(book.gateway.usd_per_vcpu_hour), NS_PER_HOUR)
    cache = pico_of(usage.cache_ops, exact(book.cache.usd_per_million_ops), OPS_PER_MILLION)
    path = usage.egress_path or book.egress.default_path
    egress = pico_of(usage.response_bytes, exact(book.egress.path(path).usd_per_gb), BYTES_PER_GB)
    avoided_rate = _per_hour(usage.avoided_pool, book)
    if avoided_overhead_ratio:
        avoided_rate *= 1 + avoided_overhead_ratio
    avoided = pico_of(usage.avoided_compute_ns, avoided_rate, NS_PER_HOUR)
    provisioned = bool(usage.avoided_pool) and book.pool(usage.avoided_pool).provisioned_units > 0
    return RequestCost(
        currency=book.currency,
        compute_pico=compute,
        gateway_pico=gateway,
        cache_pico=cache,
        egress_pico=egress,
        avoided_pico=avoided,
        avoided_is_cash=not provisioned,
        compute_ns=usage.model_compute_ns,
        price_book_version=book.version,
        egress_path=path,
    )


def _per_hour(pool: str, book: PriceBook) -> Fraction:
    if not pool:
        return _ZERO
    return exact(book.pool(pool).usd_per_unit_hour)


def _device_pico(device_ns: int, pool: str, book: PriceBook) -> int:
    # Looked up even for 0 ns, so that a misnamed pool fails loudly on the first request.
    return pico_of(device_ns, _per_hour(pool, book), NS_PER_HOUR)
