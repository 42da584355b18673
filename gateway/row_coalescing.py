"""Concurrent calls of one model version sent to Triton as one request of several rows.

Each gRPC call costs the gateway's Python client as much as the rest of a miss's proxying
work, and each request costs Triton its own scheduling and its Python backend's own round trip;
one request carrying N rows (its batch dimension) costs about what one call costs, and Triton's
model runs the rows as one batch (benchmarks/README.md has the figures). When will rows meet?
The gateway spends most of a millisecond of CPU on each call, so calls rarely reach the model in
the same loop iteration; what makes them meet is Nagle's rule. While fewer than ``busy_requests``
requests are in flight a call goes out as soon as the loop has run what was already ready (a
lone call waits for nothing); from then on the model is busy, a new call would queue in Triton
anyway, and it waits in the gateway instead, at most ``max_wait_s``, for a request to return: the
calls that gathered meanwhile go together.

Only a model whose config declares ``padded_rows`` (model_repo/recommender/1/model.py) is
coalesced: its string inputs shorter than the request's width are padded with empty strings, and
its outputs are [rows, width], a shorter row padded at its end (:attr:`InferOutputs.padded`).

Each call keeps what is its own:
- its deadline: a timer of its own; the request's gRPC deadline is the latest of its rows';
- its cancellation: a caller that goes away leaves the request running for the others;
- its retries and excluded endpoints: a request that fails in transport fails every row with
  the same error, and each call retries on its own through the router;
- its compute: each row's own COMPUTE_NS.
A request the model refuses (a malformed row fails its whole request) is sent again row by row,
so only the malformed row fails. The request carries the ``traceparent`` of its first row that
has one: Triton's trace of a coalesced request belongs to that row's trace.
"""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import Sequence

import grpc
from tritonclient.grpc import service_pb2

from gateway.errors import BackendFailed
from gateway.triton_infer import InferOutputs, InferStub, Tensor, infer_request

Metadata = tuple[tuple[str, str], ...] | None
# One waiting call: its tensors, its deadline (the loop's clock), its metadata and its future.
Pending = tuple[Sequence[Tensor], float, Metadata, "asyncio.Future[InferOutputs]"]

# A padding element of a BYTES tensor: the empty string (its 4-byte length, 0).
EMPTY_STRING = b"\x00\x00\x00\x00"
# Failures of the request itself, not of a row: every row gets them (and retries on its own).
TRANSPORT_CODES = frozenset(
    (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED)
)
_UINT32 = struct.Struct("<I")


