"""What a model answers, independent of the RPC that asked."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RankedItem:
    item_id: str
    title: str
    score: float


@dataclass(frozen=True)
class ModelAnswer:
    """Items of one request with the compute the model(s) measured for it."""

    items: tuple[RankedItem, ...]
    compute_ns: int
    model_version: str
    personalized: bool = False
