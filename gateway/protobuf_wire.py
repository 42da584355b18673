"""Protobuf and Triton tensor bytes written and read by hand, for the hot path.

An answer's items travel from Triton's raw output tensors to the caller's response without
becoming Python objects: item ids and titles are already UTF-8 bytes in Triton's BYTES tensors
and the scores little-endian float32, exactly what protobuf puts on the wire for a
``repeated Item items = 1`` field. The same bytes are what the cache stores and what egress
prices. The encoding is canonical proto3 (empty strings and zero scores left out), so it is
byte for byte what ``SerializeToString`` makes of the same items.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

_UINT32 = struct.Struct("<I")
_INT32 = struct.Struct("<i")
_FLOAT = struct.Struct("<f")
_ZERO_FLOAT = b"\x00\x00\x00\x00"
_NEGATIVE_ZERO_FLOAT = b"\x00\x00\x00\x80"
# Tags of Item{item_id = 1, title = 2 (strings), score = 3 (float)} and of a field-1 message.
_ITEM_ID_TAG = b"\x0a"
_TITLE_TAG = b"\x12"
_SCORE_TAG = b"\x1d"
_ITEMS_TAG = b"\x0a"
# One-byte varints, the common case of every length here.
_SMALL_VARINTS = tuple(bytes((n,)) for n in range(128))


def varint(value: int) -> bytes:
    """Unsigned LEB128, as protobuf writes lengths and non-negative integers."""
    if value < 128:
        return _SMALL_VARINTS[value]
    out = bytearray()
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def length_delimited(tag: bytes, body: bytes) -> bytes:
    """A bytes, string or message field: tag, length, body."""
    return tag + varint(len(body)) + body


def encode_item(item_id: bytes, title: bytes, score: bytes) -> bytes:
    """One ``Item`` message, its fields in canonical form (``score``: 4 little-endian bytes)."""
    body = b""
    if item_id:
        body = _ITEM_ID_TAG + varint(len(item_id)) + item_id
    if title:
        body += _TITLE_TAG + varint(len(title)) + title
    if score != _ZERO_FLOAT and score != _NEGATIVE_ZERO_FLOAT:
        body += _SCORE_TAG + score
    return _ITEMS_TAG + varint(len(body)) + body


def items_from_tensors(ids_tensor: bytes, titles_tensor: bytes, scores: bytes) -> tuple[bytes, int]:
    """``repeated Item items = 1`` and the item count, straight from Triton's raw ITEM_IDS and
    ITEM_TITLES (BYTES) and SCORES (FP32) tensors of one request; ValueError when they do not
    agree or a text is not UTF-8 (protobuf strings must be)."""
    count = len(scores) // 4
    if len(scores) != 4 * count:
        raise ValueError("SCORES is not a float32 tensor")
    unpack, small = _UINT32.unpack_from, _SMALL_VARINTS
    out = []
    append = out.append
    i = t = 0
    short = True  # every text under 128 bytes: the common, fast case
    try:
        for n in range(count):
            (id_len,) = unpack(ids_tensor, i)
            (title_len,) = unpack(titles_tensor, t)
            item_id = ids_tensor[i + 4 : i + 4 + id_len]
            title = titles_tensor[t + 4 : t + 4 + title_len]
            i += 4 + id_len
            t += 4 + title_len
            score = scores[4 * n : 4 * n + 4]
            if 0 < id_len < 128 and 0 < title_len < 128 and score != _ZERO_FLOAT and score != _NEGATIVE_ZERO_FLOAT:
                body = b"\x0a%b%b\x12%b%b\x1d%b" % (small[id_len], item_id, small[title_len], title, score)
                append(b"\x0a%b%b" % (small[len(body)], body) if len(body) < 128 else _ITEMS_TAG + varint(len(body)) + body)
            else:
                short = short and id_len < 128 and title_len < 128
                append(encode_item(item_id, title, score))
    except struct.error:
        raise ValueError("BYTES tensor is truncated") from None
    if i != len(ids_tensor) or t != len(titles_tensor):
        raise ValueError("ITEM_IDS, ITEM_TITLES and SCORES differ in length")
    for tensor in (ids_tensor, titles_tensor):
        _check_utf8(tensor, short)
    return b"".join(out), count


def without_padding(ids_tensor: bytes, titles_tensor: bytes, scores: bytes) -> tuple[bytes, bytes, bytes]:
    """A padded row of ITEM_IDS, ITEM_TITLES and SCORES cut before its first empty id (an item id
    is never empty: the padding of the recommender's several-rows contract)."""
    ids = read_bytes_tensor(ids_tensor)
    if b"" not in ids:
        return ids_tensor, titles_tensor, scores
    count = ids.index(b"")
    titles = read_bytes_tensor(titles_tensor)[:count]
    return (
        ids_tensor[: 4 * count + sum(map(len, ids[:count]))],
        titles_tensor[: 4 * count + sum(map(len, titles))],
        scores[: 4 * count],
    )


def _check_utf8(tensor: bytes, short: bool) -> None:
    """Every element of a raw BYTES tensor is UTF-8. When every element is under 128 bytes its
    4-byte length is ASCII, so no character can straddle two elements and decoding the whole
    tensor at once checks them all; otherwise element by element."""
    if short:
        tensor.decode()
        return
    for element in read_bytes_tensor(tensor):
        element.decode()


def encode_items(item_ids: Sequence[bytes], titles: Sequence[bytes], scores: bytes) -> bytes:
    """``repeated Item items = 1`` for parallel ids, titles and packed float32 scores."""
    return b"".join(
        encode_item(item_id, title, scores[4 * i : 4 * i + 4])
        for i, (item_id, title) in enumerate(zip(item_ids, titles, strict=True))
    )


def encode_ranked(items: Iterable[tuple[str, str, float]]) -> bytes:
    """The same field from (id, title, score) tuples (tests, and Search after filtering)."""
    return b"".join(
        encode_item(item_id.encode(), title.encode(), _FLOAT.pack(score)) for item_id, title, score in items
    )


def float32(value: float) -> bytes:
    return _FLOAT.pack(value)


# --- Triton's tensors ------------------------------------------------------------------------


def bytes_tensor(values: Iterable[bytes]) -> bytes:
    """Triton's raw BYTES tensor: each element as a 4-byte little-endian length and its bytes."""
    return b"".join(_UINT32.pack(len(value)) + value for value in values)


def int32_tensor(value: int) -> bytes:
    return _INT32.pack(value)


def read_bytes_tensor(raw: bytes) -> list[bytes]:
    """The elements of a raw BYTES tensor; ValueError when the lengths do not add up."""
    out = []
    position, end = 0, len(raw)
    unpack = _UINT32.unpack_from
    try:
        while position < end:
            (size,) = unpack(raw, position)
            position += 4
            out.append(raw[position : position + size])
            position += size
    except struct.error:
        raise ValueError("BYTES tensor is truncated") from None
    if position != end:
        raise ValueError("BYTES tensor is truncated")
    return out
