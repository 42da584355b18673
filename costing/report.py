"""What finance pulls: the ledger summed by the keys they ask for, in exact money.

A report row holds, per group (and currency):

- the counts of its requests (requests, cache hits, errors, compute seconds, bytes) and the
  compute its cache hits **avoided** (with the overhead share; ``avoided_non_cash``: the part
  that was on provisioned pools, paid anyway);
- where windows were booked and the grouping allows it (feature, tenant, model, pool, device,
  day), the **allocated charges** of the windows starting in the range: **direct** (compute,
  gateway, cache, egress, as metered on the requests the windows booked), **overhead, idle,
  storage, operations**, and **fully loaded**, their sum. Summed over any grouping, fully loaded
  equals the origin charges of the same windows, to the pico-unit. Without booked windows (or by
  rpc, model_version or cache_hit) the direct columns come from the records themselves;
- the **economic value**: clicks, conversions and revenue of the outcomes its requests led to,
  conversions and revenue per 1,000 requests (beside cost per 1,000 requests: by
  ``model_version``, whether a new model is worth its cost), cost per conversion and return on
  cost, on fully-loaded cost when there is one, else on direct cost (``cost_basis`` says which).

Money is integer pico-units inside (``*_pico``) and exact ``Decimal`` outside; each report ends
with a totals row per currency (``row_type`` "total"), whose amounts are the exact sums of the
group rows, whatever the grouping. ``build_report`` is also what the CostReport RPC returns.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal, get_args

from costing.ledger import ALLOCATION_KEYS, AllocationSums, GroupSums, LedgerBackend, OutcomeSums
from costing.ledger import GROUP_KEYS as _LEDGER_GROUP_KEYS
from costing.money import NS_PER_SECOND, pico_to_decimal

GROUP_KEYS: tuple[str, ...] = tuple(_LEDGER_GROUP_KEYS)

ReportFormat = Literal["table", "csv", "json", "parquet"]
FORMATS: tuple[str, ...] = get_args(ReportFormat)
CostBasis = Literal["fully_loaded", "direct"]

REQUESTS_PER_UNIT_COST = 1_000  # "cost per 1,000 requests"
RATIO_PLACES = Decimal("0.000001")
PICO_PLACES = Decimal("0.000000000001")  # derived amounts (per 1k requests, per conversion) are rounded to it

MONEY_COLUMNS: tuple[str, ...] = (
    "direct",
    "compute",
    "gateway",
    "cache",
    "egress",
    "avoided",
    "avoided_non_cash",
    "overhead",
    "idle",
    "storage",
    "operations",
    "fully_loaded",
    "cost_per_1k_requests",
    "fully_loaded_per_1k_requests",
    "revenue",
    "revenue_per_1k_requests",
    "cost_per_conversion",
)
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
    "avoided_non_cash",
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
    "conversions_per_1k_requests",
    "revenue_per_1k_requests",
    "cost_basis",
    "cost_per_conversion",
    "return_on_cost",
    "currency",
)

GroupKey = tuple[object, ...]


@dataclass(frozen=True)
class Allocated:
    """A group's share of the booked windows' origin charges, beyond direct, in pico-units."""

    overhead_pico: int = 0
    idle_pico: int = 0
    storage_pico: int = 0
    operations_pico: int = 0
    late_pico: int = 0  # of the direct cost: late records booked in a later window

    @property
    def total_pico(self) -> int:
        return self.overhead_pico + self.idle_pico + self.storage_pico + self.operations_pico


@dataclass(frozen=True)
class ReportRow:
    """One group of the report, or (``is_total``) the sum of all groups in one currency."""

    group: Mapping[str, str | bool | None]  # group key -> value; None on a totals row
    currency: str
    requests: int = 0
    cache_hits: int = 0
    errors: int = 0  # requests whose status is not OK
    compute_ns: int = 0
    response_bytes: int = 0
    compute_pico: int = 0
    gateway_pico: int = 0
    cache_pico: int = 0
    egress_pico: int = 0
    avoided_pico: int = 0  # compute (+ overhead share) that cache hits saved; not part of any cost
    avoided_non_cash_pico: int = 0
    is_total: bool = False
    allocated: Allocated | None = None  # None: no booked windows at this grouping
    clicks: int = 0
    conversions: int = 0
    revenue_pico: int = 0

    # --- exact amounts ----------------------------------------------------------------------

    @property
    def direct_pico(self) -> int:
        return self.compute_pico + self.gateway_pico + self.cache_pico + self.egress_pico

    @property
    def fully_loaded_pico(self) -> int | None:
        return self.direct_pico + self.allocated.total_pico if self.allocated else None

    direct = property(lambda self: pico_to_decimal(self.direct_pico))
    compute = property(lambda self: pico_to_decimal(self.compute_pico))
    gateway = property(lambda self: pico_to_decimal(self.gateway_pico))
    cache = property(lambda self: pico_to_decimal(self.cache_pico))
    egress = property(lambda self: pico_to_decimal(self.egress_pico))
    avoided = property(lambda self: pico_to_decimal(self.avoided_pico))
    avoided_non_cash = property(lambda self: pico_to_decimal(self.avoided_non_cash_pico))
    revenue = property(lambda self: pico_to_decimal(self.revenue_pico))
    overhead = property(lambda self: pico_to_decimal(self.allocated.overhead_pico) if self.allocated else None)
    idle = property(lambda self: pico_to_decimal(self.allocated.idle_pico) if self.allocated else None)
    storage = property(lambda self: pico_to_decimal(self.allocated.storage_pico) if self.allocated else None)
    operations = property(lambda self: pico_to_decimal(self.allocated.operations_pico) if self.allocated else None)

    @property
    def compute_seconds(self) -> Decimal:
        return Decimal(self.compute_ns) / NS_PER_SECOND

    @property
    def fully_loaded(self) -> Decimal | None:
        pico = self.fully_loaded_pico
        return None if pico is None else pico_to_decimal(pico)

    @property
    def cost_per_1k_requests(self) -> Decimal:
        if not self.requests:
            return Decimal(0)
        return (pico_to_decimal(self.direct_pico * REQUESTS_PER_UNIT_COST) / self.requests).quantize(PICO_PLACES)

    @property
    def fully_loaded_per_1k_requests(self) -> Decimal | None:
        pico = self.fully_loaded_pico
        if pico is None or not self.requests:
            return None
        return (pico_to_decimal(pico * REQUESTS_PER_UNIT_COST) / self.requests).quantize(PICO_PLACES)

    @property
    def conversions_per_1k_requests(self) -> Decimal | None:
        """Conversions per 1,000 requests (the value side of "is this model version worth its cost?")."""
        if not self.requests:
            return None
        return (Decimal(self.conversions * REQUESTS_PER_UNIT_COST) / self.requests).quantize(RATIO_PLACES)

    @property
    def revenue_per_1k_requests(self) -> Decimal | None:
        if not self.requests:
            return None
        return (pico_to_decimal(self.revenue_pico * REQUESTS_PER_UNIT_COST) / self.requests).quantize(PICO_PLACES)

    @property
    def cost_basis(self) -> CostBasis:
        return "fully_loaded" if self.allocated else "direct"

    @property
    def _basis_pico(self) -> int:
        pico = self.fully_loaded_pico
        return pico if pico is not None else self.direct_pico

    @property
    def cost_per_conversion(self) -> Decimal | None:
        if not self.conversions:
            return None
        return (pico_to_decimal(self._basis_pico) / self.conversions).quantize(PICO_PLACES)

    @property
    def return_on_cost(self) -> Decimal | None:
        """(revenue - cost) / cost: 0 breaks even, 1 earns the cost back twice."""
        cost = self._basis_pico
        if cost <= 0:
            return None
        return (Decimal(self.revenue_pico - cost) / Decimal(cost)).quantize(RATIO_PLACES)

    def as_dict(self) -> dict[str, object]:
        """Flat columns in report order: row_type, the group keys, then METRIC_COLUMNS (money as
        exact Decimal, never a float)."""
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
    currency: str | None = None,
) -> list[ReportRow]:
    """Group rows ordered by group, then one totals row per currency; one tenant's rows only
    when ``tenant`` is given. An empty range still gets a (zero) totals row in ``currency``
    when it is given.

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
    result = totals(groups, keys)
    if not result and currency is not None:  # an empty range: its columns and a zero totals row
        zero = Allocated() if all(key in ALLOCATION_KEYS for key in keys) else None
        result = [ReportRow(group={key: None for key in keys}, currency=currency, is_total=True, allocated=zero)]
    if not keys:  # one group per currency: the totals rows say it all
        return result
    return groups + result


