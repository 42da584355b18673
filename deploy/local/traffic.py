"""A realistic, seeded stream of Recommend and Search calls drawn from the real dataset.

Customers are ranked by how often they ordered and drawn with Zipf-like weights (1/rank^s), so
the busiest shoppers come back often and the cache sees repeats, as a real home feed would.
A small share of ids are unknown shoppers (new visitors), answered by popularity.

Search queries are made from the titles of products drawn by sales popularity (again
Zipf-like): a few words of the title for the search box, a word and a half for autocomplete,
plus a short hand-written list of descriptive queries that share no word with a title.
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
DEMO_SEARCH_FEATURES = (
    FeatureProfile("search_box", 0.6, 20, 0),
    FeatureProfile("search_autocomplete", 0.4, 5, 0),
)
DEMO_TENANTS = (("shop-uk", 0.7), ("shop-eu", 0.3))
# Shoppers' descriptive queries (hand-written): they test meaning, not word overlap.
DESCRIPTIVE_QUERIES = (
    "something to keep tea hot",
    "gift for a gardener",
    "christmas tree decorations",
    "birthday party supplies for kids",
    "storage for the kitchen",
    "vintage style home decor",
)
DESCRIPTIVE_SHARE = 0.1


@dataclass(frozen=True)
class PlannedCall:
    rpc: str  # "Recommend" or "Search"
    feature: str
    k: int
    tenant: str
    user_id: str = ""
    query: str = ""
    exclude_item_ids: tuple[str, ...] = ()


def _zipf_weights(n: int, s: float) -> list[float]:
    return [1.0 / (rank**s) for rank in range(1, n + 1)]


def plan_calls(
    interactions: pd.DataFrame,
    n_calls: int,
    seed: int,
    zipf_s: float = 1.1,
    unknown_share: float = 0.03,
) -> list[PlannedCall]:
    """Recommend calls. ``interactions`` has the cleaned columns user_id, item_id and invoice."""
    rng = random.Random(seed)
    orders = interactions.groupby("user_id")["invoice"].nunique().sort_values(ascending=False, kind="stable")
    users = list(orders.index)
    weights = _zipf_weights(len(users), zipf_s)
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
        tenant = rng.choices(tenants, weights=tenant_shares)[0]
        calls.append(PlannedCall("Recommend", profile.name, profile.k, tenant, user_id=user, exclude_item_ids=cart))
    return calls


def plan_searches(
    interactions: pd.DataFrame, titles: dict[str, str], n_calls: int, seed: int, zipf_s: float = 1.1
) -> list[PlannedCall]:
    """Search calls for the products shoppers buy most (Zipf over sales rank)."""
    rng = random.Random(seed)
    best_sellers = [item for item in interactions["item_id"].value_counts().index if len(titles.get(item, "").split()) >= 2]
    weights = _zipf_weights(len(best_sellers), zipf_s)
    features = [profile.share for profile in DEMO_SEARCH_FEATURES]
    tenants, tenant_shares = zip(*DEMO_TENANTS)
    calls = []
    for _ in range(n_calls):
        profile = rng.choices(DEMO_SEARCH_FEATURES, weights=features)[0]
        words = titles[rng.choices(best_sellers, weights=weights)[0]].lower().split()
        if profile.name == "search_autocomplete":
            query = f"{words[0]} {words[1][: max(1, len(words[1]) // 2)]}"
        elif rng.random() < DESCRIPTIVE_SHARE:
            query = rng.choice(DESCRIPTIVE_QUERIES)
        else:
            query = " ".join(words[-min(len(words), 3) :])
        tenant = rng.choices(tenants, weights=tenant_shares)[0]
        calls.append(PlannedCall("Search", profile.name, profile.k, tenant, query=query))
    return calls
