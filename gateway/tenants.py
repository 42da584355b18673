"""The registered tenants and the features each one declares: the only tenant and feature
labels that reach metrics, spans, budgets and the ledger, so their number is bounded by
configuration, not by what callers send.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from gateway.admission import TenantRate
from gateway.errors import InvalidArgument
from gateway.validation import FEATURE_LABEL

TENANT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
FEATURE_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
# The one label an undeclared feature is counted under, when configured to count rather than reject.
OTHER_FEATURE = "other"
# The label of a call whose feature is malformed or undeclared (and so rejected).
INVALID_FEATURE = "invalid"

UndeclaredFeature = Literal["reject", "other"]


class TenantConfig(BaseModel):
    """A tenant: its canonical id and the product features its calls may name."""

    id: str = Field(pattern=TENANT_PATTERN, description="Canonical tenant id, e.g. 'shop-uk'.")
    features: list[Annotated[str, StringConstraints(pattern=FEATURE_PATTERN)]] = Field(
        min_length=1, description="Features finance reports on, e.g. ['home_feed', 'cart_upsell', 'search_box']."
    )
    rate_per_s: float | None = Field(
        None, gt=0, description="Calls per second this tenant may make to one gateway (token bucket); empty: unlimited."
    )
    burst: float | None = Field(None, ge=1, description="Calls above the rate a tenant may burst to (default: one second's worth).")


def tenant_rates(tenants: list[TenantConfig]) -> dict[str, TenantRate]:
    """The token-bucket rate of every tenant that has one."""
    return {
        tenant.id: TenantRate(tenant.rate_per_s, tenant.burst or max(1.0, tenant.rate_per_s))
        for tenant in tenants
        if tenant.rate_per_s is not None
    }


class TenantRegistry:
    """Which features a tenant may name, and what an undeclared one becomes."""

    def __init__(self, tenants: list[TenantConfig], undeclared: UndeclaredFeature = "reject") -> None:
        self._features = {tenant.id: frozenset(tenant.features) for tenant in tenants}
        self._undeclared = undeclared

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(self._features)

    def label(self, tenant: str, feature: str) -> str:
        """The bounded label a call is recorded under, never raising: the feature if declared,
        ``other`` if undeclared ones are counted, else ``invalid`` (the call is then rejected)."""
        if not FEATURE_LABEL.fullmatch(feature):
            return INVALID_FEATURE
        if feature in self._features.get(tenant, ()):
            return feature
        return OTHER_FEATURE if self._undeclared == "other" else INVALID_FEATURE

    def unknown_budget_names(self, budgets: list[tuple[str, str]]) -> list[str]:
        """Budgets (scope, name) that name no registered tenant or no declared feature: they
        could never be spent, so a misspelt one must fail at start-up, not stay silent."""
        features = set().union(*self._features.values()) if self._features else set()
        known = {"tenant": set(self._features), "feature": features | {OTHER_FEATURE}}
        return [f"{scope} {name!r}" for scope, name in budgets if name not in known.get(scope, set())]

    def feature_label(self, tenant: str, feature: str) -> str:
        """``feature`` if the tenant declared it; else ``other`` or INVALID_ARGUMENT, as configured.
        (The feature's format is validated before this.)"""
        declared = self._features.get(tenant, frozenset())
        if feature in declared:
            return feature
        if self._undeclared == "other":
            return OTHER_FEATURE
        raise InvalidArgument(
            "feature", f"{feature!r} is not declared for tenant {tenant} (declared: {', '.join(sorted(declared))})"
        )