def totals(rows: Sequence[ReportRow], keys: Sequence[str]) -> list[ReportRow]:
    """One totals row per currency over the group ``rows`` (currencies are never added up)."""
    result = []
    for currency in sorted({row.currency for row in rows if not row.is_total}):
        members = [row for row in rows if row.currency == currency and not row.is_total]
        allocations = [row.allocated for row in members]
        summed = {
            name: sum(getattr(row, name) for row in members)
            for name in (
                "requests", "cache_hits", "errors", "compute_ns", "response_bytes", "compute_pico", "gateway_pico",
                "cache_pico", "egress_pico", "avoided_pico", "avoided_non_cash_pico", "clicks", "conversions",
                "revenue_pico",
            )
        }  # fmt: skip
        result.append(
            ReportRow(
                group={key: None for key in keys},
                currency=currency,
                is_total=True,
                allocated=None if any(a is None for a in allocations) else _sum_allocated(allocations),  # type: ignore[arg-type]
                **summed,
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
    """Allocated charges per group; None when the grouping cannot be allocated or no window was
    booked in the range."""
    if any(key not in ALLOCATION_KEYS for key in keys):
        return None
    sums = ledger.summarize_allocated(keys, since, until, tenant)
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
    row = ReportRow(group=dict(zip(keys, key[:-1])), currency=str(key[-1]))
    if sums is not None:
        row = replace(
            row,
            requests=sums.requests,
            cache_hits=sums.cache_hits,
            errors=sums.errors,
            compute_ns=sums.compute_ns,
            response_bytes=sums.response_bytes,
            avoided_pico=sums.cost_avoided_pico,
            avoided_non_cash_pico=sums.cost_avoided_non_cash_pico,
        )
        if not reconciled:
            row = replace(
                row,
                compute_pico=sums.cost_compute_pico,
                gateway_pico=sums.cost_gateway_pico,
                cache_pico=sums.cost_cache_pico,
                egress_pico=sums.cost_egress_pico,
            )
    if reconciled:
        parts = allocated
        row = replace(
            row,
            compute_pico=parts.compute_pico if parts else 0,
            gateway_pico=parts.gateway_pico if parts else 0,
            cache_pico=parts.cache_pico if parts else 0,
            egress_pico=parts.egress_pico if parts else 0,
            allocated=Allocated(
                overhead_pico=parts.overhead_pico,
                idle_pico=parts.idle_pico,
                storage_pico=parts.storage_pico,
                operations_pico=parts.operations_pico,
                late_pico=parts.late_pico,
            )
            if parts
            else Allocated(),
        )
    if outcomes is not None:
        row = replace(row, clicks=outcomes.clicks, conversions=outcomes.conversions, revenue_pico=outcomes.revenue_pico)
    return row


def _sum_allocated(items: Sequence[Allocated]) -> Allocated:
    return Allocated(
        overhead_pico=sum(item.overhead_pico for item in items),
        idle_pico=sum(item.idle_pico for item in items),
        storage_pico=sum(item.storage_pico for item in items),
        operations_pico=sum(item.operations_pico for item in items),
        late_pico=sum(item.late_pico for item in items),
    )


def _key(group: Mapping[str, object], keys: Sequence[str], currency: str) -> GroupKey:
    return (*(group[key] for key in keys), currency)


def _sort_key(key: GroupKey) -> tuple[object, ...]:
    return tuple((str(type(value)), value) for value in key)
