"""Monthly budgets per feature or tenant: alerts at 80 % / 100 %, optional shedding.

``BudgetTracker`` is pure bookkeeping fed by cost records (``observe``, e.g. as a
``LedgerWriter`` observer) and by the month-to-date spend of the shared ledger
(``refresh_from_ledger``, so that a restart or another replica's traffic is counted). The
gateway asks ``should_shed(feature, tenant)`` before serving a call and answers
RESOURCE_EXHAUSTED when told to. A budget's ``basis`` is ``direct`` (what each request is
charged when it is served) or ``fully_loaded``: the allocated charges of the windows booked this
month plus the direct cost of what no window has booked yet (its overhead follows when its window
is booked). Spend is kept in integer pico-units.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from costing.money import from_pico, to_pico
from costing.records import CostRecord

log = logging.getLogger(__name__)

Scope = Literal["feature", "tenant"]
Basis = Literal["direct", "fully_loaded"]
SCOPES: tuple[Scope, ...] = ("feature", "tenant")
DEFAULT_ALERT_RATIOS: tuple[float, ...] = (0.8, 1.0)
BudgetKey = tuple[Scope, str]


class BudgetConfig(BaseModel):
    """A monthly budget of one feature or tenant (the ``budgets`` setting holds a JSON list)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scope: Scope
    name: str = Field(min_length=1, description="The feature or tenant.")
    usd_per_month: float = Field(gt=0, allow_inf_nan=False)
    shed: bool = Field(False, description="Shed the traffic with RESOURCE_EXHAUSTED once the budget is spent.")
    basis: Basis = Field("direct", description="direct, or fully_loaded (with the allocated overhead, idle, fixed costs).")

    @property
    def limit_pico(self) -> int:
        return to_pico(self.usd_per_month)


@dataclass(frozen=True)
class BudgetAlert:
    """A threshold of a budget crossed in ``month`` (YYYY-MM); amounts in currency units."""

    scope: Scope
    name: str
    threshold: float
    spent: float
    limit: float
    month: str


@dataclass(frozen=True)
class BudgetDecision:
    """Whether to shed a call, and which budget says so."""

    shed: bool
    scope: Scope | None = None
    name: str | None = None
    spent: float = 0.0
    limit: float = 0.0

    @property
    def message(self) -> str:
        if not self.shed:
            return ""
        return f"monthly budget of {self.scope} {self.name!r} is spent: {self.spent:.6g} of {self.limit:.6g} USD"


ALLOW = BudgetDecision(shed=False)


@dataclass(frozen=True)
class BudgetStatus:
    scope: Scope
    name: str
    spent: float
    limit: float

    @property
    def used_ratio(self) -> float:
        return self.spent / self.limit


class BudgetMetrics(Protocol):
    def observe_budget(self, scope: str, name: str, used_ratio: float) -> None: ...
    def observe_budget_alert(self, scope: str, name: str, threshold: float) -> None: ...


@dataclass(frozen=True)
class _Spend:
    timestamp: dt.datetime
    keys: tuple[BudgetKey, ...]
    amount: int  # pico


