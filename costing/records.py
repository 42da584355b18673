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

from costing.money import from_pico, to_pico


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


# Which traffic of a model rollout a request was (gateway/rollout.py): answered by the serving
# version, answered by the canary, or a shadow call (real spend mirrored to the candidate; its
# answer went to no caller).
Traffic = Literal["serving", "canary", "shadow"]
TRAFFIC_KINDS: tuple[str, ...] = get_args(Traffic)
SERVING_TRAFFIC, CANARY_TRAFFIC, SHADOW_TRAFFIC = TRAFFIC_KINDS


@dataclass(frozen=True)
class CostRecord:
    """One priced request, as finance sees it. Amounts are integer pico-units of ``currency``;
    ``cost_total_pico`` is its direct cost: compute + gateway + cache + egress."""

    request_id: str
    timestamp: dt.datetime  # timezone-aware; normalised to UTC; when the request was settled
    rpc: str
    feature: str
    tenant: str
    model: str
    model_version: str
    pool: str  # the Triton pool it ran on (kept on failures), "cache" for a cache hit, "" if none
    device: str
    cache_hit: bool
    status: str  # gRPC status name: "OK", "INVALID_ARGUMENT", ...
    compute_ns: int
    gateway_cpu_ns: int
    cache_ops: int
    cost_total_pico: int
    cost_compute_pico: int
    cost_gateway_pico: int
    cost_cache_pico: int
    cost_avoided_pico: int
    currency: str
    price_book_version: str
    response_bytes: int = 0
    cost_egress_pico: int = 0
    route_reason: str = ""  # how the pool was chosen: primary, fallback, overflow, retry ("" without a pool)
    replica: str = ""  # the gateway replica that served it (whose process CPU it shares)
    egress_path: str = ""  # network path of its response bytes
    avoided_is_cash: bool = True  # False: the avoided compute was on a provisioned pool
    traffic: str = SERVING_TRAFFIC  # a Traffic: serving | canary | shadow
    booked_in: dt.datetime | None = None  # end of the window that booked it (ledger-maintained)

    def __post_init__(self) -> None:
        if self.timestamp.utcoffset() is None:
            raise ValueError(f"CostRecord {self.request_id}: timestamp must be timezone-aware")
        object.__setattr__(self, "timestamp", self.timestamp.astimezone(dt.UTC))
        parts = self.cost_compute_pico + self.cost_gateway_pico + self.cost_cache_pico + self.cost_egress_pico
        if parts != self.cost_total_pico:
            raise ValueError(f"CostRecord {self.request_id}: parts {parts} != total {self.cost_total_pico}")

    cost_total = property(lambda self: from_pico(self.cost_total_pico))
    cost_avoided = property(lambda self: from_pico(self.cost_avoided_pico))


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
    revenue_pico: int
    currency: str

    def __post_init__(self) -> None:
        if not self.outcome_id:
            raise ValueError("Outcome.outcome_id must not be empty")
        if not self.request_id:
            raise ValueError("Outcome.request_id must not be empty")
        if self.kind not in OUTCOME_KINDS:
            raise ValueError(f"Outcome.kind must be one of {', '.join(OUTCOME_KINDS)}, got {self.kind!r}")
        if self.revenue_pico < 0:
            raise ValueError(f"Outcome.revenue must be >= 0, got {self.revenue_pico} pico")
        if not self.currency:
            raise ValueError("Outcome.currency must not be empty")
        _aware_utc(self, "timestamp", self.timestamp)

    @property
    def is_conversion(self) -> bool:
        return self.kind in CONVERSION_KINDS

    revenue = property(lambda self: from_pico(self.revenue_pico))


def revenue_pico(revenue: float) -> int:
    """A reported revenue (a float on the wire) as the decimal it was written as, in pico-units."""
    if not math.isfinite(revenue) or revenue < 0:
        raise ValueError(f"Outcome.revenue must be a finite amount >= 0, got {revenue}")
    return to_pico(revenue)


UNALLOCATED_FEATURE = "__unallocated__"  # owner of what a window cost that nobody used

ResourceKind = Literal["compute", "gateway", "cache", "egress", "storage", "operations"]
RESOURCE_KINDS: tuple[str, ...] = get_args(ResourceKind)


@dataclass(frozen=True)
class Booking:
    """One booked window [window_start, window_end) of the ledger. Bookings are contiguous: each
    starts where the previous one ended (``opening`` rows, with start == end, only carry the
    counters the first window starts from). ``state`` (JSON) holds what the next booking needs:
    the cumulative counters read at ``window_end`` (Triton per endpoint and model, each gateway
    replica's process CPU), the carried adjustments and the running totals (``booking.py``)."""

    window_end: dt.datetime
    window_start: dt.datetime
    kind: str  # "opening" | "window"
    booked_at: dt.datetime
    booked_by: str  # the replica that booked it
    price_book_version: str
    currency: str
    state: str

    def __post_init__(self) -> None:
        for name in ("window_start", "window_end", "booked_at"):
            _aware_utc(self, name, getattr(self, name))
        if self.window_end < self.window_start:
            raise ValueError(f"booking ends {self.window_end} before it starts {self.window_start}")


@dataclass(frozen=True)
class OriginCharge:
    """What one resource cost over one window, in integer pico-units::

        capacity = direct + overhead + idle
        capacity = max(provisioned, direct + overhead)

    ``direct``: what the window's requests were priced (metered); ``overhead``: what the resource
    measured beyond that (Triton's statistics, the gateway's process CPU), never negative;
    ``idle``: provisioned capacity nobody used. ``adjustment_pico`` (<= 0) is the excess of
    metered over measured carried in from the previous window (a request metered in this window
    whose work was measured in the previous one, a late record), ``carry_pico`` (<= 0) what is
    carried to the next one, so that over contiguous windows direct + overhead = measured
    exactly. Storage and operations charges are all overhead (fixed costs).
    """

    window_start: dt.datetime
    window_end: dt.datetime
    resource: str  # e.g. "triton/cpu-local/recommender", "gateway/<replica>", "cache/redis", "egress/internet"
    kind: str  # a ResourceKind
    pool: str  # report label: the Triton pool, "gateway", "cache", "egress", "storage", "operations"
    model: str  # the served model of a Triton charge, else ""
    device: str
    currency: str
    price_book_version: str
    provisioned_pico: int
    capacity_pico: int
    direct_pico: int
    overhead_pico: int
    idle_pico: int
    adjustment_pico: int
    carry_pico: int
    requests: int
    usage_quantity: int  # what the direct part metered: ns, operations, bytes; 0 for fixed costs
    usage_unit: str  # "ns" | "operations" | "bytes" | ""
    measured_quantity: int | None  # what the resource measured itself (Triton ns, process CPU ns)
    late_direct_pico: int = 0  # of direct: records written after their own window was booked

    def __post_init__(self) -> None:
        _aware_utc(self, "window_start", self.window_start)
        _aware_utc(self, "window_end", self.window_end)
        if self.window_end <= self.window_start:
            raise ValueError(f"window end {self.window_end} is not after its start {self.window_start}")
        parts = self.direct_pico + self.overhead_pico + self.idle_pico
        if parts != self.capacity_pico:
            raise ValueError(f"window {self.window_start} {self.resource}: parts {parts} != capacity {self.capacity_pico}")
        if self.overhead_pico < 0 or self.idle_pico < 0 or self.adjustment_pico > 0 or self.carry_pico > 0:
            raise ValueError(f"window {self.window_start} {self.resource}: negative overhead/idle or positive carry")


@dataclass(frozen=True)
class AllocatedCharge:
    """The share of one origin charge that one owner (feature, tenant, model) carries. The
    allocated charges of an origin charge add up to it exactly, part by part. ``late`` rows
    carry the direct cost of records written after their own window was booked: an explicit
    adjustment in the window that booked them, never a second charge."""

    window_start: dt.datetime
    resource: str
    feature: str
    tenant: str
    model: str
    late: bool
    kind: str
    pool: str
    device: str
    currency: str
    method: str  # how overhead and idle were split: see costing.reconciliation.booking.METHODS
    requests: int
    usage_quantity: int
    direct_pico: int
    overhead_pico: int
    idle_pico: int

    def __post_init__(self) -> None:
        _aware_utc(self, "window_start", self.window_start)

    @property
    def total_pico(self) -> int:
        return self.direct_pico + self.overhead_pico + self.idle_pico


@dataclass(frozen=True)
class ReplicaReading:
    """A gateway replica's cumulative process CPU, as it last published it (at every window
    boundary and when it stops)."""

    replica: str
    started_at: dt.datetime
    seen_at: dt.datetime
    process_cpu_ns: int  # CPU time of the whole process since it started (all threads)
    provisioned_vcpus: float
    stopped: bool = False

    def __post_init__(self) -> None:
        _aware_utc(self, "started_at", self.started_at)
        _aware_utc(self, "seen_at", self.seen_at)


def field_names(cls: type) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(cls))
