from gateway.api import recommendation_pb2, search_pb2
from gateway.lenient_decoding import UndecodableRequest, lenient_deserializer


def test_a_valid_request_decodes_as_usual():
    request = search_pb2.SearchRequest(query="red bag", k=3, feature="search_box")
    assert lenient_deserializer(search_pb2.SearchRequest)(request.SerializeToString()) == request


def test_bad_utf8_names_the_field_even_when_nested():
    wire = search_pb2.SearchRequest(
        query="QQ", k=3, feature="search_box", filters=search_pb2.SearchFilters(exclude_item_ids=["ZZ"])
    ).SerializeToString()
    decode = lenient_deserializer(search_pb2.SearchRequest)
    assert decode(wire.replace(b"QQ", b"\xff\xfe")) == UndecodableRequest("query", "is not valid UTF-8")
    assert decode(wire.replace(b"ZZ", b"\xc3\x28")) == UndecodableRequest(
        "filters.exclude_item_ids", "is not valid UTF-8"
    )


def test_garbage_is_named_as_the_request():
    decoded = lenient_deserializer(recommendation_pb2.RecommendRequest)(b"\xff\xff\xff")
    assert decoded == UndecodableRequest("request", "is not a valid protobuf message")