def month_of(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m")


def month_start(moment: dt.datetime) -> dt.datetime:
    utc = moment.astimezone(dt.UTC)
    return dt.datetime(utc.year, utc.month, 1, tzinfo=dt.UTC)


class BudgetTracker:
    """Month-to-date spend against the budgets: a baseline read from the ledger (records before
    a cutoff) plus the records this process observed since that cutoff."""

    def __init__(
        self,
        budgets: Sequence[BudgetConfig],
        *,
        alert_ratios: Iterable[float] = DEFAULT_ALERT_RATIOS,
        metrics: BudgetMetrics | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._budgets: dict[BudgetKey, BudgetConfig] = {}
        for budget in budgets:
            key = (budget.scope, budget.name)
            if key in self._budgets:
                raise ValueError(f"two budgets for {budget.scope} {budget.name!r}")
            self._budgets[key] = budget
        self._alert_ratios = tuple(sorted(set(alert_ratios)))
        if any(ratio <= 0 for ratio in self._alert_ratios):
            raise ValueError(f"alert ratios must be positive, got {self._alert_ratios}")
        self._metrics = metrics
        self._clock = clock
        self._month = month_of(clock())
        self._cutoff = month_start(clock())
        self._baseline: dict[BudgetKey, int] = {}
        self._local: list[_Spend] = []
        self._local_sums: dict[BudgetKey, int] = defaultdict(int)
        self._alerted: set[tuple[BudgetKey, float]] = set()

    @property
    def budgets(self) -> list[BudgetConfig]:
        return list(self._budgets.values())

    def scopes(self) -> set[Scope]:
        return {scope for scope, _ in self._budgets}

    def scopes_and_bases(self) -> set[tuple[Scope, Basis]]:
        return {(scope, budget.basis) for (scope, _), budget in self._budgets.items()}

    def keys_of_basis(self, basis: Basis) -> set[BudgetKey]:
        return {key for key, budget in self._budgets.items() if budget.basis == basis}

    def observe(self, record: CostRecord) -> list[BudgetAlert]:
        """Count a record's direct cost against its feature's and tenant's budgets."""
        keys = self._keys(record.feature, record.tenant)
        if not keys or not record.cost_total_pico:
            return []
        month = month_of(record.timestamp)
        if month < self._month or record.timestamp < self._cutoff:
            return []  # an earlier month, or already in the ledger baseline
        if month > self._month:
            self._roll(record.timestamp)
        self._local.append(_Spend(record.timestamp, keys, record.cost_total_pico))
        for key in keys:
            self._local_sums[key] += record.cost_total_pico
        return self._check(keys)

    def load(self, baseline: Mapping[BudgetKey, int], cutoff: dt.datetime) -> list[BudgetAlert]:
        """Take the ledger's month-to-date spend of records before ``cutoff`` as the baseline;
        observed records before the cutoff are now in it and are dropped."""
        if month_of(cutoff) < self._month:
            return []  # the ledger holds nothing of this month before the cutoff yet
        if month_of(cutoff) > self._month:
            self._roll(cutoff)
        self._cutoff = max(self._cutoff, cutoff)
        self._baseline = {key: amount for key, amount in baseline.items() if key in self._budgets}
        self._local = [spend for spend in self._local if spend.timestamp >= self._cutoff]
        self._local_sums = defaultdict(int)
        for spend in self._local:
            for key in spend.keys:
                self._local_sums[key] += spend.amount
        return self._check(tuple(self._budgets))

    def spent_pico(self, scope: Scope, name: str) -> int:
        self._roll_if_new_month()
        key = (scope, name)
        return self._baseline.get(key, 0) + self._local_sums.get(key, 0)

    def spent(self, scope: Scope, name: str) -> float:
        """Month-to-date spend in currency units (display)."""
        return from_pico(self.spent_pico(scope, name))

    def basis(self, scope: Scope, name: str) -> Basis:
        return self._budgets[(scope, name)].basis

    def status(self) -> list[BudgetStatus]:
        return [
            BudgetStatus(scope, name, self.spent(scope, name), budget.usd_per_month)
            for (scope, name), budget in self._budgets.items()
        ]

    def should_shed(self, feature: str, tenant: str) -> BudgetDecision:
        """Shed this call? Yes when the feature's or the tenant's budget has ``shed`` set and
        is spent (>= 100 %)."""
        for key in self._keys(feature, tenant):
            budget = self._budgets[key]
            if budget.shed and self.spent_pico(*key) >= budget.limit_pico:
                return BudgetDecision(True, key[0], key[1], self.spent(*key), budget.usd_per_month)
        return ALLOW

    def _keys(self, feature: str, tenant: str) -> tuple[BudgetKey, ...]:
        candidates: tuple[BudgetKey, ...] = (("feature", feature), ("tenant", tenant))
        return tuple(key for key in candidates if key in self._budgets)

    def _check(self, keys: Iterable[BudgetKey]) -> list[BudgetAlert]:
        alerts = []
        for key in keys:
            budget = self._budgets[key]
            spent = self.spent(*key)
            ratio = self.spent_pico(*key) / budget.limit_pico
            if self._metrics is not None:
                self._metrics.observe_budget(key[0], key[1], ratio)
            for threshold in self._alert_ratios:
                if ratio >= threshold and (key, threshold) not in self._alerted:
                    self._alerted.add((key, threshold))
                    alert = BudgetAlert(key[0], key[1], threshold, spent, budget.usd_per_month, self._month)
                    alerts.append(alert)
                    log.warning(
                        "budget alert: %s %r has spent %.0f %% of its %s budget (%.6g of %.6g USD)%s",
                        key[0], key[1], 100 * ratio, self._month, spent, budget.usd_per_month,
                        "; its traffic is now shed" if budget.shed and ratio >= 1 else "",
                    )  # fmt: skip
                    if self._metrics is not None:
                        self._metrics.observe_budget_alert(key[0], key[1], threshold)
        return alerts

    def _roll_if_new_month(self) -> None:
        now = self._clock()
        if month_of(now) > self._month:
            self._roll(now)

    def _roll(self, moment: dt.datetime) -> None:
        self._month = month_of(moment)
        self._cutoff = month_start(moment)
        self._baseline = {}
        self._local = []
        self._local_sums = defaultdict(int)
        self._alerted = set()


def refresh_from_ledger(
    tracker: BudgetTracker, ledger: object, lag_s: float, now: dt.datetime | None = None
) -> list[BudgetAlert]:
    """Load the month-to-date spend of records older than ``lag_s`` (long enough for every
    replica to have flushed them) from ``ledger`` (a LedgerBackend) into ``tracker``. Blocking:
    run it with ``asyncio.to_thread``."""
    now = now or dt.datetime.now(dt.UTC)
    cutoff = now - dt.timedelta(seconds=lag_s)
    start = month_start(cutoff)
    baseline: dict[BudgetKey, int] = {}
    for scope, basis in tracker.scopes_and_bases():
        read = ledger.fully_loaded_spend if basis == "fully_loaded" else ledger.spend  # type: ignore[attr-defined]
        for name, amount in read(scope, start, cutoff).items():
            if (scope, name) in tracker.keys_of_basis(basis):
                baseline[(scope, name)] = amount
    return tracker.load(baseline, cutoff)
