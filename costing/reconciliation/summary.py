"""The reconciliation per pool over a range: what its windows cost, part by part, and whether
every window's identity (capacity = direct + overhead + idle + storage + operations, and the
allocations adding up to it) holds to the unit. ``tollgate cost reconciliation`` prints it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from costing.cost import NS_PER_SECOND
from costing.ledger import LedgerBackend
from costing.money import from_pico


@dataclass(frozen=True)
class PoolReconciliation:
    """One pool over the reconciled windows of a range: the parts of what it cost, and how the
    compute the requests measured compares with what Triton measured."""

    pool: str
    currency: str
    windows: int
    provisioned: float
    capacity: float
    direct: float
    overhead: float
    idle: float
    storage: float
    operations: float
    attributed_compute_seconds: float
    triton_infer_seconds: float | None  # over the windows with Triton figures
    attributed_vs_triton_difference: float | None  # (attributed - Triton) / Triton, same windows
    identity_exact: bool  # capacity == parts, and the allocations add up to each window, in every window
    pico: dict[str, int] = field(default_factory=dict, repr=False)  # the exact sums


def reconciliation_summary(
    ledger: LedgerBackend,
    since: dt.datetime | dt.date | None = None,
    until: dt.datetime | dt.date | None = None,
) -> list[PoolReconciliation]:
    """Per pool, the reconciled windows starting in [since, until), with their identity checked."""
    allocated: dict[tuple[dt.datetime, str], list[int]] = {}
    for allocation in ledger.allocations(since, until):
        parts = allocated.setdefault((allocation.window_start, allocation.pool), [0, 0, 0, 0, 0])
        for index, amount in enumerate(_parts(allocation)):
            parts[index] += amount
    by_pool: dict[tuple[str, str], list] = {}
    for window in ledger.windows(since, until):
        by_pool.setdefault((window.pool, window.currency), []).append(window)
    result = []
    for (pool, currency), windows in sorted(by_pool.items()):
        measured = [w for w in windows if w.triton_infer_ns is not None]
        attributed_measured = sum(w.attributed_compute_ns for w in measured)
        triton_ns = sum(w.triton_infer_ns or 0 for w in measured)
        exact = all(
            w.capacity_pico == sum(_parts(w)) and allocated.get((w.window_start, w.pool), [0] * 5) == list(_parts(w))
            for w in windows
        )
        sums = {
            name: sum(getattr(w, f"{name}_pico") for w in windows)
            for name in ("provisioned", "capacity", "direct", "overhead", "idle", "storage", "operations")
        }
        result.append(
            PoolReconciliation(
                pool=pool,
                currency=currency,
                windows=len(windows),
                **{name: from_pico(amount) for name, amount in sums.items()},
                attributed_compute_seconds=sum(w.attributed_compute_ns for w in windows) / NS_PER_SECOND,
                triton_infer_seconds=triton_ns / NS_PER_SECOND if measured else None,
                attributed_vs_triton_difference=(attributed_measured - triton_ns) / triton_ns if triton_ns else None,
                identity_exact=exact,
                pico=sums,
            )
        )
    return result


def _parts(item: object) -> tuple[int, int, int, int, int]:
    return tuple(  # type: ignore[return-value]
        getattr(item, f"{name}_pico") for name in ("direct", "overhead", "idle", "storage", "operations")
    )
