"""Recommend's use of the ``recommender`` model: its inputs, outputs and cache key.

The model contract is the one ``pipeline`` exports into ``model_repo/recommender``.
"""

from __future__ import annotations

from gateway.answers import ModelAnswer
from gateway.result_cache import CacheKeys
from gateway.router import Placement, RoutedModel
from gateway.triton_model import ModelState, bytes_input, first_int64, int32_input, ranked_items
from gateway.validation import RecommendQuery


class RecommendRoute:
    rpc = "Recommend"

    def __init__(self, model: RoutedModel, cache_keys: CacheKeys) -> None:
        self.model = model
        self._cache_keys = cache_keys

    def cache_key(self, query: RecommendQuery, state: ModelState) -> str:
        """``feature`` labels cost but does not change the answer, so it is not in the key."""
        return self._cache_keys.key(
            self.rpc, self.model.name, state.version, state.build_id,
            [query.user_id, query.k, query.exclude_item_ids],
        )

    async def answer(self, query: RecommendQuery, timeout_s: float) -> tuple[ModelAnswer, Placement]:
        inputs = [bytes_input("USER_ID", [query.user_id]), int32_input("K", query.k)]
        if query.exclude_item_ids:
            inputs.append(bytes_input("EXCLUDE_ITEM_IDS", list(query.exclude_item_ids)))
        result, placement = await self.model.infer(inputs, timeout_s)
        answer = ModelAnswer(
            items=ranked_items(result),
            compute_ns=first_int64(result, "COMPUTE_NS"),
            model_version=result.get_response().model_version or self.model.state.version,
            personalized=bool(result.as_numpy("PERSONALIZED")[0][0]),
        )
        self.model.record_compute(placement, answer.compute_ns)
        return answer, placement
