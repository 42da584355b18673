"""Coalescing concurrent calls of one model version into one request of several rows, against a
fake Triton stub (the real model and gateway: tests/e2e/test_recommend_gateway.py)."""

from __future__ import annotations

import asyncio
import struct

import grpc
import pytest
from tritonclient.grpc import service_pb2

from gateway.errors import BackendFailed
from gateway.protobuf_wire import bytes_tensor, int32_tensor, read_bytes_tensor, without_padding
from gateway.row_coalescing import RowCoalescer, merge_rows, split_rows
from gateway.triton_infer import InferOutputs, InferStub, infer_request
from gateway.triton_model import rows_per_request

TRACE = (("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),)


def row(user: str, k: int, exclude: tuple[str, ...] = ()) -> list:
    tensors = [("USER_ID", "BYTES", 1, bytes_tensor([user.encode()])), ("K", "INT32", 1, int32_tensor(k))]
    if exclude:
        tensors.append(("EXCLUDE_ITEM_IDS", "BYTES", len(exclude), bytes_tensor(e.encode() for e in exclude)))
    return tensors


def parsed(request: bytes) -> service_pb2.ModelInferRequest:
    return service_pb2.ModelInferRequest.FromString(request)


def answer_rows(request: service_pb2.ModelInferRequest) -> service_pb2.ModelInferResponse:
    """What a padded_rows model answers: per row, ``k`` items named after its user, width = max k."""
    raw = dict(zip([tensor.name for tensor in request.inputs], request.raw_input_contents))
    users = read_bytes_tensor(raw["USER_ID"])
    ks = [value for (value,) in struct.iter_unpack("<i", raw["K"])]
    width = max(ks)
    ids = [[b"%s-%d" % (user, n) for n in range(k)] + [b""] * (width - k) for user, k in zip(users, ks)]
    response = service_pb2.ModelInferResponse(model_name=request.model_name, model_version=request.model_version or "1")
    for name, datatype, shape, contents in (
        ("ITEM_IDS", "BYTES", [len(users), width], bytes_tensor(i for r in ids for i in r)),
        ("SCORES", "FP32", [len(users), width], b"".join(struct.pack("<f", 1.0 if i else 0.0) for r in ids for i in r)),
        ("COMPUTE_NS", "INT64", [len(users), 1], b"".join(struct.pack("<q", 100 + n) for n in range(len(users)))),
    ):
        response.outputs.add(name=name, datatype=datatype, shape=shape)
        response.raw_output_contents.append(contents)
    return response


class RpcError(grpc.aio.AioRpcError):
    def __init__(self, code: grpc.StatusCode, details: str = "") -> None:
        super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


class FakeStub(InferStub):
    """Answers as a padded_rows model does; ``fail``: the error of every several-rows request;
    ``refuse``: users whose row makes the model refuse the request."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.requests: list[tuple[service_pb2.ModelInferRequest, float, object]] = []
        self.delay_s = delay_s
        self.fail: grpc.aio.AioRpcError | None = None
        self.refuse: set[bytes] = set()
        self.response_of = answer_rows

    async def infer_response(self, request, timeout_s, metadata):
        message = parsed(request)
        self.requests.append((message, timeout_s, metadata))
        await asyncio.sleep(self.delay_s)
        users = read_bytes_tensor(dict(zip([t.name for t in message.inputs], message.raw_input_contents))["USER_ID"])
        if self.fail is not None and len(users) > 1:
            raise self.fail
        if self.refuse & set(users):
            raise RpcError(grpc.StatusCode.INTERNAL, "K must be a positive integer")
        return self.response_of(message)

    async def infer(self, request, timeout_s, metadata):
        return InferOutputs.of(await self.infer_response(request, timeout_s, metadata))

    def rows_sent(self) -> list[int]:
        return [request.inputs[0].shape[0] for request, _, _ in self.requests]


def items(outputs: InferOutputs) -> list[bytes]:
    ids = outputs["ITEM_IDS"]
    if outputs.padded:
        ids, _, _ = without_padding(ids, ids, outputs["SCORES"])
    return read_bytes_tensor(ids)


async def test_calls_of_one_loop_iteration_share_one_request_and_each_gets_its_own_row() -> None:
    stub = FakeStub()
    coalescer = RowCoalescer(stub, "recommender", "2", max_rows=32)
    results = await asyncio.gather(
        coalescer.infer(row("a", 2), 1.0, None),
        coalescer.infer(row("b", 3, ("x", "y")), 1.0, TRACE),
        coalescer.infer(row("c", 1, ("z",)), 1.0, None),
    )
    assert stub.rows_sent() == [3]
    assert [items(outputs) for outputs in results] == [[b"a-0", b"a-1"], [b"b-0", b"b-1", b"b-2"], [b"c-0"]]
    assert [outputs.int64("COMPUTE_NS") for outputs in results] == [100, 101, 102]  # each row's own compute
    assert all(outputs.padded and outputs.model_version == "2" for outputs in results)
    request, timeout_s, metadata = stub.requests[0]
    assert request.model_name == "recommender" and request.model_version == "2"
    assert metadata == TRACE  # the first row's traceparent that there is
    assert 0.9 < timeout_s <= 1.0
    exclude = next(tensor for tensor in request.inputs if tensor.name == "EXCLUDE_ITEM_IDS")
    assert list(exclude.shape) == [3, 2]
    assert read_bytes_tensor(request.raw_input_contents[list(request.inputs).index(exclude)]) == [
        b"", b"", b"x", b"y", b"z", b"",
    ]


async def test_a_lone_call_is_a_request_of_one_row() -> None:
    stub = FakeStub()
    outputs = await RowCoalescer(stub, "recommender", "1", max_rows=32).infer(row("a", 2, ("x",)), 1.0, TRACE)
    assert stub.rows_sent() == [1]
    assert not outputs.padded and items(outputs) == [b"a-0", b"a-1"]
    _, timeout_s, metadata = stub.requests[0]
    assert 0.9 < timeout_s <= 1.0 and metadata == TRACE
    assert stub.requests[0][0].SerializeToString() == parsed(infer_request("recommender", "1", row("a", 2, ("x",)))).SerializeToString()


async def test_no_request_carries_more_rows_than_allowed() -> None:
    stub = FakeStub()
    coalescer = RowCoalescer(stub, "recommender", "1", max_rows=4)
    results = await asyncio.gather(*(coalescer.infer(row(f"u{n}", 1), 1.0, None) for n in range(10)))
    assert stub.rows_sent() == [4, 4, 2]
    assert [items(outputs) for outputs in results] == [[f"u{n}-0".encode()] for n in range(10)]


async def test_each_call_keeps_its_own_deadline_and_the_request_the_latest() -> None:
    stub = FakeStub(delay_s=0.2)
    coalescer = RowCoalescer(stub, "recommender", "1", max_rows=32)
    short = asyncio.ensure_future(coalescer.infer(row("a", 1), 0.05, None))
    long = asyncio.ensure_future(coalescer.infer(row("b", 1), 2.0, None))
    with pytest.raises(asyncio.TimeoutError):
        await short
    assert not long.done()  # its row is still on its way
    assert items(await long) == [b"b-0"]
    assert stub.rows_sent() == [2] and 1.9 < stub.requests[0][1] <= 2.0


async def test_a_caller_that_goes_away_leaves_the_request_to_the_others() -> None:
    stub = FakeStub(delay_s=0.05)
    coalescer = RowCoalescer(stub, "recommender", "1", max_rows=32)
    leaving = asyncio.ensure_future(coalescer.infer(row("a", 1), 1.0, None))
    staying = asyncio.ensure_future(coalescer.infer(row("b", 1), 1.0, None))
    await asyncio.sleep(0.01)
    leaving.cancel()
    assert items(await staying) == [b"b-0"]
    assert leaving.cancelled()


async def test_a_transport_failure_fails_every_row_with_it() -> None:
    stub = FakeStub()
    stub.fail = RpcError(grpc.StatusCode.UNAVAILABLE, "connection refused")
    coalescer = RowCoalescer(stub, "recommender", "1", max_rows=32)
    results = await asyncio.gather(*(coalescer.infer(row(u, 1), 1.0, None) for u in "abc"), return_exceptions=True)
    assert [result.code() for result in results] == [grpc.StatusCode.UNAVAILABLE] * 3
    assert stub.rows_sent() == [3]  # not resent: each call retries on its own, through the router


async def test_a_request_the_model_refuses_is_resent_row_by_row_so_only_the_bad_row_fails() -> None:
    stub = FakeStub()
    stub.refuse = {b"bad"}
    coalescer = RowCoalescer(stub, "recommender", "1", max_rows=32)
    good, bad, other = await asyncio.gather(
        *(coalescer.infer(row(u, 1), 1.0, None) for u in ("good", "bad", "other")), return_exceptions=True
    )
    assert items(good) == [b"good-0"] and items(other) == [b"other-0"]
    assert isinstance(bad, grpc.aio.AioRpcError) and "positive integer" in bad.details()
    assert stub.rows_sent() == [3, 1, 1, 1]


async def test_an_answer_of_the_wrong_shape_fails_every_row_as_the_backends_fault() -> None:
    stub = FakeStub()

    def two_rows_short(request):
        response = answer_rows(request)
        response.outputs[2].shape[0] = 1
        return response

    stub.response_of = two_rows_short
    coalescer = RowCoalescer(stub, "recommender", "1", max_rows=32)
    results = await asyncio.gather(*(coalescer.infer(row(u, 1), 1.0, None) for u in "ab"), return_exceptions=True)
    assert all(isinstance(result, BackendFailed) and "COMPUTE_NS" in str(result) for result in results)


async def test_rows_that_cannot_share_a_request_go_alone() -> None:
    stub = FakeStub()
    coalescer = RowCoalescer(stub, "recommender", "1", max_rows=32)
    odd = [("USER_ID", "BYTES", 1, bytes_tensor([b"b"])), ("K", "INT32", 1, int32_tensor(2)), ("W", "FP32", 1, b"\0" * 4)]
    first, second = await asyncio.gather(coalescer.infer(row("a", 1), 1.0, None), coalescer.infer(odd, 1.0, None))
    assert stub.rows_sent() == [1, 1]
    assert items(first) == [b"a-0"] and items(second) == [b"b-0", b"b-1"]


def test_merge_pads_strings_and_refuses_what_cannot_be_padded() -> None:
    merged = merge_rows([row("a", 1, ("x", "y", "z")), row("bb", 2)])
    assert [(name, datatype, width) for name, datatype, width, _ in merged] == [
        ("USER_ID", "BYTES", 1), ("K", "INT32", 1), ("EXCLUDE_ITEM_IDS", "BYTES", 3),
    ]
    assert read_bytes_tensor(merged[0][3]) == [b"a", b"bb"]
    assert struct.unpack("<2i", merged[1][3]) == (1, 2)
    assert read_bytes_tensor(merged[2][3]) == [b"x", b"y", b"z", b"", b"", b""]
    without_k = [tensor for tensor in row("b", 1) if tensor[0] != "K"]
    assert merge_rows([row("a", 1), without_k]) is None  # a fixed-width tensor missing from a row
    wide = [("USER_ID", "BYTES", 1, bytes_tensor([b"b"])), ("K", "INT32", 2, int32_tensor(1) * 2)]
    assert merge_rows([row("a", 1), wide]) is None  # of another width
    as_text = [("USER_ID", "BYTES", 1, bytes_tensor([b"b"])), ("K", "BYTES", 1, bytes_tensor([b"1"]))]
    assert merge_rows([row("a", 1), as_text]) is None  # another datatype


def test_split_cuts_each_output_into_its_rows_and_rejects_what_does_not_add_up() -> None:
    request = parsed(infer_request("m", "1", merge_rows([row("a", 1), row("b", 3)]), rows=2))
    response = answer_rows(request)
    first, second = split_rows(response, 2)
    assert read_bytes_tensor(first["ITEM_IDS"]) == [b"a-0", b"", b""]
    assert items(first) == [b"a-0"] and items(second) == [b"b-0", b"b-1", b"b-2"]
    assert without_padding(first["ITEM_IDS"], first["ITEM_IDS"], first["SCORES"])[2] == struct.pack("<f", 1.0)
    assert (first["COMPUTE_NS"], second["COMPUTE_NS"]) == (struct.pack("<q", 100), struct.pack("<q", 101))
    assert second["SCORES"] == struct.pack("<3f", 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="shape"):
        split_rows(response, 3)
    truncated = answer_rows(request)
    truncated.raw_output_contents[0] = truncated.raw_output_contents[0][:-2]  # inside the last string
    with pytest.raises(ValueError, match="^a BYTES output is truncated$"):
        split_rows(truncated, 2)
    truncated.raw_output_contents[0] = truncated.raw_output_contents[0][:2]  # inside a length
    with pytest.raises(ValueError, match="^a BYTES output is truncated$"):
        split_rows(truncated, 2)
    longer = answer_rows(request)
    longer.raw_output_contents[0] += bytes_tensor([b"extra"])
    with pytest.raises(ValueError, match="^a BYTES output is longer than its shape$"):
        split_rows(longer, 2)
    unmatched = answer_rows(request)
    unmatched.outputs.add(name="PERSONALIZED", datatype="BOOL", shape=[2, 1])  # and no raw contents for it
    with pytest.raises(ValueError):
        split_rows(unmatched, 2)
    odd = answer_rows(request)
    odd.raw_output_contents[2] += b"\0"
    with pytest.raises(ValueError, match="COMPUTE_NS"):
        split_rows(odd, 2)


def test_rows_per_request_needs_the_models_declaration_and_respects_both_limits() -> None:
    declared = {"max_batch_size": 64, "parameters": {"padded_rows": {"string_value": "true"}}}
    assert rows_per_request(declared, 32) == 32
    assert rows_per_request({**declared, "max_batch_size": 8}, 32) == 8
    assert rows_per_request(declared, 1) == 1
    assert rows_per_request({"max_batch_size": 64}, 32) == 1  # no declaration: one row per request
    assert rows_per_request({**declared, "parameters": {"padded_rows": {"string_value": "false"}}}, 32) == 1
    assert rows_per_request({**declared, "max_batch_size": 0}, 32) == 1


async def test_while_the_model_is_busy_new_calls_wait_for_a_request_to_return_and_go_together() -> None:
    stub = FakeStub(delay_s=0.05)
    coalescer = RowCoalescer(stub, "recommender", "1", max_rows=32, max_wait_s=1.0, busy_requests=1)
    first = asyncio.ensure_future(coalescer.infer(row("a", 1), 2.0, None))
    await asyncio.sleep(0.01)  # "a" is in flight
    later = [asyncio.ensure_future(coalescer.infer(row(u, 1), 2.0, None)) for u in "bcd"]
    await asyncio.sleep(0.02)
    assert stub.rows_sent() == [1]  # b, c and d wait for "a" to return
    await asyncio.sleep(0.01)
    more = asyncio.ensure_future(coalescer.infer(row("e", 1), 2.0, None))
    assert items(await first) == [b"a-0"]
    results = await asyncio.gather(*later, more)
    assert stub.rows_sent() == [1, 4]  # sent as soon as "a" returned, not after the second's wait
    assert [items(outputs) for outputs in results] == [[b"b-0"], [b"c-0"], [b"d-0"], [b"e-0"]]


async def test_the_wait_is_bounded_and_below_the_busy_count_nothing_waits() -> None:
    stub = FakeStub(delay_s=0.3)
    coalescer = RowCoalescer(stub, "recommender", "1", max_rows=32, max_wait_s=0.05, busy_requests=2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    calls = [asyncio.ensure_future(coalescer.infer(row("a", 1), 2.0, None))]
    await asyncio.sleep(0.01)
    calls.append(asyncio.ensure_future(coalescer.infer(row("b", 1), 2.0, None)))
    await asyncio.sleep(0.01)
    assert stub.rows_sent() == [1, 1]  # one request in flight is below the busy count: no wait
    calls.append(asyncio.ensure_future(coalescer.infer(row("c", 1), 2.0, None)))
    await asyncio.sleep(0.01)
    assert stub.rows_sent() == [1, 1]  # two in flight: "c" waits
    await asyncio.sleep(0.09)
    assert stub.rows_sent() == [1, 1, 1]  # waited 0.05 s, not for a request to return
    await asyncio.gather(*calls)
    assert loop.time() - started < 0.6


async def test_by_default_no_call_waits_and_a_returned_request_no_longer_counts_as_busy() -> None:
    stub = FakeStub(delay_s=0.05)
    default = RowCoalescer(stub, "recommender", "1", max_rows=32)
    first = asyncio.ensure_future(default.infer(row("a", 1), 2.0, None))
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(default.infer(row("b", 1), 2.0, None))
    await asyncio.sleep(0.01)
    assert stub.rows_sent() == [1, 1]  # no wait by default, whatever is in flight
    await asyncio.gather(first, second)

    stub = FakeStub(delay_s=0.05)
    holding = RowCoalescer(stub, "recommender", "1", max_rows=32, max_wait_s=1.0)  # waits behind one request
    await holding.infer(row("a", 1), 2.0, None)
    await asyncio.sleep(0.01)  # returned and done with: nothing in flight any more
    alone = asyncio.ensure_future(holding.infer(row("b", 1), 2.0, None))
    await asyncio.sleep(0.01)
    assert stub.rows_sent() == [1, 1]  # went at once
    behind = asyncio.ensure_future(holding.infer(row("c", 1), 2.0, None))
    await asyncio.sleep(0.01)
    assert stub.rows_sent() == [1, 1]  # "b" is in flight: "c" waits for it
    await asyncio.gather(alone, behind)
    assert stub.rows_sent() == [1, 1, 1]


async def test_a_row_whose_caller_is_gone_is_not_sent() -> None:
    stub = FakeStub(delay_s=0.05)
    coalescer = RowCoalescer(stub, "recommender", "1", max_rows=32, max_wait_s=1.0, busy_requests=1)
    first = asyncio.ensure_future(coalescer.infer(row("a", 1), 2.0, None))
    await asyncio.sleep(0.01)
    gone = asyncio.ensure_future(coalescer.infer(row("gone", 1), 0.01, None))  # times out while held
    kept = asyncio.ensure_future(coalescer.infer(row("kept", 1), 2.0, None))
    with pytest.raises(asyncio.TimeoutError):
        await gone
    await asyncio.gather(first, kept)
    assert stub.rows_sent() == [1, 1]  # "kept" alone: "gone" was dropped before its request


async def test_an_unforeseen_failure_reaches_every_waiting_row() -> None:
    stub = FakeStub()

    def broken(request):
        raise RuntimeError("the stub broke")

    stub.response_of = broken
    coalescer = RowCoalescer(stub, "recommender", "1", max_rows=32)
    alone = await asyncio.gather(coalescer.infer(row("a", 1), 1.0, None), return_exceptions=True)
    together = await asyncio.gather(*(coalescer.infer(row(u, 1), 1.0, None) for u in "bc"), return_exceptions=True)
    assert all(isinstance(result, RuntimeError) for result in [*alone, *together])
