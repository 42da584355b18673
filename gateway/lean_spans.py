"""The gateway's spans: plain records on the hot path, exported in batches from a thread.

OpenTelemetry's SDK spent ~60 µs per traced call making and ending two spans (locks,
per-attribute validation, context objects) and its OTLP exporter ~110 µs encoding them through
protobuf objects, per call and in-process: with every call traced, the gateway lost half its
throughput. Here a span is a slotted record; a background thread takes them in batches and
either encodes OTLP by hand (byte for byte what the collector expects, the export itself and
its retries, headers, TLS and compression still OpenTelemetry's OTLP exporter's) or, for the
other exporters (file, console), turns them into OpenTelemetry ``ReadableSpan``s first.
"""

from __future__ import annotations

import collections
import functools
import logging
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from gateway.protobuf_wire import length_delimited, varint

log = logging.getLogger(__name__)

INTERNAL, SERVER = 1, 2  # OTLP SpanKind numbers
UNSET, ERROR = 0, 2  # OTLP Status.code numbers
SCOPE_NAME = "tollgate.gateway"
# Span.flags: whether the parent is remote is known (0x100), and it is remote (0x200).
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200
_FIXED64 = struct.Struct("<Q")
_FIXED32 = struct.Struct("<I")
_DOUBLE = struct.Struct("<d")
Value = str | bool | int | float


class LeanSpan:
    """A span as the hot path makes it; ``end()`` hands it to its recorder."""

    __slots__ = (
        "name", "trace_id", "span_id", "parent_id", "parent_remote", "trace_state", "kind",
        "start_ns", "end_ns", "attributes", "status_code", "status_message", "_recorder",
    )  # fmt: skip

    def __init__(
        self,
        recorder: Recorder,
        name: str,
        trace_id: int,
        span_id: int,
        parent_id: int,
        kind: int = INTERNAL,
        attributes: Mapping[str, Value] | None = None,
        parent_remote: bool = False,
        trace_state: str = "",
    ) -> None:
        self._recorder = recorder
        self.name = name
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id  # 0: a root span
        self.parent_remote = parent_remote
        self.trace_state = trace_state
        self.kind = kind
        self.start_ns = time.time_ns()
        self.end_ns = 0
        self.attributes: dict[str, Value] = dict(attributes) if attributes else {}
        self.status_code = UNSET
        self.status_message = ""

    def set_attribute(self, key: str, value: Value) -> None:
        self.attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, Value]) -> None:
        self.attributes.update(attributes)

    def set_error(self, message: str) -> None:
        self.status_code, self.status_message = ERROR, message

    def end(self) -> None:
        if not self.end_ns:
            self.end_ns = time.time_ns()
            self._recorder.record(self)


class Recorder(Protocol):
    def record(self, span: LeanSpan) -> None: ...


