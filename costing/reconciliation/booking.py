"""Booking one window: an origin charge per resource, each allocated to (feature, tenant, model)
exactly once. Pure: the ledger's booked usage, the readings and the previous booking's state in,
the booking, its charges, their allocations and the next state out.

Origin charges of a window [start, end), each ``capacity = direct + overhead + idle``:

- ``triton/<pool>/<model>``, per pool and *served* model (an ensemble = its composing models):
  direct = the requests' COMPUTE_NS priced on each request; measured = Triton's own compute
  (input + infer + output, per execution) of that model's executing models, from cumulative
  counters (``state``); overhead = measured - direct (>= 0); the pool's provisioned capacity
  beyond what its models used is idle, split among them by use (a pool nobody used: one charge
  with model "", all idle).
- ``gateway/<replica>``: direct = the CPU the meter counted per request; measured = the replica's
  process CPU (all threads) since the last booking; overhead = the rest; idle = its provisioned
  vCPUs for the time it ran in the window, beyond that.
- ``cache/redis``: direct = operations x the op price; idle = the rest of the node's price.
- ``egress/<path>``: direct only (billed per byte, per network path).
- ``storage`` and ``operations/<item>``: monthly prices, prorated by calendar month; all overhead.

Exactness across windows: measured amounts are telescoped on running totals, and when what the
requests metered exceeds what was measured (a request that settled just after the window in
which Triton ran it; a record written after its window was booked), the excess is carried as a
negative adjustment into the next window's overhead of the same resource, never charged twice.
So over contiguous windows ``direct + overhead + carry = measured`` exactly (the carry, <= 0,
is what the requests metered beyond the measure and not yet absorbed), and an on-demand pool
costs exactly its Triton compute x its price, plus that metered excess if any remains.

Allocation (``METHODS``): overhead and idle of a Triton charge go to the owners of that model
only, by their compute; a failed call that reached a pool without a known COMPUTE_NS is treated
as a request of the window's mean measured COMPUTE_NS of that pool and model (an estimate, said
so by the method). Gateway overhead and idle by metered gateway CPU, the cache's idle by
operations, storage and operations by each owner's share of the window's direct cost. Whatever
nobody used goes to the owner (``__unallocated__``, "", model). Records written after their own
window was booked are ``late`` rows: direct only, in the window that booked them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from costing.ledger import BookedUsage
from costing.money import NS_PER_HOUR, PICO_PER_UNIT, allocate, exact, prorate_hourly, prorate_monthly, round_half_up
from costing.price_book import CACHE_DEVICE, CACHE_POOL, PriceBook
from costing.records import UNALLOCATED_FEATURE, AllocatedCharge, Booking, OriginCharge, ReplicaReading

Owner = tuple[str, str, str]  # feature, tenant, model

METHODS: dict[str, str] = {
    "metered": "direct cost as metered on each request",
    "compute-share": "by the owners' measured compute of the same pool and model",
    "compute-share-estimated": "by compute, failed calls of unknown compute counted at the window's mean",
    "request-share": "by requests (no compute was measured)",
    "cpu-share": "by the owners' metered gateway CPU on the same replica",
    "ops-share": "by cache operations",
    "direct-share": "by the owners' share of the window's direct cost",
    "unallocated": "nobody used the resource in the window",
}
GATEWAY_POOL = "gateway"
EGRESS_POOL = "egress"


@dataclass(frozen=True)
class Counters:
    """Cumulative execution-level counters of one model on one Triton endpoint."""

    executions: int = 0
    inferences: int = 0
    input_ns: int = 0
    infer_ns: int = 0
    output_ns: int = 0

    @property
    def compute_ns(self) -> int:
        return self.input_ns + self.infer_ns + self.output_ns

    def since(self, earlier: Counters | None) -> Counters:
        """What was added since ``earlier``; after a restart (a counter went down) all of self."""
        if earlier is None:
            return self
        pairs = [(getattr(self, f.name), getattr(earlier, f.name)) for f in dataclasses.fields(self)]
        if any(now < before for now, before in pairs):
            return self
        return Counters(*(now - before for now, before in pairs))

    def __add__(self, other: Counters) -> Counters:
        return Counters(*(getattr(self, f.name) + getattr(other, f.name) for f in dataclasses.fields(self)))


@dataclass(frozen=True)
class PoolReading:
    """One pool's Triton counters at a moment: (endpoint, executing model) -> counters of the
    endpoints that answered, and which executing models each served model runs."""

    counters: Mapping[str, Counters]  # key: "<endpoint>|<executing model>"
    served: Mapping[str, tuple[str, ...]]  # served model -> executing models


@dataclass
class BookingState:
    """What the next booking needs from this one (stored as JSON with the booking)."""

    triton: dict[str, dict[str, Counters]] = field(default_factory=dict)  # pool -> key -> counters
    replicas: dict[str, int] = field(default_factory=dict)  # replica -> process CPU ns booked through
    carry: dict[str, int] = field(default_factory=dict)  # resource -> carried adjustment (<= 0)
    running: dict[str, tuple[str, int]] = field(default_factory=dict)  # resource -> (price version, measured)

    def to_json(self) -> str:
        return json.dumps(
            {
                "triton": {
                    pool: {key: dataclasses.astuple(value) for key, value in sorted(counters.items())}
                    for pool, counters in sorted(self.triton.items())
                },
                "replicas": dict(sorted(self.replicas.items())),
                "carry": {key: value for key, value in sorted(self.carry.items()) if value},
                "running": {key: list(value) for key, value in sorted(self.running.items())},
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> BookingState:
        if not text:
            return cls()
        raw = json.loads(text)
        return cls(
            triton={
                pool: {key: Counters(*values) for key, values in counters.items()}
                for pool, counters in raw.get("triton", {}).items()
            },
            replicas={key: int(value) for key, value in raw.get("replicas", {}).items()},
            carry={key: int(value) for key, value in raw.get("carry", {}).items()},
            running={key: (str(value[0]), int(value[1])) for key, value in raw.get("running", {}).items()},
        )


@dataclass(frozen=True)
class BookedWindow:
    booking: Booking
    charges: list[OriginCharge]
    allocated: list[AllocatedCharge]
    state: BookingState


@dataclass(frozen=True)
class _Share:
    """Who carries the non-direct parts of one charge, and how they were chosen."""

    overhead_weights: Mapping[Owner, int]
    idle_weights: Mapping[Owner, int]
    method: str
    first_claims: Mapping[Owner, int] = field(default_factory=dict)  # taken from overhead first


def opening(moment: dt.datetime, book: PriceBook, booked_by: str, triton: Mapping[str, PoolReading]) -> Booking:
    """The zero-length booking the first window starts from: Triton's counters at ``moment``."""
    state = BookingState(triton={pool: dict(reading.counters) for pool, reading in triton.items()})
    return Booking(moment, moment, "opening", moment, booked_by, book.version, book.currency, state.to_json())


