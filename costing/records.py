"""What the ledger stores: priced requests, reported outcomes, and reconciled windows.

Plain frozen dataclasses with no storage code, shared by every ledger backend, the
reconciliation, the metrics and the reports.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass
from typing import Literal, get_args


def as_utc(moment: dt.datetime | dt.date) -> dt.datetime:
    """A time bound as an aware UTC datetime: a date is its UTC midnight, a naive time is UTC."""
    if not isinstance(moment, dt.datetime):
        return dt.datetime.combine(moment, dt.time(), dt.UTC)
    if moment.utcoffset() is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _aware_utc(owner: object, name: str, moment: dt.datetime) -> None:
    """Normalise ``owner.name`` to UTC; a naive datetime is refused (its zone is a guess)."""
    if moment.utcoffset() is None:
        raise ValueError(f"{type(owner).__name__}.{name} must be timezone-aware, got {moment}")
    object.__setattr__(owner, name, moment.astimezone(dt.UTC))


@dataclass(frozen=True)
class CostRecord:
    """One priced request, as finance sees it. ``cost_total`` is its direct cost:
    compute + gateway + cache + egress."""

    request_id: str
    timestamp: dt.datetime  # timezone-aware; normalised to UTC
    rpc: str
    feature: str
    tenant: str
    model: str
    model_version: str
    pool: str
    device: str
    cache_hit: bool
    status: str  # gRPC status name: "OK", "INVALID_ARGUMENT", ...
    compute_ns: int
    gateway_cpu_ns: int
    cache_ops: int
    cost_total: float
    cost_compute: float
    cost_gateway: float
    cost_cache: float
    cost_avoided: float
    currency: str
    price_book_version: str
    response_bytes: int = 0
    cost_egress: float = 0.0
    route_reason: str = ""  # how the pool was chosen: primary, fallback, overflow, retry ("" without a pool)

    def __post_init__(self) -> None:
        if self.timestamp.utcoffset() is None:
            raise ValueError(f"CostRecord {self.request_id}: timestamp must be timezone-aware")
        object.__setattr__(self, "timestamp", self.timestamp.astimezone(dt.UTC))


OutcomeKind = Literal["click", "purchase"]
OUTCOME_KINDS: tuple[str, ...] = get_args(OutcomeKind)
# Which outcomes count as a conversion in reports.
CONVERSION_KINDS: frozenset[str] = frozenset({"purchase"})


@dataclass(frozen=True)
class Outcome:
    """What a frontend reports a request led to (a click, a purchase) and the revenue it brought.
    Idempotent by ``outcome_id``: the same outcome reported twice is stored once."""

    outcome_id: str
    request_id: str
    timestamp: dt.datetime
    kind: OutcomeKind
    revenue: float
    currency: str

    def __post_init__(self) -> None:
        if not self.outcome_id:
            raise ValueError("Outcome.outcome_id must not be empty")
        if not self.request_id:
            raise ValueError("Outcome.request_id must not be empty")
        if self.kind not in OUTCOME_KINDS:
            raise ValueError(f"Outcome.kind must be one of {', '.join(OUTCOME_KINDS)}, got {self.kind!r}")
        if not math.isfinite(self.revenue) or self.revenue < 0:
            raise ValueError(f"Outcome.revenue must be a finite amount >= 0, got {self.revenue}")
        if not self.currency:
            raise ValueError("Outcome.currency must not be empty")
        _aware_utc(self, "timestamp", self.timestamp)

    @property
    def is_conversion(self) -> bool:
        return self.kind in CONVERSION_KINDS


SHARED_POOL = ""  # the pool key of a window's fixed costs (storage, operations): no pool
UNALLOCATED_FEATURE = "__unallocated__"  # owner of costs in a window in which nothing was used


@dataclass(frozen=True)
class PoolWindow:
    """One pool over one reconciliation window. Amounts are integer pico-units of ``currency``
    (see ``costing.money``) so that the identity holds exactly::

        capacity = direct + overhead + idle + storage + operations
        capacity = max(provisioned, direct + overhead)   (over_capacity = capacity - provisioned)

    A serving pool has storage = operations = 0; the SHARED_POOL row carries storage and
    operations and nothing else.
    """

    window_start: dt.datetime
    window_end: dt.datetime
    pool: str
    currency: str
    price_book_version: str
    provisioned_units: float
    provisioned_pico: int
    capacity_pico: int
    direct_pico: int
    overhead_pico: int
    idle_pico: int
    storage_pico: int
    operations_pico: int
    requests: int
    attributed_compute_ns: int  # sum of the requests' COMPUTE_NS (what the models measured)
    triton_compute_ns: int | None  # Triton: compute_input + compute_infer + compute_output, per execution
    triton_infer_ns: int | None  # Triton: compute_infer per execution (the counterpart of COMPUTE_NS)
    triton_executions: int | None
    # (attributed - triton_infer) / triton_infer; None without Triton figures
    attributed_vs_triton_difference: float | None

    def __post_init__(self) -> None:
        _aware_utc(self, "window_start", self.window_start)
        _aware_utc(self, "window_end", self.window_end)
        if self.window_end <= self.window_start:
            raise ValueError(f"window end {self.window_end} is not after its start {self.window_start}")
        parts = self.direct_pico + self.overhead_pico + self.idle_pico + self.storage_pico + self.operations_pico
        if parts != self.capacity_pico:
            raise ValueError(
                f"window {self.window_start} pool {self.pool!r}: parts {parts} != capacity {self.capacity_pico}"
            )

    @property
    def over_capacity_pico(self) -> int:
        """Measured use beyond the provisioned capacity (on-demand pools: all of it)."""
        return self.capacity_pico - self.provisioned_pico


@dataclass(frozen=True)
class Allocation:
    """The share of one pool's window that one owner (feature, tenant, model) carries."""

    window_start: dt.datetime
    pool: str
    feature: str
    tenant: str
    model: str
    device: str
    currency: str
    compute_ns: int
    direct_pico: int  # the owner's compute, priced at the window's book
    overhead_pico: int
    idle_pico: int
    storage_pico: int
    operations_pico: int

    def __post_init__(self) -> None:
        _aware_utc(self, "window_start", self.window_start)

    @property
    def total_pico(self) -> int:
        return self.direct_pico + self.overhead_pico + self.idle_pico + self.storage_pico + self.operations_pico


def field_names(cls: type) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(cls))
