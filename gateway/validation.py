"""Validation of incoming requests into plain, normalised queries.

Pure functions: they raise :class:`InvalidArgument` naming the offending field and never touch
I/O, so they are unit-tested without a server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.errors import InvalidArgument

# Finance groups cost by this label, so it must be stable and safe as a column value.
FEATURE_LABEL = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Limits:
    """Bounds a request must respect (from Settings)."""

    max_k: int
    max_exclude_item_ids: int
    max_id_length: int


@dataclass(frozen=True)
class RecommendQuery:
    """A validated Recommend request. ``exclude_item_ids`` is sorted and de-duplicated, since
    order and repeats do not change the answer (and so must not change the cache key)."""

    user_id: str
    k: int
    feature: str
    exclude_item_ids: tuple[str, ...]


def validate_feature(feature: str) -> str:
    if not feature:
        raise InvalidArgument("feature", "is required (e.g. 'home_feed'); finance attributes cost by it")
    if not FEATURE_LABEL.match(feature):
        raise InvalidArgument(
            "feature",
            f"{feature[:80]!r} is not a feature label: use 1-64 lower-case letters, digits or '_', "
            "starting with a letter",
        )
    return feature


def _validate_id(field: str, value: str, limits: Limits) -> str:
    if not value.strip():
        raise InvalidArgument(field, "must not be empty")
    if len(value.encode()) > limits.max_id_length:
        raise InvalidArgument(field, f"is longer than {limits.max_id_length} bytes")
    return value


def validate_recommend(user_id: str, k: int, feature: str, exclude_item_ids: list[str], limits: Limits) -> RecommendQuery:
    """Checks a Recommend request field by field, in the order a caller reads them."""
    if not user_id:
        raise InvalidArgument("user_id", "is required")
    _validate_id("user_id", user_id, limits)
    if not 1 <= k <= limits.max_k:
        raise InvalidArgument("k", f"must be between 1 and {limits.max_k}, got {k}")
    validate_feature(feature)
    if len(exclude_item_ids) > limits.max_exclude_item_ids:
        raise InvalidArgument(
            "exclude_item_ids", f"has {len(exclude_item_ids)} ids; at most {limits.max_exclude_item_ids} are accepted"
        )
    for item_id in exclude_item_ids:
        _validate_id("exclude_item_ids", item_id, limits)
    return RecommendQuery(
        user_id=user_id,
        k=k,
        feature=feature,
        exclude_item_ids=tuple(sorted(set(exclude_item_ids))),
    )
