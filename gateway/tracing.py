"""OpenTelemetry set-up: one TracerProvider whose exporter the settings choose. Which calls are
traced (head sampling) is gateway/call_tracing.py's business.

``auto`` (the default) exports over OTLP/gRPC when an endpoint is configured
(``TOLLGATE_OTLP_ENDPOINT`` or the standard ``OTEL_EXPORTER_OTLP_ENDPOINT``) and nowhere
otherwise; ``file`` writes one JSON span per line, for people without a tracing backend and
for tests.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)

from gateway.settings import Settings


class JsonLinesSpanExporter(SpanExporter):
    """Appends each finished span to a file as one line of JSON."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(json.loads(span.to_json()), separators=(",", ":")) + "\n" for span in spans)
        with self._lock:
            self._file.write(lines)
            self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            self._file.close()


def _exporter(settings: Settings) -> SpanExporter | None:
    wants_otlp = settings.trace_exporter == "otlp" or (settings.trace_exporter == "auto" and settings.otlp_endpoint)
    if wants_otlp:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=settings.otlp_endpoint)
    if settings.trace_exporter == "console":
        return ConsoleSpanExporter()
    if settings.trace_exporter == "file":
        return JsonLinesSpanExporter(settings.trace_file)
    return None


def setup_tracing(settings: Settings) -> TracerProvider | None:
    """Creates the provider, installs it globally and returns it (so shutdown can flush it);
    None when no exporter is configured: spans that nobody receives are not made at all (the
    calls still carry and pass on their W3C trace context, gateway/call_tracing.py)."""
    exporter = _exporter(settings)
    if exporter is None:
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider
