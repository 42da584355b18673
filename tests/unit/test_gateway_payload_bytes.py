"""The priced egress of an answer equals what protobuf puts on the wire for its items."""

import pytest

from gateway.answers import ModelAnswer, RankedItem
from gateway.api import search_pb2
from gateway.grpc_call import items, payload_bytes


@pytest.mark.parametrize(
    "ranked",
    [
        (),
        (RankedItem("85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 0.93),),
        (RankedItem("1", "", 0.0), RankedItem("", "x", -1.5)),  # empty and zero fields are left out
        (RankedItem("22423", "T" * 200 + " CAFÉ", 1.0),),  # a two-byte length, non-ASCII title
        tuple(RankedItem(str(i), f"ITEM {i}", i / 7) for i in range(200)),
    ],
)
def test_payload_bytes_is_the_encoded_size_of_the_items(ranked):
    answer = ModelAnswer(items=ranked, compute_ns=0, model_version="1")
    assert payload_bytes(answer) == search_pb2.SearchResponse(items=items(ranked)).ByteSize()
