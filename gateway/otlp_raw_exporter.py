"""OpenTelemetry's OTLP/gRPC span exporter, sending a request that is already encoded.

Everything that makes the export (the endpoint and the OTEL_EXPORTER_OTLP_* settings, TLS,
compression, the timeout, retries with backoff, reconnecting) stays the exporter's own; only
its stub is swapped for one that sends bytes, so gateway/lean_spans.py's hand encoding goes out
without being rebuilt as protobuf objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class _BytesTraceStub:
    """TraceService with a request serialiser that passes bytes through."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.Export = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)


@dataclass(frozen=True)
class _Encoded:
    payload: bytes  # a serialised ExportTraceServiceRequest
    spans: int


class RawOtlpSpanExporter(OTLPSpanExporter):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._stub = _BytesTraceStub
        self._client = _BytesTraceStub(self._channel)

    def export_encoded(self, payload: bytes, spans: int) -> SpanExportResult:
        return self._export(_Encoded(payload, spans))

    def _translate_data(self, data: Any) -> Any:
        return data.payload if isinstance(data, _Encoded) else super()._translate_data(data)

    def _count_data(self, data: Any) -> int:
        return data.spans if isinstance(data, _Encoded) else super()._count_data(data)