class RowCoalescer:
    """Calls of one version of one model on one endpoint, at most ``max_rows`` per request.

    While ``busy_requests`` of its requests are already in flight, a new call waits up to
    ``max_wait_s`` for others to share its request (Nagle's rule: the model is busy with those,
    so the wait costs little); the rows held go as soon as a request in flight returns."""

    def __init__(
        self,
        stub: InferStub,
        model: str,
        version: str,
        max_rows: int,
        max_wait_s: float = 0.0,
        busy_requests: int = 1,
    ) -> None:
        self._stub = stub
        self._model = model
        self._version = version
        self._max_rows = max_rows
        self._max_wait_s = max_wait_s
        self._busy_requests = busy_requests
        self._pending: list[Pending] = []
        self._scheduled: asyncio.Handle | None = None
        self._in_flight = 0  # requests sent and not answered yet
        self._tasks: set[asyncio.Task[None]] = set()

    async def infer(self, tensors: Sequence[Tensor], timeout_s: float, metadata: Metadata) -> InferOutputs:
        """One row's outputs; raises what its request raised (grpc.aio.AioRpcError,
        BackendFailed) or asyncio.TimeoutError when ``timeout_s`` passes first."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[InferOutputs] = loop.create_future()
        pending = self._pending
        pending.append((tensors, loop.time() + timeout_s, metadata, future))
        if len(pending) >= self._max_rows:
            self._flush()
        elif self._scheduled is None:
            if self._in_flight >= self._busy_requests:
                self._scheduled = loop.call_later(self._max_wait_s, self._flush)
            else:
                self._scheduled = loop.call_soon(self._flush)
        timer = loop.call_later(timeout_s, _expire, future)
        try:
            return await future
        finally:
            timer.cancel()

    def _flush(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        batch = [pending for pending in self._pending if not pending[3].done()]  # callers gone: no row
        self._pending = []
        if not batch:
            return
        self._in_flight += 1
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._in_flight -= 1
        if self._pending:  # rows held while it was in flight
            self._flush()

    async def _send(self, batch: list[Pending]) -> None:
        try:
            await self._send_batch(batch)
        except Exception as error:  # noqa: BLE001 - unforeseen: every row still waiting gets it
            _fail(batch, error)

    async def _send_batch(self, batch: list[Pending]) -> None:
        if len(batch) == 1:
            await self._send_row(batch[0])
            return
        merged = merge_rows([tensors for tensors, *_ in batch])
        if merged is None:
            await asyncio.gather(*(self._send_row(pending) for pending in batch))
            return
        timeout_s = max(deadline for _, deadline, _, _ in batch) - asyncio.get_running_loop().time()
        metadata = next((metadata for _, _, metadata, _ in batch if metadata), None)
        request = infer_request(self._model, self._version, merged, len(batch))
        try:
            response = await self._stub.infer_response(request, timeout_s, metadata)
        except grpc.aio.AioRpcError as error:
            if error.code() in TRANSPORT_CODES:
                _fail(batch, error)
            else:  # the model refused the request: row by row, so only a malformed row fails
                await asyncio.gather(*(self._send_row(pending) for pending in batch))
            return
        except asyncio.CancelledError:  # the loop is closing: so are the callers
            for *_, future in batch:
                future.cancel()
            raise
        try:
            rows = split_rows(response, len(batch))
        except ValueError as error:
            _fail(batch, BackendFailed(f"model {self._model!r} answered {len(batch)} rows out of shape: {error}"))
            return
        for (*_, future), outputs in zip(batch, rows):
            if not future.done():
                future.set_result(outputs)

    async def _send_row(self, pending: Pending) -> None:
        tensors, deadline, metadata, future = pending
        if future.done():
            return
        timeout_s = deadline - asyncio.get_running_loop().time()
        try:
            outputs = await self._stub.infer(infer_request(self._model, self._version, tensors), timeout_s, metadata)
        except Exception as error:  # noqa: BLE001 - handed to its caller (TritonModel translates gRPC's)
            if not future.done():
                future.set_exception(error)
            return
        if not future.done():
            future.set_result(outputs)


def _expire(future: asyncio.Future[InferOutputs]) -> None:
    if not future.done():
        future.set_exception(asyncio.TimeoutError())


def _fail(batch: list[Pending], error: Exception) -> None:
    for *_, future in batch:
        if not future.done():
            future.set_exception(error)


def merge_rows(rows: Sequence[Sequence[Tensor]]) -> list[Tensor] | None:
    """The rows' tensors as one request's, [rows, width]: a BYTES tensor padded with empty
    strings to the widest row (a row without it is all padding); None when the rows cannot share
    a request (a non-BYTES tensor missing from a row or of another width, or a datatype that
    differs between rows)."""
    by_row = [{name: (datatype, width, raw) for name, datatype, width, raw in tensors} for tensors in rows]
    names = list(dict.fromkeys(name for tensors in rows for name, *_ in tensors))
    merged: list[Tensor] = []
    for name in names:
        found = [row.get(name) for row in by_row]
        datatypes = {entry[0] for entry in found if entry is not None}
        if len(datatypes) != 1:
            return None
        (datatype,) = datatypes
        if datatype == "BYTES":
            width = max(entry[1] for entry in found if entry is not None)
            raw = b"".join(
                EMPTY_STRING * width if entry is None else entry[2] + EMPTY_STRING * (width - entry[1])
                for entry in found
            )
        else:
            widths = {None if entry is None else entry[1] for entry in found}
            if len(widths) != 1 or None in widths:
                return None
            (width,) = widths
            raw = b"".join(entry[2] for entry in found if entry is not None)
        merged.append((name, datatype, width, raw))
    return merged


def split_rows(response: service_pb2.ModelInferResponse, rows: int) -> list[InferOutputs]:
    """Each row's outputs of a response to a request of ``rows`` rows (marked ``padded``);
    ValueError when an output is not [rows, ...] or its bytes do not add up."""
    per_row: list[dict[str, bytes]] = [{} for _ in range(rows)]
    for output, raw in zip(response.outputs, response.raw_output_contents, strict=True):
        shape = list(output.shape)
        if not shape or shape[0] != rows:
            raise ValueError(f"output {output.name} has shape {shape}")
        if output.datatype == "BYTES":
            parts = _split_bytes(raw, rows, math.prod(shape[1:]))
        else:
            size, remainder = divmod(len(raw), rows)
            if remainder:
                raise ValueError(f"output {output.name} has {len(raw)} bytes for {rows} rows")
            parts = [raw[row * size : (row + 1) * size] for row in range(rows)]
        for row, part in zip(per_row, parts):
            row[output.name] = part
    return [InferOutputs(response.model_version, raw, padded=True) for raw in per_row]


def _split_bytes(raw: bytes, rows: int, width: int) -> list[bytes]:
    """A raw BYTES tensor of ``rows`` rows of ``width`` elements, cut into its rows."""
    unpack = _UINT32.unpack_from
    parts = []
    start = position = 0
    try:
        for _ in range(rows):
            for _ in range(width):
                (size,) = unpack(raw, position)
                position += 4 + size
            parts.append(raw[start:position])
            start = position
    except struct.error:
        raise ValueError("a BYTES output is truncated") from None
    if position > len(raw):
        raise ValueError("a BYTES output is truncated")
    if position < len(raw):
        raise ValueError("a BYTES output is longer than its shape")
    return parts
