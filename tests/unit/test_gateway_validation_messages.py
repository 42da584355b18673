"""What a caller reads when a field is wrong: the exact message, field first (the API contract
of INVALID_ARGUMENT), and what a valid request normalises to."""

import pytest

from gateway.errors import InvalidArgument
from gateway.validation import Limits, SearchQuery, validate_recommend, validate_search

LIMITS = Limits(max_k=200, max_exclude_item_ids=3, max_id_length=8, max_query_chars=20)


def _recommend(user_id="17850", k=5, feature="home_feed", excludes=()):
    return validate_recommend(user_id, k, feature, list(excludes), LIMITS)


def _search(query="red bag", k=5, feature="search_box", excludes=()):
    return validate_search(query, k, feature, list(excludes), LIMITS)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: _recommend(user_id=""), "user_id: is required"),
        (lambda: _recommend(user_id="   "), "user_id: must not be empty"),
        (lambda: _recommend(user_id="123456789"), "user_id: is longer than 8 bytes"),
        (lambda: _recommend(user_id="ééééé"), "user_id: is longer than 8 bytes"),  # 10 bytes in UTF-8
        (lambda: _recommend(k=0), "k: must be between 1 and 200, got 0"),
        (lambda: _recommend(k=201), "k: must be between 1 and 200, got 201"),
        (lambda: _recommend(feature=""), "feature: is required (e.g. 'home_feed'); finance attributes cost by it"),
        (
            lambda: _recommend(feature="Home Feed"),
            "feature: 'Home Feed' is not a feature label: use 1-64 lower-case letters, digits or '_', starting with a letter",
        ),
        (
            lambda: _recommend(feature="home_feed\n"),
            "feature: 'home_feed\\n' is not a feature label: use 1-64 lower-case letters, digits or '_', starting with a letter",
        ),
        (lambda: _recommend(excludes=["a", "b", "c", "d"]), "exclude_item_ids: has 4 ids; at most 3 are accepted"),
        (lambda: _recommend(excludes=["a", " "]), "exclude_item_ids: must not be empty"),
        (lambda: _search(query=""), "query: is required"),
        (lambda: _search(query=" \t\n"), "query: must contain a non-space character"),
        (lambda: _search(query="x" * 21), "query: has 21 characters; at most 20 are accepted"),
        (lambda: _search(k=0), "k: must be between 1 and 200, got 0"),
        (lambda: _search(excludes=["123456789"]), "filters.exclude_item_ids: is longer than 8 bytes"),
    ],
)
def test_each_bad_field_is_named_with_what_to_do(call, message):
    with pytest.raises(InvalidArgument) as raised:
        call()
    assert raised.value.message == message
    assert raised.value.field == message.split(":", 1)[0]


def test_boundaries_are_accepted():
    assert _recommend(user_id="12345678", k=200, excludes=["a", "b", "c"]).k == 200
    assert _recommend(k=1).k == 1
    assert _search(query="x" * 20).text == "x" * 20
    assert _recommend(feature="a" + "b" * 63).feature == "a" + "b" * 63


def test_a_search_is_normalised_so_variants_share_one_answer():
    query = _search(query="  Red\u00a0 BAG  ", excludes=["b", "a", "b"])
    assert query == SearchQuery(text="red bag", k=5, feature="search_box", exclude_item_ids=("a", "b"))
    assert _recommend(excludes=["z", "a", "z"]).exclude_item_ids == ("a", "z")
