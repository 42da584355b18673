"""The items' bytes the gateway writes by hand are what protobuf puts on the wire for them:
the response carries them as they are and egress prices exactly them."""

import pytest

from gateway.answers import ModelAnswer, RankedItem
from gateway.api import common_pb2, recommendation_pb2, search_pb2
from gateway.protobuf_wire import bytes_tensor, encode_items, float32, items_from_tensors, read_bytes_tensor

CASES = [
    (),
    (RankedItem("85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 0.93),),
    (RankedItem("1", "", 0.0), RankedItem("", "x", -1.5)),  # empty and zero fields are left out
    (RankedItem("22423", "T" * 200 + " CAFÉ", 1.0),),  # a two-byte length, non-ASCII title
    tuple(RankedItem(str(i), f"ITEM {i}", i / 7) for i in range(200)),
]


def _items(ranked):
    return [common_pb2.Item(item_id=i.item_id, title=i.title, score=i.score) for i in ranked]


@pytest.mark.parametrize("ranked", CASES)
def test_the_items_bytes_are_protobufs_own_encoding(ranked):
    answer = ModelAnswer.of(ranked, compute_ns=0, model_version="1")
    assert answer.items_wire == search_pb2.SearchResponse(items=_items(ranked)).SerializeToString()
    assert answer.item_count == len(ranked)
    parsed = recommendation_pb2.RecommendResponse.FromString(answer.items_wire)
    assert [(i.item_id, i.title) for i in parsed.items] == [(i.item_id, i.title) for i in ranked]


@pytest.mark.parametrize("ranked", CASES)
def test_items_straight_from_tritons_tensors_encode_the_same(ranked):
    ids = read_bytes_tensor(bytes_tensor(i.item_id.encode() for i in ranked))
    titles = read_bytes_tensor(bytes_tensor(i.title.encode() for i in ranked))
    scores = b"".join(float32(i.score) for i in ranked)
    assert encode_items(ids, titles, scores) == ModelAnswer.of(ranked, 0, "1").items_wire


def test_a_truncated_bytes_tensor_is_refused():
    raw = bytes_tensor([b"abc", b"de"])
    with pytest.raises(ValueError):
        read_bytes_tensor(raw[:-1])
    with pytest.raises(ValueError):
        read_bytes_tensor(raw[:2])


@pytest.mark.parametrize("ranked", CASES)
def test_items_read_from_tritons_raw_tensors_in_one_pass(ranked):
    ids = bytes_tensor(i.item_id.encode() for i in ranked)
    titles = bytes_tensor(i.title.encode() for i in ranked)
    scores = b"".join(float32(i.score) for i in ranked)
    assert items_from_tensors(ids, titles, scores) == (ModelAnswer.of(ranked, 0, "1").items_wire, len(ranked))


@pytest.mark.parametrize(
    ("ids", "titles"),
    [
        ([b"ok", b"\xff"], [b"a", b"b"]),  # an id that is not UTF-8
        ([b"ok", b"x" * 200], [b"a", b"\xc3"]),  # a truncated character beside a long element
    ],
)
def test_texts_that_are_not_utf8_are_refused(ids, titles):
    with pytest.raises(ValueError):
        items_from_tensors(bytes_tensor(ids), bytes_tensor(titles), float32(1.0) * len(ids))


def test_tensors_of_different_lengths_are_refused():
    with pytest.raises(ValueError):
        items_from_tensors(bytes_tensor([b"a", b"b"]), bytes_tensor([b"t"]), float32(1.0) * 2)
    with pytest.raises(ValueError):
        items_from_tensors(bytes_tensor([b"a"]), bytes_tensor([b"t"]), float32(1.0) * 2)