class SpanRecorder:
    """Finished spans wait in a bounded queue; a daemon thread exports them in batches of at
    most ``batch_size``, at the latest every ``delay_s`` (as OpenTelemetry's batch processor;
    a full queue drops the newest spans and counts them)."""

    def __init__(
        self,
        export: Callable[[list[LeanSpan]], object],
        *,
        max_queue: int = 8192,
        batch_size: int = 512,
        delay_s: float = 1.0,
    ) -> None:
        self._export = export
        self._queue: collections.deque[LeanSpan] = collections.deque()
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._delay_s = delay_s
        self._wake = threading.Event()
        self._stopping = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="span-export", daemon=True)
        self._thread.start()

    def record(self, span: LeanSpan) -> None:
        if len(self._queue) >= self._max_queue:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                log.warning("span queue full: %d spans dropped so far", self.dropped)
            return
        self._queue.append(span)
        if len(self._queue) >= self._batch_size:
            self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._delay_s)
            self._wake.clear()
            self._drain()
            if self._stopping:
                return

    def _drain(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]
            try:
                self._export(batch)
            except Exception:  # noqa: BLE001 - a failed export must not stop the thread
                log.exception("span export failed; %d spans lost", len(batch))

    def shutdown(self) -> None:
        """Exports what is queued, then stops the thread."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=30)


# --- OTLP, by hand ------------------------------------------------------------------------------


def _any_value(value: Value) -> bytes:
    """AnyValue{string_value = 1, bool_value = 2, int_value = 3, double_value = 4}."""
    if isinstance(value, str):
        return length_delimited(b"\x0a", value.encode())
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + varint(value & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE.pack(value)
    return length_delimited(b"\x0a", str(value).encode())


def _key_value(key: str, value: Value) -> bytes:
    """KeyValue{key = 1, value = 2}."""
    if type(value) is str and len(value) < 64:
        return _text_key_value(key, value)
    return _key_field(key) + length_delimited(b"\x12", _any_value(value))


@functools.lru_cache(maxsize=4096)
def _text_key_value(key: str, value: str) -> bytes:
    """Short text attributes (model, pool, tenant, feature ...) repeat from span to span."""
    return _key_field(key) + length_delimited(b"\x12", _any_value(value))


@functools.lru_cache(maxsize=1024)
def _key_field(key: str) -> bytes:
    """Attribute names repeat on every span: encoded once."""
    return length_delimited(b"\x0a", key.encode())


def encode_span(span: LeanSpan) -> bytes:
    """One OTLP ``Span`` message (opentelemetry/proto/trace/v1/trace.proto)."""
    body = b"\x0a\x10" + span.trace_id.to_bytes(16, "big") + b"\x12\x08" + span.span_id.to_bytes(8, "big")
    if span.trace_state:
        body += length_delimited(b"\x1a", span.trace_state.encode())
    if span.parent_id:
        body += b"\x22\x08" + span.parent_id.to_bytes(8, "big")
    body += length_delimited(b"\x2a", span.name.encode())
    body += b"\x30" + varint(span.kind)
    body += b"\x39" + _FIXED64.pack(span.start_ns) + b"\x41" + _FIXED64.pack(span.end_ns)
    body += b"".join(length_delimited(b"\x4a", _key_value(key, value)) for key, value in span.attributes.items())
    status = b""
    if span.status_code:
        message = length_delimited(b"\x12", span.status_message.encode()) if span.status_message else b""
        status = message + b"\x18" + varint(span.status_code)
    body += length_delimited(b"\x7a", status)  # sent even when unset, as OpenTelemetry does
    flags = _HAS_IS_REMOTE | (_IS_REMOTE if span.parent_remote else 0)
    body += b"\x85\x01" + _FIXED32.pack(flags)
    return length_delimited(b"\x12", body)  # ScopeSpans.spans = 2


def encode_export_request(spans: Sequence[LeanSpan], resource: Mapping[str, Value]) -> bytes:
    """ExportTraceServiceRequest{resource_spans: [{resource, scope_spans: [{scope, spans}]}]}."""
    resource_body = b"".join(length_delimited(b"\x0a", _key_value(key, value)) for key, value in resource.items())
    scope = length_delimited(b"\x0a", length_delimited(b"\x0a", SCOPE_NAME.encode()))
    scope_spans = length_delimited(b"\x12", scope + b"".join(encode_span(span) for span in spans))
    resource_spans = length_delimited(b"\x0a", resource_body) + scope_spans
    return length_delimited(b"\x0a", resource_spans)


# --- exporters ------------------------------------------------------------------------------------


class OtlpExport:
    """Sends batches over OTLP/gRPC with OpenTelemetry's own OTLP exporter (endpoint, the
    OTEL_EXPORTER_OTLP_* headers, certificates, compression, timeout, retries), its request
    encoded here instead of through protobuf objects."""

    def __init__(self, endpoint: str | None, resource: Mapping[str, Value]) -> None:
        from gateway.otlp_raw_exporter import RawOtlpSpanExporter

        self._exporter = RawOtlpSpanExporter(endpoint=endpoint)
        self._resource = dict(resource)

    def __call__(self, spans: list[LeanSpan]) -> object:
        return self._exporter.export_encoded(encode_export_request(spans, self._resource), len(spans))

    def shutdown(self) -> None:
        self._exporter.shutdown()


class SdkExport:
    """Any OpenTelemetry SpanExporter (file, console): the batch as ``ReadableSpan``s."""

    def __init__(self, exporter: SpanExporter, resource: Resource) -> None:
        self._exporter = exporter
        self._resource = resource
        self._scope = InstrumentationScope(SCOPE_NAME)

    def __call__(self, spans: list[LeanSpan]) -> object:
        return self._exporter.export([self._readable(span) for span in spans])

    def _readable(self, span: LeanSpan) -> ReadableSpan:
        flags = TraceFlags(TraceFlags.SAMPLED)
        state = TraceState.from_header([span.trace_state]) if span.trace_state else None
        parent = SpanContext(span.trace_id, span.parent_id, span.parent_remote, flags, state) if span.parent_id else None
        status = Status(StatusCode.ERROR, span.status_message) if span.status_code == ERROR else Status(StatusCode.UNSET)
        return ReadableSpan(
            name=span.name,
            context=SpanContext(span.trace_id, span.span_id, False, flags, state),
            parent=parent,
            resource=self._resource,
            attributes=span.attributes,
            kind=SpanKind.SERVER if span.kind == SERVER else SpanKind.INTERNAL,
            status=status,
            start_time=span.start_ns,
            end_time=span.end_ns,
            instrumentation_scope=self._scope,
        )

    def shutdown(self) -> None:
        self._exporter.shutdown()
