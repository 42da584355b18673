"""Where the gateway's spans go: the exporter the settings choose, behind the span recorder of
gateway/lean_spans.py. Which calls are traced (head sampling) is gateway/call_tracing.py's
business.

``auto`` (the default) exports over OTLP/gRPC when an endpoint is configured
(``TOLLGATE_OTLP_ENDPOINT`` or the standard ``OTEL_EXPORTER_OTLP_ENDPOINT``) and nowhere
otherwise; ``file`` writes one JSON span per line (rotated: gateway/span_file.py), for people
without a tracing backend and for tests.
"""

from __future__ import annotations

import os

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter

from gateway.lean_spans import OtlpExport, SdkExport, SpanRecorder
from gateway.settings import Settings
from gateway.span_file import JsonLinesSpanExporter


def _exporter(settings: Settings) -> SpanExporter | None:
    """The OpenTelemetry exporter of the non-OTLP choices (file, console)."""
    if settings.trace_exporter == "console":
        return ConsoleSpanExporter()
    if settings.trace_exporter == "file":
        return JsonLinesSpanExporter(settings.trace_file, settings.trace_file_max_bytes, settings.trace_file_backups)
    return None


def _wants_otlp(settings: Settings) -> bool:
    return settings.trace_exporter == "otlp" or (settings.trace_exporter == "auto" and bool(settings.otlp_endpoint))


class Tracing:
    """The span recorder and the exporter behind it; ``shutdown()`` exports what is left."""

    def __init__(self, recorder: SpanRecorder, export: OtlpExport | SdkExport) -> None:
        self.recorder = recorder
        self._export = export

    def shutdown(self) -> None:
        self.recorder.shutdown()
        self._export.shutdown()


def setup_tracing(settings: Settings) -> Tracing | None:
    """The recorder of the gateway's spans and its exporter; None when no exporter is
    configured: spans that nobody receives are not made at all (the calls still carry and pass
    on their W3C trace context, gateway/call_tracing.py)."""
    resource = Resource.create({"service.name": settings.service_name})
    export: OtlpExport | SdkExport
    if _wants_otlp(settings):
        export = OtlpExport(settings.otlp_endpoint, dict(resource.attributes))
    else:
        exporter = _exporter(settings)
        if exporter is None:
            return None
        export = SdkExport(exporter, resource)
    return Tracing(SpanRecorder(export, **_batching_from_environment()), export)


def _batching_from_environment() -> dict[str, float]:
    """OpenTelemetry's batch-processor variables (OTEL_BSP_*), with their defaults."""
    return {
        "max_queue": int(os.environ.get("OTEL_BSP_MAX_QUEUE_SIZE", 2048)),
        "batch_size": int(os.environ.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)),
        "delay_s": float(os.environ.get("OTEL_BSP_SCHEDULE_DELAY", 5000)) / 1000,
    }
