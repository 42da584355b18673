"""Search's route without a server: what it asks the ensemble, what it bills, what it returns."""

from __future__ import annotations

import struct

from gateway.api import search_pb2
from gateway.protobuf_wire import bytes_tensor
from gateway.result_cache import CacheKeys, CacheSecret
from gateway.router import Placement
from gateway.search_route import SearchRoute
from gateway.triton_model import ModelState
from gateway.validation import SearchQuery
from tests.support import search_outputs

PLACEMENT = Placement("cpu-local", "cpu", "private", "primary", 1)


class Ensemble:
    name = "product_search"

    def __init__(self, outputs):
        self.outputs = outputs
        self.tensors: list[bytes] = []
        self.recorded = []
        self.state = ModelState(True, "ready", "1", "b1")

    async def infer(self, tensors, timeout_s, metadata=None, version=None):
        self.tensors = [raw for *_, raw in tensors]  # QUERY, K
        return self.outputs, PLACEMENT

    def record_compute(self, placement, compute_ns):
        self.recorded.append((placement.pool, compute_ns))


def _route(outputs):
    model = Ensemble(outputs)
    return SearchRoute(model, CacheKeys("t:", CacheSecret(b"search-route-test-secret"))), model


def _item_ids(answer) -> list[str]:
    response = search_pb2.SearchResponse.FromString(answer.items_wire)
    return [item.item_id for item in response.items]


async def test_search_bills_both_models_of_the_ensemble():
    route, model = _route(search_outputs(["a", "b", "c"], encoder_ns=700_000, index_ns=300_000))
    answer, placement = await route.answer(SearchQuery("red bag", 3, "search_box", ()), timeout_s=1.0)
    assert answer.compute_ns == 1_000_000, "encoder 0.7 ms + index 0.3 ms, not either alone"
    assert model.recorded == [("cpu-local", 1_000_000)]
    assert placement is PLACEMENT and answer.model_version == "3"


async def test_excluded_items_are_asked_for_extra_and_filtered_out_keeping_k():
    route, model = _route(search_outputs(["a", "x", "b", "y", "c", "d"], encoder_ns=1, index_ns=1))
    answer, _ = await route.answer(SearchQuery("jam jar", 3, "search_box", ("x", "y")), timeout_s=1.0)
    assert _item_ids(answer) == ["a", "b", "c"] and answer.item_count == 3
    query, k = model.tensors
    assert struct.unpack("<i", k)[0] == 5, "3 asked + 2 excluded"
    assert query == bytes_tensor([b"jam jar"])


def test_the_cache_key_follows_every_input_but_not_the_feature():
    route, _ = _route(search_outputs([], encoder_ns=0, index_ns=0))
    state = ModelState(True, "ready", "1", "b1")
    base = route.cache_key(SearchQuery("red bag", 10, "search_box", ()), state)
    assert route.cache_key(SearchQuery("red bag", 10, "search_autocomplete", ()), state) == base
    assert route.cache_key(SearchQuery("red bag", 11, "search_box", ()), state) != base
    assert route.cache_key(SearchQuery("red bag", 10, "search_box", ("a",)), state) != base
    assert route.cache_key(SearchQuery("red bag", 10, "search_box", ()), ModelState(True, "ready", "2", "b1")) != base


async def test_a_padded_row_of_a_shared_request_answers_only_its_own_items():
    """A row of a several-rows answer is padded at its end with empty ids: they are no items."""
    route, _ = _route(search_outputs(["A", "B", "C", "", ""], encoder_ns=5, index_ns=7))
    answer, _ = await route.answer(SearchQuery(text="bag", k=4, exclude_item_ids=("B",), feature="search_box"), 1.0)
    assert _item_ids(answer) == ["A", "C"]
    assert answer.item_count == 2 and answer.compute_ns == 12
