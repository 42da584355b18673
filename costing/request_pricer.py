"""What the gateway's settlement needs to price a request beyond the price book: the replica
it runs in, the network path of each tenant's answers, and the overhead share a cache hit saves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fractions import Fraction

from costing.cost import RequestCost, Usage, price_request
from costing.price_book import PriceBook
from costing.records import OriginCharge


class RequestPricer:
    """Prices requests for one gateway replica (``costing.cost.price_request`` underneath)."""

    def __init__(
        self,
        book: PriceBook,
        *,
        replica: str = "",
        egress_path: str = "",
        egress_paths: Mapping[str, str] | None = None,
    ) -> None:
        """``egress_path``: the listener's network path to its callers ("" = the book's
        default); ``egress_paths``: tenant -> path, for tenants that call from elsewhere.
        Raises KeyError for a path the price book does not list."""
        self.book = book
        self.replica = replica
        self._egress_path = egress_path
        self._egress_paths = dict(egress_paths or {})
        for path in (egress_path, *self._egress_paths.values()):
            book.egress.path(path)
        self._overhead: dict[tuple[str, str], Fraction] = {}

    def egress_path(self, tenant: str) -> str:
        return self._egress_paths.get(tenant) or self._egress_path or self.book.egress.default_path

    def overhead_ratio(self, pool: str, model: str) -> Fraction:
        """overhead / direct of ``pool`` and ``model`` in the last booked window seen (0 if none)."""
        return self._overhead.get((pool, model), Fraction(0))

    def learn(self, charges: Iterable[OriginCharge]) -> None:
        """Take the overhead ratios of a booked window's Triton charges."""
        for charge in charges:
            if charge.kind == "compute" and charge.model and charge.direct_pico > 0:
                self._overhead[(charge.pool, charge.model)] = Fraction(charge.overhead_pico, charge.direct_pico)

    def price(self, usage: Usage, model: str) -> RequestCost:
        ratio = self.overhead_ratio(usage.avoided_pool, model) if usage.avoided_pool else Fraction(0)
        return price_request(usage, self.book, avoided_overhead_ratio=ratio)
