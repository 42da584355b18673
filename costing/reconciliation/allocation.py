"""Per-window reconciliation: what each pool cost, split into parts that add up exactly.

For one window [start, end) and each pool::

    capacity = direct + overhead + idle          (exactly, in integer pico-units)
    direct   = the requests' own COMPUTE_NS x the pool's unit price
    overhead = what Triton measured for the pool's executions beyond that (>= 0), priced
    idle     = provisioned capacity nobody used (>= 0)
    capacity = max(provisioned, direct + overhead)   (an on-demand pool has no idle)

Overhead and idle are allocated to the owners (feature, tenant, model) that used the pool in
the window, by their share of its measured compute (OpenCost's approach); storage and the
monthly operations are a window row of their own (pool ``SHARED_POOL``), allocated by each
owner's share of the window's direct cost. Sum the allocations of an owner and you get its
fully-loaded compute, and the allocations of a window add up to what was paid, to the unit.

Triton's side is execution-level (one figure per batch, not per request: Triton charges
every request of a batch the full batch time); for the Python backend its compute_infer also
includes the IPC between the server and the stub, which is why it exceeds COMPUTE_NS.
``attributed_vs_triton_difference`` = (COMPUTE_NS sum - Triton compute_infer) / Triton
compute_infer, as measured, whatever it is.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from costing.cost import NS_PER_HOUR
from costing.ledger import OwnerUsage
from costing.money import allocate, exact, to_pico
from costing.price_book import PriceBook
from costing.records import SHARED_POOL, UNALLOCATED_FEATURE, Allocation, PoolWindow

Owner = tuple[str, str, str]  # feature, tenant, model
UNALLOCATED_OWNER: Owner = (UNALLOCATED_FEATURE, "", "")
_MICROSECONDS = dt.timedelta(microseconds=1)
_NS_PER_MICROSECOND = 1_000


@dataclass(frozen=True)
class TritonCompute:
    """What Triton measured for one pool over one window, per execution (summed over the
    pool's endpoints and executing models)."""

    compute_ns: int  # compute_input + compute_infer + compute_output
    infer_ns: int  # compute_infer alone: the counterpart of the models' COMPUTE_NS
    executions: int
    inferences: int
    complete: bool = True  # False when an endpoint did not answer one of the two snapshots


@dataclass(frozen=True)
class WindowResult:
    windows: list[PoolWindow]
    allocations: list[Allocation]


def window_ns(start: dt.datetime, end: dt.datetime) -> int:
    return ((end - start) // _MICROSECONDS) * _NS_PER_MICROSECOND


def reconcile_window(
    start: dt.datetime,
    end: dt.datetime,
    usage: Sequence[OwnerUsage],
    book: PriceBook,
    *,
    pools: Iterable[str] = (),
    triton: Mapping[str, TritonCompute] | None = None,
) -> WindowResult:
    """Reconcile the window [start, end) of the ledger ``usage`` (``SqlLedger.owner_usage``)
    against the provisioned ``pools`` (plus any pool that served a request in the window) and
    Triton's measurements per pool. Raises UnknownPoolError for a pool the book does not list."""
    foreign = sorted({row.currency for row in usage} - {book.currency})
    if foreign:
        raise ValueError(f"usage in {', '.join(foreign)} cannot be reconciled with a {book.currency} price book")
    duration_ns = window_ns(start, end)
    if duration_ns <= 0:
        raise ValueError(f"window end {end} is not after its start {start}")
    triton = triton or {}
    compute_by_pool: dict[str, dict[Owner, int]] = defaultdict(lambda: defaultdict(int))
    requests_by_pool: dict[str, int] = defaultdict(int)
    compute_by_owner: dict[Owner, int] = defaultdict(int)
    for row in usage:
        owner = (row.feature, row.tenant, row.model)
        requests_by_pool[row.pool] += row.requests
        if row.pool != SHARED_POOL:
            compute_by_pool[row.pool][owner] += row.compute_ns
            compute_by_owner[owner] += row.compute_ns

    windows: list[PoolWindow] = []
    allocations: list[Allocation] = []
    for pool in sorted(set(pools) | set(compute_by_pool)):
        window, pool_allocations = _reconcile_pool(
            start, end, duration_ns, pool, compute_by_pool.get(pool, {}), requests_by_pool.get(pool, 0),
            compute_by_owner, triton.get(pool), book,
        )  # fmt: skip
        windows.append(window)
        allocations += pool_allocations
    shared = _reconcile_shared(start, end, duration_ns, usage, book)
    if shared is not None:
        windows.append(shared[0])
        allocations += shared[1]
    return WindowResult(windows, allocations)


def _reconcile_pool(
    start: dt.datetime,
    end: dt.datetime,
    duration_ns: int,
    pool: str,
    compute: Mapping[Owner, int],
    requests: int,
    compute_by_owner: Mapping[Owner, int],
    measured: TritonCompute | None,
    book: PriceBook,
) -> tuple[PoolWindow, list[Allocation]]:
    entry = book.pool(pool)
    per_ns = exact(entry.usd_per_unit_hour) / NS_PER_HOUR
    direct = {owner: to_pico(ns * per_ns) for owner, ns in compute.items()}
    attributed_ns = sum(compute.values())
    direct_total = sum(direct.values())
    overhead_ns = max(0, measured.compute_ns - attributed_ns) if measured else 0
    overhead = to_pico(overhead_ns * per_ns)
    provisioned = to_pico(exact(entry.provisioned_units) * duration_ns * per_ns)
    capacity = max(provisioned, direct_total + overhead)
    idle = capacity - direct_total - overhead

    weights = _first_positive(compute, compute_by_owner)
    overhead_shares = allocate(overhead, weights) if overhead else {}
    idle_shares = allocate(idle, weights) if idle else {}
    allocations = [
        Allocation(
            window_start=start,
            pool=pool,
            feature=owner[0],
            tenant=owner[1],
            model=owner[2],
            device=entry.device,
            currency=book.currency,
            compute_ns=compute.get(owner, 0),
            direct_pico=direct.get(owner, 0),
            overhead_pico=overhead_shares.get(owner, 0),
            idle_pico=idle_shares.get(owner, 0),
            storage_pico=0,
            operations_pico=0,
        )
        for owner in sorted(set(compute) | set(overhead_shares) | set(idle_shares))
    ]
    window = PoolWindow(
        window_start=start,
        window_end=end,
        pool=pool,
        currency=book.currency,
        price_book_version=book.version,
        provisioned_units=entry.provisioned_units,
        provisioned_pico=provisioned,
        capacity_pico=capacity,
        direct_pico=direct_total,
        overhead_pico=overhead,
        idle_pico=idle,
        storage_pico=0,
        operations_pico=0,
        requests=requests,
        attributed_compute_ns=attributed_ns,
        triton_compute_ns=measured.compute_ns if measured else None,
        triton_infer_ns=measured.infer_ns if measured else None,
        triton_executions=measured.executions if measured else None,
        attributed_vs_triton_difference=(
            (attributed_ns - measured.infer_ns) / measured.infer_ns if measured and measured.infer_ns else None
        ),
    )
    return window, [allocation for allocation in allocations if allocation.total_pico or allocation.compute_ns]


def _reconcile_shared(
    start: dt.datetime, end: dt.datetime, duration_ns: int, usage: Sequence[OwnerUsage], book: PriceBook
) -> tuple[PoolWindow, list[Allocation]] | None:
    """Storage and operations of the window, allocated by the owners' share of direct cost."""
    month_ns = exact(book.hours_per_month) * NS_PER_HOUR
    share_of_month = Fraction(duration_ns) / month_ns
    storage = to_pico(exact(book.storage.provisioned_gb) * exact(book.storage.usd_per_gb_month) * share_of_month)
    operations = to_pico(
        sum((exact(item.usd_per_month) for item in book.operations.values()), Fraction(0)) * share_of_month
    )
    if not storage and not operations:
        return None
    direct_by_owner: dict[Owner, int] = defaultdict(int)
    for row in usage:
        direct_by_owner[(row.feature, row.tenant, row.model)] += to_pico(row.cost_total)
    weights = _first_positive(direct_by_owner)
    storage_shares = allocate(storage, weights) if storage else {}
    operations_shares = allocate(operations, weights) if operations else {}
    allocations = [
        Allocation(
            window_start=start,
            pool=SHARED_POOL,
            feature=owner[0],
            tenant=owner[1],
            model=owner[2],
            device="",
            currency=book.currency,
            compute_ns=0,
            direct_pico=0,
            overhead_pico=0,
            idle_pico=0,
            storage_pico=storage_shares.get(owner, 0),
            operations_pico=operations_shares.get(owner, 0),
        )
        for owner in sorted(set(storage_shares) | set(operations_shares))
        if storage_shares.get(owner, 0) or operations_shares.get(owner, 0)
    ]
    window = PoolWindow(
        window_start=start,
        window_end=end,
        pool=SHARED_POOL,
        currency=book.currency,
        price_book_version=book.version,
        provisioned_units=0.0,
        provisioned_pico=storage + operations,
        capacity_pico=storage + operations,
        direct_pico=0,
        overhead_pico=0,
        idle_pico=0,
        storage_pico=storage,
        operations_pico=operations,
        requests=sum(row.requests for row in usage),
        attributed_compute_ns=0,
        triton_compute_ns=None,
        triton_infer_ns=None,
        triton_executions=None,
        attributed_vs_triton_difference=None,
    )
    return window, allocations


def _first_positive(*candidates: Mapping[Owner, int]) -> Mapping[Owner, int]:
    """The first weights that sum above 0; the unallocated owner when nothing was used."""
    for weights in candidates:
        positive = {owner: weight for owner, weight in weights.items() if weight > 0}
        if positive:
            return positive
    return {UNALLOCATED_OWNER: 1}
