"""Validation of incoming requests into plain, normalised queries.

Pure functions: they raise :class:`InvalidArgument` naming the offending field and never touch
I/O, so they are unit-tested without a server.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from gateway.errors import InvalidArgument

# Finance groups cost by this label, so it must be stable and safe as a column value. Always
# fullmatch: with match, "$" also matches before a final newline ("home_feed\n").
FEATURE_LABEL = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass(frozen=True)
class Limits:
    """Bounds a request must respect (from Settings)."""

    max_k: int
    max_exclude_item_ids: int
    max_id_length: int
    max_query_chars: int = 256


@dataclass(frozen=True)
class RecommendQuery:
    """A validated Recommend request."""

    user_id: str
    k: int
    feature: str
    exclude_item_ids: tuple[str, ...]


@dataclass(frozen=True)
class SearchQuery:
    """A validated Search request. ``text`` is NFC-normalised, lower-cased and has its whitespace
    collapsed: the encoder is uncased and ignores spacing, so such variants share one answer
    (and one cache entry)."""

    text: str
    k: int
    feature: str
    exclude_item_ids: tuple[str, ...]


def validate_feature(feature: str) -> str:
    if not feature:
        raise InvalidArgument("feature", "is required (e.g. 'home_feed'); finance attributes cost by it")
    if not FEATURE_LABEL.fullmatch(feature):
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


def _validate_k(k: int, limits: Limits) -> int:
    if not 1 <= k <= limits.max_k:
        raise InvalidArgument("k", f"must be between 1 and {limits.max_k}, got {k}")
    return k


def _validate_item_ids(field: str, item_ids: list[str], limits: Limits) -> tuple[str, ...]:
    """Sorted and de-duplicated: order and repeats do not change an answer (nor its cache key)."""
    if len(item_ids) > limits.max_exclude_item_ids:
        raise InvalidArgument(field, f"has {len(item_ids)} ids; at most {limits.max_exclude_item_ids} are accepted")
    for item_id in item_ids:
        _validate_id(field, item_id, limits)
    return tuple(sorted(set(item_ids)))


def validate_recommend(user_id: str, k: int, feature: str, exclude_item_ids: list[str], limits: Limits) -> RecommendQuery:
    """Checks a Recommend request field by field, in the order a caller reads them."""
    if not user_id:
        raise InvalidArgument("user_id", "is required")
    _validate_id("user_id", user_id, limits)
    _validate_k(k, limits)
    validate_feature(feature)
    excluded = _validate_item_ids("exclude_item_ids", exclude_item_ids, limits)
    return RecommendQuery(user_id=user_id, k=k, feature=feature, exclude_item_ids=excluded)


def validate_search(query: str, k: int, feature: str, exclude_item_ids: list[str], limits: Limits) -> SearchQuery:
    """Checks a Search request field by field, in the order a caller reads them."""
    if not query:
        raise InvalidArgument("query", "is required")
    text = " ".join(unicodedata.normalize("NFC", query).split()).lower()
    if not text:
        raise InvalidArgument("query", "must contain a non-space character")
    if len(text) > limits.max_query_chars:
        raise InvalidArgument("query", f"has {len(text)} characters; at most {limits.max_query_chars} are accepted")
    _validate_k(k, limits)
    validate_feature(feature)
    excluded = _validate_item_ids("filters.exclude_item_ids", exclude_item_ids, limits)
    return SearchQuery(text=text, k=k, feature=feature, exclude_item_ids=excluded)
