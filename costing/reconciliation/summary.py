"""The origin charges per resource over a range: what they cost, part by part, whether every
charge's identity (capacity = direct + overhead + idle, and its allocated charges adding up to
it) holds to the unit, and the tie-out of the whole range: Σ allocated = Σ origin charges.
``tollgate cost reconciliation`` and ``make demo`` print it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction

from costing.ledger import LedgerBackend
from costing.money import NS_PER_SECOND


@dataclass(frozen=True)
class ResourceSummary:
    """One resource over the booked windows of a range, in pico-units of ``currency``."""

    resource: str
    kind: str
    pool: str
    model: str
    currency: str
    windows: int
    requests: int
    provisioned_pico: int
    capacity_pico: int
    direct_pico: int
    overhead_pico: int
    idle_pico: int
    carry_pico: int  # still carried at the end of the range (<= 0)
    late_direct_pico: int
    usage_quantity: int  # metered by the requests: ns, operations, bytes
    measured_quantity: int | None  # measured by the resource itself (ns), where it measures
    identity_exact: bool

    @property
    def metered_share(self) -> Fraction | None:
        """direct / (direct + overhead): how much of what the resource used the requests metered."""
        used = self.direct_pico + self.overhead_pico
        return Fraction(self.direct_pico, used) if used else None

    @property
    def metered_seconds(self) -> float:
        return self.usage_quantity / NS_PER_SECOND if self.kind in ("compute", "gateway") else 0.0


@dataclass(frozen=True)
class TieOut:
    """Σ fully loaded (every allocated charge) against Σ origin charges, per currency."""

    currency: str
    origin_pico: int
    allocated_pico: int
    direct_pico: int

    @property
    def difference_pico(self) -> int:
        return self.allocated_pico - self.origin_pico


def resource_summary(
    ledger: LedgerBackend, since: dt.datetime | dt.date | None = None, until: dt.datetime | dt.date | None = None
) -> list[ResourceSummary]:
    """Per resource, the origin charges of the windows starting in [since, until)."""
    allocated: dict[tuple[dt.datetime, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for item in ledger.allocated(since, until):
        parts = allocated[(item.window_start, item.resource)]
        parts[0] += item.direct_pico
        parts[1] += item.overhead_pico
        parts[2] += item.idle_pico
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for charge in ledger.charges(since, until):
        groups[(charge.resource, charge.currency)].append(charge)
    result = []
    for (resource, currency), charges in sorted(groups.items()):
        measured = [c.measured_quantity for c in charges if c.measured_quantity is not None]
        last = max(charges, key=lambda c: c.window_start)
        result.append(
            ResourceSummary(
                resource=resource,
                kind=last.kind,
                pool=last.pool,
                model=last.model,
                currency=currency,
                windows=len(charges),
                requests=sum(c.requests for c in charges),
                provisioned_pico=sum(c.provisioned_pico for c in charges),
                capacity_pico=sum(c.capacity_pico for c in charges),
                direct_pico=sum(c.direct_pico for c in charges),
                overhead_pico=sum(c.overhead_pico for c in charges),
                idle_pico=sum(c.idle_pico for c in charges),
                carry_pico=last.carry_pico,
                late_direct_pico=sum(c.late_direct_pico for c in charges),
                usage_quantity=sum(c.usage_quantity for c in charges),
                measured_quantity=sum(measured) if measured else None,
                identity_exact=all(
                    c.capacity_pico == c.direct_pico + c.overhead_pico + c.idle_pico
                    and allocated.get((c.window_start, c.resource), [0, 0, 0])
                    == [c.direct_pico, c.overhead_pico, c.idle_pico]
                    for c in charges
                ),
            )
        )
    return result


def tie_out(
    ledger: LedgerBackend, since: dt.datetime | dt.date | None = None, until: dt.datetime | dt.date | None = None
) -> list[TieOut]:
    """Σ allocated charges (fully loaded, every owner) and Σ origin charges of the range."""
    origin: dict[str, int] = defaultdict(int)
    direct: dict[str, int] = defaultdict(int)
    for charge in ledger.charges(since, until):
        origin[charge.currency] += charge.capacity_pico
        direct[charge.currency] += charge.direct_pico
    allocated: dict[str, int] = defaultdict(int)
    for item in ledger.allocated(since, until):
        allocated[item.currency] += item.total_pico
    return [
        TieOut(currency, origin.get(currency, 0), allocated.get(currency, 0), direct.get(currency, 0))
        for currency in sorted(origin.keys() | allocated.keys())
    ]