def book_window(
    start: dt.datetime,
    end: dt.datetime,
    usage: Sequence[BookedUsage],
    book: PriceBook,
    previous: BookingState,
    *,
    triton: Mapping[str, PoolReading | None],
    replicas: Sequence[ReplicaReading] = (),
    booked_by: str = "",
    booked_at: dt.datetime | None = None,
) -> BookedWindow:
    """Book [start, end): ``usage`` is what the records booked into it used
    (``BookingCursor.take_records``), ``triton`` the counters per pool read at ``end`` (None for
    a pool whose Triton did not answer: its work shows in the next window), ``replicas`` the
    gateway replicas' latest readings. Raises UnknownPoolError for a pool the book lacks."""
    if end <= start:
        raise ValueError(f"window end {end} is not after its start {start}")
    builder = _Builder(start, end, book, previous)
    builder.triton_pools(usage, triton)
    builder.gateways(usage, replicas)
    builder.cache(usage)
    builder.egress(usage)
    builder.fixed(usage)
    booking = Booking(
        window_end=end,
        window_start=start,
        kind="window",
        booked_at=booked_at or end,
        booked_by=booked_by,
        price_book_version=book.version,
        currency=book.currency,
        state=builder.state.to_json(),
    )
    return BookedWindow(booking, builder.charges, builder.allocated, builder.state)


class _Builder:
    def __init__(self, start: dt.datetime, end: dt.datetime, book: PriceBook, previous: BookingState) -> None:
        self.start, self.end, self.book = start, end, book
        self.previous = previous
        self.state = BookingState(
            triton={pool: dict(counters) for pool, counters in previous.triton.items()},
            replicas=dict(previous.replicas),
            carry={},
            running=dict(previous.running),
        )
        self.charges: list[OriginCharge] = []
        self.allocated: list[AllocatedCharge] = []

    # --- resources ----------------------------------------------------------------------------

    def triton_pools(self, usage: Sequence[BookedUsage], triton: Mapping[str, PoolReading | None]) -> None:
        served_usage = [row for row in usage if row.pool and row.pool != CACHE_POOL]
        pools = sorted(set(triton) | {row.pool for row in served_usage})
        for pool in pools:
            entry = self.book.pool(pool)
            rate = exact(entry.usd_per_unit_hour) / NS_PER_HOUR
            reading = triton.get(pool)
            rows = [row for row in served_usage if row.pool == pool]
            models = sorted(set(reading.served if reading else ()) | {row.model for row in rows})
            measured_ns = self._triton_deltas(pool, reading, models)
            used: dict[str, int] = {}
            parts: dict[str, tuple[int, int, int, int, int | None]] = {}
            for model in models:
                resource = f"triton/{pool}/{model}"
                direct = sum(row.compute_pico for row in rows if row.model == model)
                measured = measured_ns.get(model)
                measured_pico = self._measured_pico(resource, measured or 0, rate)
                overhead, carry_in, carry_out = self._overhead(resource, measured_pico, direct)
                used[model] = direct + overhead
                parts[model] = (direct, overhead, carry_in, carry_out, measured)
            provisioned = prorate_hourly(
                exact(entry.usd_per_unit_hour) * exact(entry.provisioned_units), self.start, self.end
            )
            total_used = sum(used.values())
            idle = max(provisioned, total_used) - total_used
            if total_used:  # the pool's idle capacity, shared by its models' use
                idle_by_model, provisioned_by_model = allocate(idle, used), allocate(provisioned, used)
            else:  # nobody used the pool: its idle is a charge of its own (model "")
                idle_by_model, provisioned_by_model = {"": idle}, {"": provisioned}
                parts[""] = (0, 0, 0, 0, None)
                models = [*models, ""]
            for model in models:
                direct, overhead, carry_in, carry_out, measured = parts[model]
                model_rows = [row for row in rows if row.model == model] if model else []
                charge = self._charge(
                    resource=f"triton/{pool}/{model}" if model else f"triton/{pool}",
                    kind="compute", pool=pool, model=model, device=entry.device,
                    provisioned=provisioned_by_model.get(model, 0), direct=direct, overhead=overhead,
                    idle=idle_by_model.get(model, 0), adjustment=carry_in, carry=carry_out, rows=model_rows,
                    usage_quantity=sum(row.compute_ns for row in model_rows), usage_unit="ns", measured=measured,
                )  # fmt: skip
                if charge is not None:
                    self._allocate(charge, model_rows, _compute_share(model_rows, model, rate), lambda r: r.compute_pico)

    def gateways(self, usage: Sequence[BookedUsage], readings: Sequence[ReplicaReading]) -> None:
        price = exact(self.book.gateway.usd_per_vcpu_hour)
        rate = price / NS_PER_HOUR
        by_replica = {reading.replica: reading for reading in readings}
        names = {row.replica for row in usage if row.gateway_pico or row.gateway_cpu_ns}
        names |= {r.replica for r in readings if r.seen_at > self.start or r.replica in self.previous.replicas}
        for replica in sorted(names):
            reading = by_replica.get(replica)
            rows = [row for row in usage if row.replica == replica]
            resource = f"gateway/{replica or 'unattributed'}"
            direct = sum(row.gateway_pico for row in rows)
            measured: int | None = None
            if reading is not None:
                before = self.previous.replicas.get(replica, 0)
                measured = reading.process_cpu_ns - before if reading.process_cpu_ns >= before else reading.process_cpu_ns
                self.state.replicas[replica] = reading.process_cpu_ns
                if reading.stopped and reading.seen_at <= self.end:
                    self.state.replicas.pop(replica)
            measured_pico = self._measured_pico(resource, measured or 0, rate) if measured is not None else direct
            overhead, carry_in, carry_out = self._overhead(resource, measured_pico, direct)
            provisioned = 0
            if reading is not None:
                up_from, up_to = max(self.start, reading.started_at), min(self.end, reading.seen_at)
                if up_to > up_from:
                    provisioned = prorate_hourly(price * exact(reading.provisioned_vcpus), up_from, up_to)
            capacity = max(provisioned, direct + overhead)
            charge = self._charge(
                resource=resource, kind="gateway", pool=GATEWAY_POOL, model="", device="cpu", provisioned=provisioned,
                direct=direct, overhead=overhead, idle=capacity - direct - overhead, adjustment=carry_in,
                carry=carry_out, rows=rows, usage_quantity=sum(row.gateway_cpu_ns for row in rows), usage_unit="ns",
                measured=measured,
            )  # fmt: skip
            if charge is not None:
                weights = {owner: ns for owner, ns in _sum_by_owner(rows, lambda r: r.gateway_cpu_ns).items()}
                share = _by_weights(weights, rows, "cpu-share", "")
                self._allocate(charge, rows, share, lambda r: r.gateway_pico)

    def cache(self, usage: Sequence[BookedUsage]) -> None:
        cache = self.book.cache
        rows = [row for row in usage if row.cache_ops or row.cache_pico]
        direct = sum(row.cache_pico for row in rows)
        provisioned = prorate_hourly(exact(cache.usd_per_node_hour) * exact(cache.nodes), self.start, self.end)
        capacity = max(provisioned, direct)
        charge = self._charge(
            resource=f"cache/{CACHE_DEVICE}", kind="cache", pool=CACHE_POOL, model="", device=CACHE_DEVICE,
            provisioned=provisioned, direct=direct, overhead=0, idle=capacity - direct, adjustment=0, carry=0,
            rows=rows, usage_quantity=sum(row.cache_ops for row in rows), usage_unit="operations", measured=None,
        )  # fmt: skip
        if charge is not None:
            share = _by_weights(_sum_by_owner(rows, lambda r: r.cache_ops), rows, "ops-share", "")
            self._allocate(charge, rows, share, lambda r: r.cache_pico)

    def egress(self, usage: Sequence[BookedUsage]) -> None:
        default = self.book.egress.default_path
        paths = sorted({row.egress_path or default for row in usage if row.response_bytes or row.egress_pico})
        for path in paths:
            rows = [row for row in usage if (row.egress_path or default) == path]
            charge = self._charge(
                resource=f"egress/{path}", kind="egress", pool=EGRESS_POOL, model="", device="", provisioned=0,
                direct=sum(row.egress_pico for row in rows), overhead=0, idle=0, adjustment=0, carry=0, rows=rows,
                usage_quantity=sum(row.response_bytes for row in rows), usage_unit="bytes", measured=None,
            )  # fmt: skip
            if charge is not None:
                self._allocate(charge, rows, _Share({}, {}, "metered"), lambda r: r.egress_pico)

    def fixed(self, usage: Sequence[BookedUsage]) -> None:
        """Storage and operations: monthly prices by calendar month, shared by direct cost."""
        storage = self.book.storage
        items = [("storage", "storage", exact(storage.usd_per_gb_month) * exact(storage.provisioned_gb))]
        items += [
            (f"operations/{name}", "operations", exact(item.usd_per_month)) for name, item in sorted(self.book.operations.items())
        ]
        current = [row for row in usage if not row.late]
        share = _by_weights(_sum_by_owner(current, lambda r: r.direct_pico), [], "direct-share", "")
        for resource, kind, monthly in items:
            amount = prorate_monthly(monthly, self.start, self.end)
            charge = self._charge(
                resource=resource, kind=kind, pool=kind, model="", device="", provisioned=amount, direct=0,
                overhead=amount, idle=0, adjustment=0, carry=0, rows=[], usage_quantity=0, usage_unit="",
                measured=None,
            )  # fmt: skip
            if charge is not None:
                self._allocate(charge, [], share, lambda r: 0)

    # --- helpers ------------------------------------------------------------------------------

    def _triton_deltas(self, pool: str, reading: PoolReading | None, models: Iterable[str]) -> dict[str, int]:
        """Triton compute per served model since the last booking; the new counters go to the state."""
        if reading is None:
            return {}
        before = self.previous.triton.get(pool, {})
        owner_of: dict[str, str] = {}
        for model in sorted(reading.served):
            for executing in reading.served[model]:
                owner_of.setdefault(executing, model)  # a model shared by two ensembles: the first
        result: dict[str, int] = {model: 0 for model in models if model in reading.served}
        for key, counters in reading.counters.items():
            executing = key.rsplit("|", 1)[-1]
            model = owner_of.get(executing)
            if model is None:
                continue
            result[model] += counters.since(before.get(key)).compute_ns
        self.state.triton[pool] = {**before, **reading.counters}
        return result

    def _measured_pico(self, resource: str, measured_ns: int, rate: Fraction) -> int:
        """``measured_ns`` priced, telescoped on the resource's running total (same price book)."""
        version, total = self.state.running.get(resource, (self.book.version, 0))
        if version != self.book.version:
            version, total = self.book.version, 0
        after = total + measured_ns
        self.state.running[resource] = (version, after)
        scale = rate * PICO_PER_UNIT
        return round_half_up(scale * after) - round_half_up(scale * total)

    def _overhead(self, resource: str, measured_pico: int, direct: int) -> tuple[int, int, int]:
        """(overhead, carry in, carry out): what was measured beyond the metered direct cost."""
        carry_in = self.previous.carry.get(resource, 0)
        excess = measured_pico - direct + carry_in
        carry_out = min(0, excess)
        if carry_out:
            self.state.carry[resource] = carry_out
        return max(0, excess), carry_in, carry_out

    def _charge(
        self,
        *,
        resource: str,
        kind: str,
        pool: str,
        model: str,
        device: str,
        provisioned: int,
        direct: int,
        overhead: int,
        idle: int,
        adjustment: int,
        carry: int,
        rows: Sequence[BookedUsage],
        usage_quantity: int,
        usage_unit: str,
        measured: int | None,
    ) -> OriginCharge | None:
        capacity = direct + overhead + idle
        if not (capacity or adjustment or carry or rows or measured):
            return None
        charge = OriginCharge(
            window_start=self.start,
            window_end=self.end,
            resource=resource,
            kind=kind,
            pool=pool,
            model=model,
            device=device,
            currency=self.book.currency,
            price_book_version=self.book.version,
            provisioned_pico=provisioned,
            capacity_pico=capacity,
            direct_pico=direct,
            overhead_pico=overhead,
            idle_pico=idle,
            adjustment_pico=adjustment,
            carry_pico=carry,
            requests=sum(row.requests for row in rows),
            usage_quantity=usage_quantity,
            usage_unit=usage_unit,
            measured_quantity=measured,
            late_direct_pico=sum(
                _direct_of(row, kind) for row in rows if row.late
            ),
        )
        self.charges.append(charge)
        return charge

    def _allocate(self, charge: OriginCharge, rows: Sequence[BookedUsage], share: _Share, direct_of) -> None:  # noqa: ANN001
        """Allocated charges of ``charge``: each owner's metered direct (late records in rows of
        their own), overhead and idle by ``share``; they add up to the charge exactly."""
        claims = dict(share.first_claims)
        if sum(claims.values()) > charge.overhead_pico:  # less overhead than the estimates: shared by them
            claims = allocate(charge.overhead_pico, claims)
        rest = charge.overhead_pico - sum(claims.values())
        overhead: dict[Owner, int] = defaultdict(int, claims)
        if rest:
            for owner, amount in allocate(rest, share.overhead_weights).items():
                overhead[owner] += amount
        idle = allocate(charge.idle_pico, share.idle_weights) if charge.idle_pico else {}
        current: dict[Owner, list[int]] = defaultdict(lambda: [0, 0, 0])  # requests, quantity, direct
        late: dict[Owner, list[int]] = defaultdict(lambda: [0, 0, 0])
        quantity_of = _quantity_getter(charge.kind)
        for row in rows:
            target = late if row.late else current
            figures = target[row.owner]
            figures[0] += row.requests
            figures[1] += quantity_of(row)
            figures[2] += direct_of(row)
        owners = sorted(set(current) | {o for o, v in overhead.items() if v} | {o for o, v in idle.items() if v})
        for owner in owners:
            requests, quantity, direct = current.get(owner, [0, 0, 0])
            self._append(charge, owner, False, share.method, requests, quantity, direct, overhead.get(owner, 0), idle.get(owner, 0))
        for owner in sorted(late):
            requests, quantity, direct = late[owner]
            self._append(charge, owner, True, "metered", requests, quantity, direct, 0, 0)
        mine = [a for a in self.allocated if a.window_start == charge.window_start and a.resource == charge.resource]
        sums = tuple(sum(getattr(a, f"{part}_pico") for a in mine) for part in ("direct", "overhead", "idle"))
        if sums != (charge.direct_pico, charge.overhead_pico, charge.idle_pico):
            raise AssertionError(f"allocations of {charge.resource} add up to {sums}, not to the charge")

    def _append(
        self, charge: OriginCharge, owner: Owner, late: bool, method: str, requests: int, quantity: int,
        direct: int, overhead: int, idle: int,
    ) -> None:  # fmt: skip
        if not (requests or direct or overhead or idle):
            return
        if owner[0] == UNALLOCATED_FEATURE:
            method = "unallocated"
        elif not (overhead or idle):
            method = "metered"
        self.allocated.append(
            AllocatedCharge(
                window_start=charge.window_start,
                resource=charge.resource,
                feature=owner[0],
                tenant=owner[1],
                model=owner[2],
                late=late,
                kind=charge.kind,
                pool=charge.pool,
                device=charge.device,
                currency=charge.currency,
                method=method,
                requests=requests,
                usage_quantity=quantity,
                direct_pico=direct,
                overhead_pico=overhead,
                idle_pico=idle,
            )
        )


