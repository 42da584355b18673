"""A realistic, seeded stream of Recommend calls drawn from the real customers of the dataset.

Customers are ranked by how often they ordered and drawn with Zipf-like weights (1/rank^s), so
the busiest shoppers come back often and the cache sees repeats, as a real home feed would.
A small share of ids are unknown shoppers (new visitors), answered by popularity.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class FeatureProfile:
    """How a product feature calls Recommend: its share of traffic, k and cart-size range."""

    name: str
    share: float
    k: int
    max_excluded: int


# The product surfaces of the demo shop; cart_upsell excludes what is already in the cart.
DEMO_FEATURES = (
    FeatureProfile("home_feed", 0.55, 20, 0),
    FeatureProfile("cart_upsell", 0.30, 5, 3),
    FeatureProfile("order_confirmation", 0.15, 10, 0),
)
DEMO_TENANTS = (("shop-uk", 0.7), ("shop-eu", 0.3))


@dataclass(frozen=True)
class PlannedCall:
    user_id: str
    feature: str
    k: int
    exclude_item_ids: tuple[str, ...]
    tenant: str


def plan_calls(
    interactions: pd.DataFrame,
    n_calls: int,
    seed: int,
    zipf_s: float = 1.1,
    unknown_share: float = 0.03,
) -> list[PlannedCall]:
    """``interactions`` has the cleaned columns user_id, item_id and invoice."""
    rng = random.Random(seed)
    orders = interactions.groupby("user_id")["invoice"].nunique().sort_values(ascending=False, kind="stable")
    users = list(orders.index)
    weights = [1.0 / (rank**zipf_s) for rank in range(1, len(users) + 1)]
    popular_items = list(interactions["item_id"].value_counts().index[:500])
    features = [profile.share for profile in DEMO_FEATURES]
    tenants, tenant_shares = zip(*DEMO_TENANTS)
    calls = []
    for _ in range(n_calls):
        profile = rng.choices(DEMO_FEATURES, weights=features)[0]
        if rng.random() < unknown_share:
            user = f"visitor-{rng.randrange(10**6)}"
        else:
            user = str(rng.choices(users, weights=weights)[0])
        cart = tuple(rng.sample(popular_items, rng.randint(1, profile.max_excluded))) if profile.max_excluded else ()
        calls.append(PlannedCall(user, profile.name, profile.k, cart, rng.choices(tenants, weights=tenant_shares)[0]))
    return calls
