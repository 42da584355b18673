import pytest

from gateway.errors import InvalidArgument
from gateway.validation import Limits, validate_recommend, validate_search

LIMITS = Limits(max_k=200, max_exclude_item_ids=3, max_id_length=16)


def valid(**overrides):
    fields = {"user_id": "17850", "k": 10, "feature": "home_feed", "exclude_item_ids": ["85123A"]}
    fields.update(overrides)
    return fields


def test_a_valid_request_is_normalised():
    query = validate_recommend(**valid(exclude_item_ids=["b", "a", "b"]), limits=LIMITS)
    assert query.user_id == "17850"
    assert query.k == 10
    assert query.feature == "home_feed"
    assert query.exclude_item_ids == ("a", "b")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"user_id": ""}, "user_id"),
        ({"user_id": "   "}, "user_id"),
        ({"user_id": "x" * 17}, "user_id"),
        ({"k": 0}, "k"),
        ({"k": -3}, "k"),
        ({"k": 201}, "k"),
        ({"feature": ""}, "feature"),
        ({"feature": "Home Feed"}, "feature"),
        ({"feature": "1st_feed"}, "feature"),
        ({"feature": "a" * 65}, "feature"),
        ({"exclude_item_ids": ["a", "b", "c", "d"]}, "exclude_item_ids"),
        ({"exclude_item_ids": [""]}, "exclude_item_ids"),
    ],
)
def test_bad_fields_are_named(overrides, field):
    with pytest.raises(InvalidArgument) as raised:
        validate_recommend(**valid(**overrides), limits=LIMITS)
    assert raised.value.field == field
    assert raised.value.status == "INVALID_ARGUMENT"
    assert str(raised.value).startswith(f"{field}:")


def test_k_bounds_are_inclusive():
    assert validate_recommend(**valid(k=1), limits=LIMITS).k == 1
    assert validate_recommend(**valid(k=200), limits=LIMITS).k == 200


def valid_search(**overrides):
    fields = {"query": "  Red  RETROSPOT lunch bag ", "k": 10, "feature": "search_box", "exclude_item_ids": []}
    fields.update(overrides)
    return fields


def test_a_search_query_is_normalised():
    query = validate_search(**valid_search(query="Cafe\u0301  Mugs\t"), limits=LIMITS)
    assert query.text == "caf\u00e9 mugs"
    assert validate_search(**valid_search(), limits=LIMITS).text == "red retrospot lunch bag"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": " \t\n "}, "query"),
        ({"query": "x" * 257}, "query"),
        ({"k": 0}, "k"),
        ({"k": 201}, "k"),
        ({"feature": "Search Box"}, "feature"),
        ({"exclude_item_ids": ["a", "b", "c", "d"]}, "filters.exclude_item_ids"),
    ],
)
def test_bad_search_fields_are_named(overrides, field):
    with pytest.raises(InvalidArgument) as raised:
        validate_search(**valid_search(**overrides), limits=LIMITS)
    assert raised.value.field == field


def test_the_query_limit_counts_characters_after_collapsing_whitespace():
    assert len(validate_search(**valid_search(query="a" * 256), limits=LIMITS).text) == 256
    assert validate_search(**valid_search(query="a " + " " * 300 + "b"), limits=LIMITS).text == "a b"

