"""Triton's ModelInfer over a raw gRPC stub: the request written from templates, the outputs
read as raw bytes.

tritonclient builds an ``InferInput`` (numpy, then protobuf) per tensor and converts every output
back through numpy; on the hot path that was ~100 µs per call. Here the model name, version and
each tensor's header are encoded once and cached, a request is those bytes plus its raw
contents, and the response is parsed by protobuf's C code and read with ``int.from_bytes`` and
slices. tritonclient stays for everything else (readiness, metadata, configuration, statistics).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import grpc
from tritonclient.grpc import service_pb2

from gateway.protobuf_wire import length_delimited, varint

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
# ModelInferRequest fields: model_name = 1, model_version = 2, inputs = 5, raw_input_contents = 7;
# InferInputTensor: name = 1, datatype = 2, shape = 3 (packed int64).
_MODEL_NAME, _MODEL_VERSION, _INPUTS, _RAW_INPUT = b"\x0a", b"\x12", b"\x2a", b"\x3a"
_TENSOR_NAME, _TENSOR_DATATYPE, _TENSOR_SHAPE = b"\x0a", b"\x12", b"\x1a"

# One input of one row (a request's batch entry): name, Triton datatype, the number of elements
# in the row, and its raw contents. Its header is encoded (and cached) when the request is written.
Tensor = tuple[str, str, int, bytes]


@lru_cache(maxsize=4096)
def tensor_header(name: str, datatype: str, shape: tuple[int, ...]) -> bytes:
    """The ``inputs`` entry of one tensor (cached: shapes repeat)."""
    body = length_delimited(_TENSOR_NAME, name.encode())
    body += length_delimited(_TENSOR_DATATYPE, datatype.encode())
    body += length_delimited(_TENSOR_SHAPE, b"".join(varint(d) for d in shape))
    return length_delimited(_INPUTS, body)


@lru_cache(maxsize=256)
def model_header(model: str, version: str) -> bytes:
    header = length_delimited(_MODEL_NAME, model.encode())
    return header + length_delimited(_MODEL_VERSION, version.encode()) if version else header


def infer_request(model: str, version: str, tensors: Sequence[Tensor], rows: int = 1) -> bytes:
    """A serialised ModelInferRequest of ``rows`` rows, each tensor shaped [rows, width] (all
    outputs requested, as tritonclient does by default)."""
    return (
        model_header(model, version)
        + b"".join(tensor_header(name, datatype, (rows, width)) for name, datatype, width, _ in tensors)
        + b"".join(_RAW_INPUT + varint(len(raw)) + raw for *_, raw in tensors)
    )


class InferOutputs:
    """The raw outputs of one response (or of one row of it) by name; ``model_version`` as
    Triton reports it; ``padded``: a row of a several-rows response, its outputs padded to the
    widest row's (gateway/row_coalescing.py)."""

    __slots__ = ("model_version", "_raw", "padded")

    def __init__(self, model_version: str, raw: dict[str, bytes], padded: bool = False) -> None:
        self.model_version = model_version
        self._raw = raw
        self.padded = padded

    @classmethod
    def of(cls, response: service_pb2.ModelInferResponse) -> InferOutputs:
        return cls(response.model_version, dict(zip([o.name for o in response.outputs], response.raw_output_contents)))

    def __getitem__(self, name: str) -> bytes:
        """KeyError for an output the response lacks (a model that broke its contract)."""
        return self._raw[name]

    def int64(self, name: str) -> int:
        """The first element of an INT64 output."""
        return int.from_bytes(self._raw[name][:8], "little", signed=True)

    def flag(self, name: str) -> bool:
        """The first element of a BOOL output."""
        return self._raw[name][:1] not in (b"", b"\x00")


class InferStub:
    """ModelInfer of one Triton endpoint on its own channel (serialisation is ours)."""

    def __init__(self, url: str, channel_args: Sequence[tuple[str, int]]) -> None:
        self._channel = grpc.aio.insecure_channel(url, options=list(channel_args))
        self._call = self._channel.unary_unary(
            MODEL_INFER, request_serializer=None, response_deserializer=service_pb2.ModelInferResponse.FromString
        )

    async def infer(
        self, request: bytes, timeout_s: float, metadata: tuple[tuple[str, str], ...] | None
    ) -> InferOutputs:
        """Raises grpc.aio.AioRpcError as Triton (or the channel) fails it."""
        return InferOutputs.of(await self._call(request, timeout=timeout_s, metadata=metadata))

    async def infer_response(
        self, request: bytes, timeout_s: float, metadata: tuple[tuple[str, str], ...] | None
    ) -> service_pb2.ModelInferResponse:
        """The parsed response, for a request of several rows (gateway/row_coalescing.py splits it)."""
        return await self._call(request, timeout=timeout_s, metadata=metadata)

    async def close(self) -> None:
        await self._channel.close()
