"""Request tensors of the three search models, for tritonclient's gRPC (sync or aio) API.

A request carries one query: QUERY is sent as shape ``[1, 1]`` (batch of one, dims [1]), K as
``[1, 1]``, EMBEDDING as ``[1, 384]``; the answers come back as ``[1, k]`` and ``[1, 1]``.
"""

from __future__ import annotations

import numpy as np
from tritonclient.grpc import InferInput, InferRequestedOutput

ENSEMBLE_OUTPUTS = ("ITEM_IDS", "ITEM_TITLES", "SCORES", "ENCODER_COMPUTE_NS", "INDEX_COMPUTE_NS")
ENCODER_OUTPUTS = ("EMBEDDING", "COMPUTE_NS")
INDEX_OUTPUTS = ("ITEM_IDS", "ITEM_TITLES", "SCORES", "COMPUTE_NS")


def query_input(query: str) -> InferInput:
    tensor = InferInput("QUERY", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[query.encode("utf-8")]], dtype=np.object_))
    return tensor


def k_input(k: int) -> InferInput:
    tensor = InferInput("K", [1, 1], "INT32")
    tensor.set_data_from_numpy(np.array([[k]], dtype=np.int32))
    return tensor


def embedding_input(embedding: np.ndarray) -> InferInput:
    values = np.ascontiguousarray(embedding, dtype=np.float32).reshape(1, -1)
    tensor = InferInput("EMBEDDING", list(values.shape), "FP32")
    tensor.set_data_from_numpy(values)
    return tensor


def requested(names: tuple[str, ...]) -> list[InferRequestedOutput]:
    return [InferRequestedOutput(name) for name in names]


def ensemble_request(query: str, k: int) -> dict:
    return {"inputs": [query_input(query), k_input(k)], "outputs": requested(ENSEMBLE_OUTPUTS)}


def encoder_request(query: str) -> dict:
    return {"inputs": [query_input(query)], "outputs": requested(ENCODER_OUTPUTS)}


def index_request(embedding: np.ndarray, k: int) -> dict:
    return {"inputs": [embedding_input(embedding), k_input(k)], "outputs": requested(INDEX_OUTPUTS)}


def decoded(values: np.ndarray) -> list[str]:
    return [value.decode("utf-8") if isinstance(value, bytes) else str(value) for value in values.reshape(-1)]
