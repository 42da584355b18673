"""Search's route without a server: what it asks the ensemble, what it bills, what it returns."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from gateway.result_cache import CacheKeys, CacheSecret
from gateway.router import Placement
from gateway.search_route import SearchRoute
from gateway.triton_model import ModelState
from gateway.validation import SearchQuery

PLACEMENT = Placement("cpu-local", "cpu", "private", "primary", 1)


class EnsembleResult:
    """The outputs of one product_search request, as Triton returns them."""

    def __init__(self, ids, encoder_ns, index_ns, version="3"):
        self._outputs = {
            "ITEM_IDS": np.array([[i.encode() for i in ids]], dtype=np.object_),
            "ITEM_TITLES": np.array([[f"TITLE {i}".encode() for i in ids]], dtype=np.object_),
            "SCORES": np.array([[1.0 - n / 100 for n in range(len(ids))]], dtype=np.float32),
            "ENCODER_COMPUTE_NS": np.array([[encoder_ns]], dtype=np.int64),
            "INDEX_COMPUTE_NS": np.array([[index_ns]], dtype=np.int64),
        }
        self._version = version

    def as_numpy(self, name):
        return self._outputs[name]

    def get_response(self):
        return SimpleNamespace(model_version=self._version)


class Ensemble:
    name = "product_search"

    def __init__(self, result):
        self.result = result
        self.inputs = None
        self.recorded = []
        self.state = ModelState(True, "ready", "1", "b1")

    async def infer(self, inputs, timeout_s):
        self.inputs = {tensor.name(): tensor for tensor in inputs}
        return self.result, PLACEMENT

    def record_compute(self, placement, compute_ns):
        self.recorded.append((placement.pool, compute_ns))


def _route(result):
    model = Ensemble(result)
    return SearchRoute(model, CacheKeys("t:", CacheSecret(b"search-route-test-secret"))), model


async def test_search_bills_both_models_of_the_ensemble():
    route, model = _route(EnsembleResult(["a", "b", "c"], encoder_ns=700_000, index_ns=300_000))
    answer, placement = await route.answer(SearchQuery("red bag", 3, "search_box", ()), timeout_s=1.0)
    assert answer.compute_ns == 1_000_000, "encoder 0.7 ms + index 0.3 ms, not either alone"
    assert model.recorded == [("cpu-local", 1_000_000)]
    assert placement is PLACEMENT and answer.model_version == "3"


async def test_excluded_items_are_asked_for_extra_and_filtered_out_keeping_k():
    route, model = _route(EnsembleResult(["a", "x", "b", "y", "c", "d"], 1, 1))
    answer, _ = await route.answer(SearchQuery("red bag", 3, "search_box", ("x", "y")), timeout_s=1.0)
    assert [item.item_id for item in answer.items] == ["a", "b", "c"]
    assert model.inputs["QUERY"].shape() == [1, 1] and model.inputs["K"].shape() == [1, 1]


async def test_k_plus_the_excluded_count_is_what_the_index_is_asked_for():
    route, model = _route(EnsembleResult(["a", "b", "c", "d", "e"], 1, 1))
    await route.answer(SearchQuery("jam jar", 2, "search_box", ("q", "r", "s")), timeout_s=1.0)
    k_tensor = model.inputs["K"]
    assert np.frombuffer(k_tensor._get_content(), dtype=np.int32).tolist() == [5], "2 asked + 3 excluded"
    query = model.inputs["QUERY"]
    assert query.datatype() == "BYTES"


def test_the_cache_key_follows_every_input_but_not_the_feature():
    route, _ = _route(EnsembleResult([], 0, 0))
    state = ModelState(True, "ready", "1", "b1")
    base = route.cache_key(SearchQuery("red bag", 10, "search_box", ()), state)
    assert route.cache_key(SearchQuery("red bag", 10, "search_autocomplete", ()), state) == base
    assert route.cache_key(SearchQuery("red bag", 11, "search_box", ()), state) != base
    assert route.cache_key(SearchQuery("red bag", 10, "search_box", ("a",)), state) != base
    assert route.cache_key(SearchQuery("red bag", 10, "search_box", ()), ModelState(True, "ready", "2", "b1")) != base
