"""What the load generator calls: Tollgate's RPCs over grpc.aio, or a Triton model over tritonclient's aio client.

Each target is an async context manager (it owns its channel) and a ``call(index)`` for the
engine. Calls are plain dicts, the same for the gateway and for Triton, so "direct Triton"
gets exactly the inputs the gateway would send for the same request:

- recommend: ``user_id``, ``k``, ``feature``, ``exclude_item_ids``, optional ``tenant``;
- search: ``query``, ``k``, ``feature``, ``exclude_item_ids``.

The gateway's answer carries its cost (``info.cost``) and cache flag; a Triton answer carries
the model-measured ``COMPUTE_NS``. Both are summed into the run's extras.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
import tritonclient.grpc.aio as triton_aio
from tritonclient.utils import InferenceServerException

from benchmarks.load_engine import Outcome
from benchmarks.load_spec import LoadSpec

# Outputs of the search ensemble that carry each step's compute (as the gateway sums them).
SEARCH_COMPUTE_OUTPUTS = ("ENCODER_COMPUTE_NS", "INDEX_COMPUTE_NS")


def _bytes_input(name: str, values: list[str]) -> triton_aio.InferInput:
    array = np.array([[value.encode() for value in values]], dtype=np.object_)
    tensor = triton_aio.InferInput(name, list(array.shape), "BYTES")
    tensor.set_data_from_numpy(array)
    return tensor


def _int32_input(name: str, value: int) -> triton_aio.InferInput:
    tensor = triton_aio.InferInput(name, [1, 1], "INT32")
    tensor.set_data_from_numpy(np.array([[value]], dtype=np.int32))
    return tensor


def recommender_inputs(call: dict[str, Any]) -> list[triton_aio.InferInput]:
    """The recommender's inputs for one Recommend call (as the gateway's recommend route builds them)."""
    inputs = [_bytes_input("USER_ID", [call["user_id"]]), _int32_input("K", int(call["k"]))]
    excluded = sorted(set(call.get("exclude_item_ids") or ()))
    if excluded:
        inputs.append(_bytes_input("EXCLUDE_ITEM_IDS", excluded))
    return inputs


def search_query(call: dict[str, Any]) -> tuple[str, int]:
    """What the gateway sends the ensemble for a Search call: the query as it normalises it
    (whitespace collapsed, lower case) and k plus the excluded items (filtered out afterwards)."""
    text = " ".join(call["query"].split()).lower()
    return text, int(call["k"]) + len(set(call.get("exclude_item_ids") or ()))


def search_inputs(call: dict[str, Any]) -> list[triton_aio.InferInput]:
    text, k = search_query(call)
    return [_bytes_input("QUERY", [text]), _int32_input("K", k)]


def encoder_inputs(call: dict[str, Any]) -> list[triton_aio.InferInput]:
    return [_bytes_input("QUERY", [search_query(call)[0]])]


class _Target:
    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self._calls = spec.calls

    def call_for(self, index: int) -> dict[str, Any]:
        return self._calls[index % len(self._calls)]

    async def __aenter__(self) -> _Target:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def __call__(self, index: int) -> Outcome:  # pragma: no cover - interface
        raise NotImplementedError


class _GatewayTarget(_Target):
    """Common part of the Tollgate RPCs: ``spec.channels`` aio channels (each its own
    connection, so that a gateway's SO_REUSEPORT workers all get calls), used in turn; the
    tenant's API key; cost extras."""

    def __init__(self, spec: LoadSpec) -> None:
        super().__init__(spec)
        self._channels: list[grpc.aio.Channel] = []
        self._methods: list[Callable[..., Any]] = []

    async def __aenter__(self) -> _GatewayTarget:
        for index in range(self.spec.channels):
            # A channel argument of its own per channel: gRPC then shares no connection between them.
            options = [("grpc.use_local_subchannel_pool", 1), ("tollgate.bench.channel", index)]
            channel = grpc.aio.insecure_channel(self.spec.address, options=options)
            self._channels.append(channel)
            self._methods.append(self._bind(channel))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for channel in self._channels:
            await channel.close()

    def _bind(self, channel: grpc.aio.Channel) -> Callable[..., Any]:  # pragma: no cover - interface
        raise NotImplementedError

    def _request(self, call: dict[str, Any]) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    async def __call__(self, index: int) -> Outcome:
        call = self.call_for(index)
        token = self.spec.api_keys.get(call.get("tenant", self.spec.tenant))
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        method = self._methods[index % len(self._methods)]
        try:
            response = await method(self._request(call), timeout=self.spec.deadline_s, metadata=metadata)
        except grpc.aio.AioRpcError as error:
            return Outcome(status=error.code().name)
        info = response.info
        cost = info.cost
        return Outcome(
            extras={
                "cache_hit": float(info.cache_hit),
                "cost_total": cost.total,
                "cost_compute": cost.compute,
                "cost_gateway": cost.gateway,
                "cost_cache": cost.cache,
                "cost_avoided": cost.avoided,
                "compute_ns": float(cost.compute_ns),
                "items": float(len(response.items)),
            }
        )


class GatewayRecommend(_GatewayTarget):
    def _bind(self, channel: grpc.aio.Channel) -> Callable[..., Any]:
        from gateway.api import recommendation_pb2_grpc

        return recommendation_pb2_grpc.RecommendationServiceStub(channel).Recommend

    def _request(self, call: dict[str, Any]) -> Any:
        from gateway.api import recommendation_pb2

        return recommendation_pb2.RecommendRequest(
            user_id=call["user_id"],
            k=int(call["k"]),
            feature=call["feature"],
            exclude_item_ids=list(call.get("exclude_item_ids") or ()),
        )


class GatewaySearch(_GatewayTarget):
    """Needs ``gateway/api/search_pb2*`` (SearchService); imported only when used."""

    def _bind(self, channel: grpc.aio.Channel) -> Callable[..., Any]:
        from gateway.api import search_pb2_grpc

        return search_pb2_grpc.SearchServiceStub(channel).Search

    def _request(self, call: dict[str, Any]) -> Any:
        from gateway.api import search_pb2

        return search_pb2.SearchRequest(
            query=call["query"],
            k=int(call["k"]),
            feature=call["feature"],
            filters=search_pb2.SearchFilters(exclude_item_ids=list(call.get("exclude_item_ids") or ())),
        )


class _TritonTarget(_Target):
    """One tritonclient aio client; the model's COMPUTE_NS output(s) summed into ``compute_ns``."""

    compute_outputs: tuple[str, ...] = ("COMPUTE_NS",)

    def __init__(self, spec: LoadSpec) -> None:
        super().__init__(spec)
        self._client: triton_aio.InferenceServerClient | None = None

    async def __aenter__(self) -> _TritonTarget:
        self._client = triton_aio.InferenceServerClient(self.spec.address)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.close()

    def _inputs(self, call: dict[str, Any]) -> list[triton_aio.InferInput]:  # pragma: no cover - interface
        raise NotImplementedError

    async def __call__(self, index: int) -> Outcome:
        assert self._client is not None
        inputs = self._inputs(self.call_for(index))
        try:
            result = await self._client.infer(self.spec.model, inputs, client_timeout=self.spec.deadline_s)
        except InferenceServerException as error:
            return Outcome(status=_triton_status(error))
        compute_ns = sum(int(result.as_numpy(name)[0][0]) for name in self.compute_outputs)
        return Outcome(extras={"compute_ns": float(compute_ns)})


class TritonRecommender(_TritonTarget):
    def _inputs(self, call: dict[str, Any]) -> list[triton_aio.InferInput]:
        return recommender_inputs(call)


class TritonSearch(_TritonTarget):
    compute_outputs = SEARCH_COMPUTE_OUTPUTS

    def _inputs(self, call: dict[str, Any]) -> list[triton_aio.InferInput]:
        return search_inputs(call)


class TritonEncoder(_TritonTarget):
    def _inputs(self, call: dict[str, Any]) -> list[triton_aio.InferInput]:
        return encoder_inputs(call)


def _triton_status(error: InferenceServerException) -> str:
    status = error.status() or "TRITON_ERROR"
    return status.removeprefix("StatusCode.")


TARGET_CLASSES: dict[str, type[_Target]] = {
    "gateway.recommend": GatewayRecommend,
    "gateway.search": GatewaySearch,
    "triton.recommender": TritonRecommender,
    "triton.search": TritonSearch,
    "triton.encoder": TritonEncoder,
}


def make_target(spec: LoadSpec) -> _Target:
    return TARGET_CLASSES[spec.target](spec)
