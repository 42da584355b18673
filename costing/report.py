"""What finance pulls: the ledger summed by the keys they ask for.

A report row holds, per group (and currency):

- the **direct** cost of the group's requests (compute + gateway + cache + egress) and the
  compute its cache hits **avoided** (cache savings);
- where reconciled windows exist and the grouping allows it (feature, tenant, model, pool,
  device, day), the allocated **overhead**, **idle**, **storage** and **operations**, and the
  **fully-loaded** cost, their sum with direct;
- the **economic value**: clicks, conversions and revenue of the outcomes its requests led to,
  cost per conversion and return on cost, both on the fully-loaded cost when there is one,
  else on direct cost (``cost_basis`` says which).

Each report ends with a totals row per currency (``row_type`` "total"), so that a consumer can
tell it from the group rows and never counts it twice. ``build_report`` is also what the
CostReport RPC returns. The rows are rendered by ``costing.report_render``; the reconciliation
per pool is ``costing.reconciliation.summary``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal, get_args

from costing.cost import NS_PER_SECOND
from costing.ledger import ALLOCATION_KEYS, AllocationSums, GroupSums, LedgerBackend, OutcomeSums
from costing.ledger import GROUP_KEYS as _LEDGER_GROUP_KEYS
from costing.money import from_pico

GROUP_KEYS: tuple[str, ...] = tuple(_LEDGER_GROUP_KEYS)

ReportFormat = Literal["table", "csv", "json", "parquet"]
FORMATS: tuple[str, ...] = get_args(ReportFormat)
CostBasis = Literal["fully_loaded", "direct"]

REQUESTS_PER_UNIT_COST = 1_000  # "cost per 1,000 requests"

# Metric columns, in report order, after the group columns.
METRIC_COLUMNS: tuple[str, ...] = (
    "requests",
    "cache_hits",
    "errors",
    "compute_seconds",
    "response_bytes",
    "direct",
    "compute",
    "gateway",
    "cache",
    "egress",
    "avoided",
    "overhead",
    "idle",
    "storage",
    "operations",
    "fully_loaded",
    "cost_per_1k_requests",
    "fully_loaded_per_1k_requests",
    "clicks",
    "conversions",
    "revenue",
    "cost_basis",
    "cost_per_conversion",
    "return_on_cost",
    "currency",
)

GroupKey = tuple[object, ...]


@dataclass(frozen=True)
class Allocated:
    """A group's share of the reconciled windows, in currency units."""

    overhead: float = 0.0
    idle: float = 0.0
    storage: float = 0.0
    operations: float = 0.0

    @property
    def total(self) -> float:
        return math.fsum((self.overhead, self.idle, self.storage, self.operations))


@dataclass(frozen=True)
class ReportRow:
    """One group of the report, or (``is_total``) the sum of all groups in one currency."""

    group: Mapping[str, str | bool | None]  # group key -> value; None on a totals row
    requests: int
    cache_hits: int
    errors: int  # requests whose status is not OK
    compute_seconds: float
    direct: float  # compute + gateway + cache + egress
    compute: float
    gateway: float
    cache: float
    avoided: float  # compute that cache hits saved (cache savings); not part of any cost
    currency: str
    is_total: bool = False
    response_bytes: int = 0
    egress: float = 0.0
    allocated: Allocated | None = None  # None: no reconciled windows at this grouping
    clicks: int = 0
    conversions: int = 0
    revenue: float = 0.0

    overhead = property(lambda self: self.allocated.overhead if self.allocated else None)
    idle = property(lambda self: self.allocated.idle if self.allocated else None)
    storage = property(lambda self: self.allocated.storage if self.allocated else None)
    operations = property(lambda self: self.allocated.operations if self.allocated else None)

    @property
    def fully_loaded(self) -> float | None:
        return self.direct + self.allocated.total if self.allocated else None

    @property
    def cost_per_1k_requests(self) -> float:
        return self.direct / self.requests * REQUESTS_PER_UNIT_COST if self.requests else 0.0

    @property
    def fully_loaded_per_1k_requests(self) -> float | None:
        if self.fully_loaded is None or not self.requests:
            return None
        return self.fully_loaded / self.requests * REQUESTS_PER_UNIT_COST

    @property
    def cost_basis(self) -> CostBasis:
        return "fully_loaded" if self.allocated else "direct"

    @property
    def _basis_amount(self) -> float:
        return self.fully_loaded if self.fully_loaded is not None else self.direct

    @property
    def cost_per_conversion(self) -> float | None:
        return self._basis_amount / self.conversions if self.conversions else None

    @property
    def return_on_cost(self) -> float | None:
        """(revenue - cost) / cost: 0 breaks even, 1 earns the cost back twice."""
        cost = self._basis_amount
        return (self.revenue - cost) / cost if cost > 0 else None

    def as_dict(self) -> dict[str, object]:
        """Flat columns in report order: row_type, the group keys, then METRIC_COLUMNS."""
        return {
            "row_type": "total" if self.is_total else "group",
            **self.group,
            **{column: getattr(self, column) for column in METRIC_COLUMNS},
        }


def check_group_keys(by: Sequence[str]) -> list[str]:
    """``by`` without repeats; raises ValueError naming the allowed keys for an unknown one."""
    unknown = [key for key in by if key not in GROUP_KEYS]
    if unknown:
        raise ValueError(f"unknown group key {', '.join(map(repr, unknown))}; allowed: {', '.join(GROUP_KEYS)}")
    return list(dict.fromkeys(by))


