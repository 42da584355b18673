"""What a model answers, independent of the RPC that asked.

The items are kept as the protobuf bytes of ``repeated Item items = 1`` (gateway/protobuf_wire.py):
both responses carry them as field 1, the cache stores them and egress prices exactly them,
so an answer goes from Triton to the caller without becoming a Python object per item.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway.protobuf_wire import encode_ranked


@dataclass(frozen=True)
class RankedItem:
    item_id: str
    title: str
    score: float


@dataclass(frozen=True, slots=True)
class ModelAnswer:
    """Items of one request (wire bytes) with the compute the model(s) measured for it."""

    items_wire: bytes
    item_count: int
    compute_ns: int
    model_version: str
    personalized: bool = False

    @classmethod
    def of(cls, items: Iterable[RankedItem], compute_ns: int, model_version: str, personalized: bool = False) -> ModelAnswer:
        """An answer from plain items (tests, fakes)."""
        ranked = [(item.item_id, item.title, item.score) for item in items]
        return cls(encode_ranked(ranked), len(ranked), compute_ns, model_version, personalized)
