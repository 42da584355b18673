"""The responses' bytes, written by hand: the cached (or freshly encoded) items, then the
``ResponseInfo`` that says how the answer was made and what it cost.

Byte for byte what protobuf serialises for the same ``RecommendResponse``/``SearchResponse``
(canonical proto3: defaults left out; checked by tests/unit/test_gateway_response_wire.py). The
parts that repeat from call to call (the model reference, the placement) are encoded once.
"""

from __future__ import annotations

import struct
from functools import lru_cache

from gateway.protobuf_wire import length_delimited, varint
from gateway.settlement import AnswerInfo

_DOUBLE = struct.Struct("<d")
# RecommendResponse{items = 1, personalized = 2, info = 3}; SearchResponse{items = 1, info = 2}.
_PERSONALIZED = b"\x10\x01"
_RECOMMEND_INFO, _SEARCH_INFO = b"\x1a", b"\x12"
# ResponseInfo{request_id = 1, model = 2, placement = 3, cache_hit = 4, cost = 5}.
_REQUEST_ID, _MODEL, _PLACEMENT, _CACHE_HIT, _COST = b"\x0a", b"\x12", b"\x1a", b"\x20\x01", b"\x2a"
# Cost{currency = 1, total = 2, compute = 3, gateway = 4, cache = 5, avoided = 6 (doubles),
#      compute_ns = 7 (int64), price_book_version = 8, egress = 9 (double)}.
_COST_DOUBLES = (b"\x11", b"\x19", b"\x21", b"\x29", b"\x31")
_COMPUTE_NS, _PRICE_BOOK, _EGRESS = b"\x38", b"\x42", b"\x49"


def recommend_response(items_wire: bytes, personalized: bool, info: AnswerInfo) -> bytes:
    return items_wire + (_PERSONALIZED if personalized else b"") + length_delimited(_RECOMMEND_INFO, response_info(info))


def search_response(items_wire: bytes, info: AnswerInfo) -> bytes:
    return items_wire + length_delimited(_SEARCH_INFO, response_info(info))


def response_info(info: AnswerInfo) -> bytes:
    out = length_delimited(_REQUEST_ID, info.request_id.encode()) if info.request_id else b""
    out += _model_ref(info.model_name, info.model_version, info.build_id)
    out += _placement(info.pool, info.device, info.location, info.route_reason, info.attempts)
    if info.cache_hit:
        out += _CACHE_HIT
    cost = info.cost
    body = _string(b"\x0a", cost.currency)
    for tag, value in zip(_COST_DOUBLES, (cost.total, cost.compute, cost.gateway, cost.cache, cost.avoided)):
        if value:
            body += tag + _DOUBLE.pack(value)
    if cost.compute_ns:
        body += _COMPUTE_NS + varint(cost.compute_ns)
    body += _string(_PRICE_BOOK, cost.price_book_version)
    if cost.egress:
        body += _EGRESS + _DOUBLE.pack(cost.egress)
    return out + length_delimited(_COST, body)


def _string(tag: bytes, text: str) -> bytes:
    return length_delimited(tag, text.encode()) if text else b""


@lru_cache(maxsize=256)
def _model_ref(name: str, version: str, build_id: str) -> bytes:
    body = _string(b"\x0a", name) + _string(b"\x12", version) + _string(b"\x1a", build_id)
    return length_delimited(_MODEL, body)  # a set message field is sent even when empty


@lru_cache(maxsize=256)
def _placement(pool: str, device: str, location: str, reason: str, attempts: int) -> bytes:
    body = _string(b"\x0a", pool) + _string(b"\x12", device) + _string(b"\x1a", location) + _string(b"\x22", reason)
    if attempts:
        body += b"\x28" + varint(attempts)
    return length_delimited(_PLACEMENT, body)