def _direct_of(row: BookedUsage, kind: str) -> int:
    return {"compute": row.compute_pico, "gateway": row.gateway_pico, "cache": row.cache_pico, "egress": row.egress_pico}.get(
        kind, 0
    )


def _quantity_getter(kind: str):  # noqa: ANN202
    return {
        "compute": lambda row: row.compute_ns,
        "gateway": lambda row: row.gateway_cpu_ns,
        "cache": lambda row: row.cache_ops,
        "egress": lambda row: row.response_bytes,
    }.get(kind, lambda row: 0)


def _sum_by_owner(rows: Iterable[BookedUsage], value) -> dict[Owner, int]:  # noqa: ANN001
    result: dict[Owner, int] = defaultdict(int)
    for row in rows:
        result[row.owner] += value(row)
    return dict(result)


def _by_weights(weights: Mapping[Owner, int], rows: Sequence[BookedUsage], method: str, model: str) -> _Share:
    """Overhead and idle by ``weights``; by requests when they are all 0; else unallocated."""
    positive = {owner: weight for owner, weight in weights.items() if weight > 0}
    if not positive:
        positive = {o: n for o, n in _sum_by_owner((r for r in rows if not r.late), lambda r: r.requests).items() if n}
        method = "request-share"
    if not positive:
        positive = {(UNALLOCATED_FEATURE, "", model): 1}
        method = "unallocated"
    return _Share(positive, positive, method)


def _compute_share(rows: Sequence[BookedUsage], model: str, rate: Fraction) -> _Share:
    """A Triton charge's overhead and idle, by compute; failed calls of unknown compute count as
    requests of the window's mean measured compute, and take that share of the overhead first."""
    current = [row for row in rows if not row.late]
    measured_requests = sum(row.measured_requests for row in current)
    mean = Fraction(sum(row.compute_ns for row in current), measured_requests) if measured_requests else Fraction(0)
    estimates = {owner: round_half_up(n * mean) for owner, n in _sum_by_owner(
        (row for row in current if row.unknown_compute), lambda r: r.requests
    ).items()}  # fmt: skip
    weights = _sum_by_owner(current, lambda r: r.compute_ns)
    for owner, estimate in estimates.items():
        weights[owner] = weights.get(owner, 0) + estimate
    share = _by_weights(weights, current, "compute-share", model)
    if not any(estimates.values()) or share.method != "compute-share":
        return share
    claims = {owner: round_half_up(ns * rate * PICO_PER_UNIT) for owner, ns in estimates.items() if ns}
    return _Share(share.overhead_weights, share.idle_weights, "compute-share-estimated", claims)
