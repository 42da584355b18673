"""The calls the benchmark sends, drawn from the real data (customers, products, judged search queries).

- :func:`recommend_mix`: the demo's realistic mix (``deploy.local.traffic.plan_calls``):
  customers with Zipf-like popularity, three product features, carts to exclude, two tenants.
- :func:`distinct_recommend_calls`: every call a different cache key (user x k), for cache misses.
- :func:`search_mix`: the judged search queries of the search build, in a seeded order.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from deploy.local.settings import LocalStackSettings
from deploy.local.traffic import plan_calls
from pipeline.data import load_clean_data
from pipeline.recommender.config import RecommenderPipelineSettings

SEARCH_FEATURE = "search_box"
SEARCH_K = 10
JUDGED_QUERIES = Path("product_search") / "1" / "artifacts" / "judged_queries.json"
MAX_K = 200


@lru_cache(maxsize=1)
def _interactions(data_dir: str) -> pd.DataFrame:
    return load_clean_data(Path(data_dir) / RecommenderPipelineSettings().dataset_file).interactions


def recommend_mix(local_settings: LocalStackSettings, n: int, seed: int, zipf_s: float = 1.1) -> list[dict[str, Any]]:
    calls = plan_calls(_interactions(str(local_settings.data_dir)), n, seed, zipf_s=zipf_s)
    return [{**asdict(call), "exclude_item_ids": list(call.exclude_item_ids)} for call in calls]


def known_users(local_settings: LocalStackSettings) -> list[str]:
    return sorted(str(user) for user in _interactions(str(local_settings.data_dir))["user_id"].unique())


def distinct_recommend_calls(
    users: list[str], n: int, offset: int = 0, feature: str = "home_feed"
) -> list[dict[str, Any]]:
    """``n`` calls with pairwise different (user, k), starting at position ``offset`` of the
    enumeration user-major within k = 1..200; disjoint ranges give disjoint cache keys."""
    if offset + n > len(users) * MAX_K:
        raise ValueError(f"only {len(users) * MAX_K} distinct (user, k) pairs exist")
    return [
        {
            "user_id": users[position % len(users)],
            "k": 1 + position // len(users),
            "feature": feature,
            "exclude_item_ids": [],
        }
        for position in range(offset, offset + n)
    ]


def tagged_calls(calls: list[dict[str, Any]], n: int, tag: str) -> list[dict[str, Any]]:
    """``n`` calls that cycle through ``calls`` (same users, k and carts) but each with its own
    cache key: one unknown item id (``<tag>-<i>``, which the model ignores) added to the
    excluded items. Misses (or hot keys) shaped like the traffic they are compared with."""
    return [
        {**call, "exclude_item_ids": [*call.get("exclude_item_ids", ()), f"{tag}-{i}"]}
        for i, call in ((i, calls[i % len(calls)]) for i in range(n))
    ]


def search_mix(model_repository: Path, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` search calls cycling over the judged queries in a seeded order."""
    queries = [entry["query"] for entry in json.loads((model_repository / JUDGED_QUERIES).read_text())]
    random.Random(seed).shuffle(queries)
    return [
        {"query": queries[i % len(queries)], "k": SEARCH_K, "feature": SEARCH_FEATURE, "exclude_item_ids": []}
        for i in range(n)
    ]