def build_report(
    ledger: LedgerBackend,
    by: Sequence[str],
    since: dt.datetime | dt.date | None = None,
    until: dt.datetime | dt.date | None = None,
    tenant: str | None = None,
) -> list[ReportRow]:
    """Group rows ordered by group, then one totals row per currency; one tenant's rows only
    when ``tenant`` is given.

    ``since`` is inclusive and ``until`` exclusive (requests by their time, windows by their
    start); a date means its UTC midnight and a naive datetime is read as UTC. An empty ``by``
    gives the totals rows only. Blocking: the CostReport RPC runs it with asyncio.to_thread.
    """
    keys = check_group_keys(by)
    requests = {_key(s.group, keys, s.currency): s for s in ledger.summarize(keys, since, until, tenant)}
    allocated = _allocations(ledger, keys, since, until, tenant)
    outcomes = {_key(s.group, keys, s.currency): s for s in ledger.summarize_outcomes(keys, since, until, tenant)}
    reconciled = allocated is not None
    allocated = allocated or {}
    groups = [
        _row(key, keys, requests.get(key), allocated.get(key), outcomes.get(key), reconciled)
        for key in sorted(requests.keys() | allocated.keys() | outcomes.keys(), key=_sort_key)
    ]
    if not keys:  # one group per currency: the totals rows say it all
        return totals(groups, keys)
    return groups + totals(groups, keys)


def totals(rows: Sequence[ReportRow], keys: Sequence[str]) -> list[ReportRow]:
    """One totals row per currency over the group ``rows`` (currencies are never added up)."""
    result = []
    for currency in sorted({row.currency for row in rows if not row.is_total}):
        members = [row for row in rows if row.currency == currency and not row.is_total]
        allocations = [row.allocated for row in members]
        result.append(
            ReportRow(
                group={key: None for key in keys},
                requests=sum(row.requests for row in members),
                cache_hits=sum(row.cache_hits for row in members),
                errors=sum(row.errors for row in members),
                compute_seconds=math.fsum(row.compute_seconds for row in members),
                direct=math.fsum(row.direct for row in members),
                compute=math.fsum(row.compute for row in members),
                gateway=math.fsum(row.gateway for row in members),
                cache=math.fsum(row.cache for row in members),
                avoided=math.fsum(row.avoided for row in members),
                currency=currency,
                is_total=True,
                response_bytes=sum(row.response_bytes for row in members),
                egress=math.fsum(row.egress for row in members),
                allocated=None if any(a is None for a in allocations) else _sum_allocated(allocations),  # type: ignore[arg-type]
                clicks=sum(row.clicks for row in members),
                conversions=sum(row.conversions for row in members),
                revenue=math.fsum(row.revenue for row in members),
            )
        )
    return result


def _allocations(
    ledger: LedgerBackend,
    keys: Sequence[str],
    since: dt.datetime | dt.date | None,
    until: dt.datetime | dt.date | None,
    tenant: str | None,
) -> dict[GroupKey, AllocationSums] | None:
    """Allocated window amounts per group; None when the grouping cannot be allocated or no
    window was reconciled in the range."""
    if any(key not in ALLOCATION_KEYS for key in keys):
        return None
    sums = ledger.summarize_allocations(keys, since, until, tenant)
    if not sums:
        return None
    return {_key(item.group, keys, item.currency): item for item in sums}


def _row(
    key: GroupKey,
    keys: Sequence[str],
    sums: GroupSums | None,
    allocated: AllocationSums | None,
    outcomes: OutcomeSums | None,
    reconciled: bool,
) -> ReportRow:
    group = dict(zip(keys, key[:-1]))
    currency = str(key[-1])
    base = ReportRow(
        group=group, requests=0, cache_hits=0, errors=0, compute_seconds=0.0, direct=0.0, compute=0.0,
        gateway=0.0, cache=0.0, avoided=0.0, currency=currency,
    )  # fmt: skip
    if sums is not None:
        base = replace(
            base,
            requests=sums.requests,
            cache_hits=sums.cache_hits,
            errors=sums.errors,
            compute_seconds=sums.compute_ns / NS_PER_SECOND,
            direct=sums.cost_total,
            compute=sums.cost_compute,
            gateway=sums.cost_gateway,
            cache=sums.cost_cache,
            avoided=sums.cost_avoided,
            response_bytes=sums.response_bytes,
            egress=sums.cost_egress,
        )
    if reconciled:
        base = replace(base, allocated=_as_allocated(allocated))
    if outcomes is not None:
        base = replace(base, clicks=outcomes.clicks, conversions=outcomes.conversions, revenue=outcomes.revenue)
    return base


def _as_allocated(sums: AllocationSums | None) -> Allocated:
    if sums is None:
        return Allocated()
    return Allocated(
        overhead=from_pico(sums.overhead_pico),
        idle=from_pico(sums.idle_pico),
        storage=from_pico(sums.storage_pico),
        operations=from_pico(sums.operations_pico),
    )


def _sum_allocated(items: Sequence[Allocated]) -> Allocated:
    return Allocated(
        overhead=math.fsum(item.overhead for item in items),
        idle=math.fsum(item.idle for item in items),
        storage=math.fsum(item.storage for item in items),
        operations=math.fsum(item.operations for item in items),
    )


def _key(group: Mapping[str, object], keys: Sequence[str], currency: str) -> GroupKey:
    return (*(group[key] for key in keys), currency)


def _sort_key(key: GroupKey) -> tuple[object, ...]:
    return tuple((str(type(value)), value) for value in key)
