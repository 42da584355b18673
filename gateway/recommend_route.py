"""Recommend's use of the ``recommender`` model: its inputs, outputs and cache key.

The model contract is the one ``pipeline`` exports into ``model_repo/recommender``.
"""

from __future__ import annotations

from gateway.answers import ModelAnswer
from gateway.errors import BackendFailed
from gateway.protobuf_wire import bytes_tensor, int32_tensor, items_from_tensors, without_padding
from gateway.result_cache import CacheKeys
from gateway.router import Metadata, Placement, RoutedModel
from gateway.triton_infer import InferOutputs, Tensor
from gateway.triton_model import ModelState
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

    async def answer(
        self, query: RecommendQuery, timeout_s: float, metadata: Metadata = None, version: str | None = None
    ) -> tuple[ModelAnswer, Placement]:
        """``version``: the model version to call (None: the serving one)."""
        tensors: list[Tensor] = [
            ("USER_ID", "BYTES", 1, bytes_tensor((query.user_id.encode(),))),
            ("K", "INT32", 1, int32_tensor(query.k)),
        ]
        excluded = query.exclude_item_ids
        if excluded:
            tensors.append(("EXCLUDE_ITEM_IDS", "BYTES", len(excluded), bytes_tensor(item.encode() for item in excluded)))
        outputs, placement = await self.model.infer(tensors, timeout_s, metadata, version)
        answer = recommendation(outputs, outputs.model_version or version or self.model.state.version)
        self.model.record_compute(placement, answer.compute_ns)
        return answer, placement


def recommendation(outputs: InferOutputs, model_version: str) -> ModelAnswer:
    """The answer in the recommender's outputs; BackendFailed when they break its contract."""
    try:
        ids, titles, scores = outputs["ITEM_IDS"], outputs["ITEM_TITLES"], outputs["SCORES"]
        if outputs.padded:
            ids, titles, scores = without_padding(ids, titles, scores)
        items, count = items_from_tensors(ids, titles, scores)
        return ModelAnswer(
            items_wire=items,
            item_count=count,
            compute_ns=outputs.int64("COMPUTE_NS"),
            model_version=model_version,
            personalized=outputs.flag("PERSONALIZED"),
        )
    except (KeyError, ValueError) as error:
        raise BackendFailed(f"the recommender's answer breaks its contract: {error!r}") from None
