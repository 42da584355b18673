"""OpenTelemetry set-up: one TracerProvider whose exporter the settings choose.

``auto`` (the default) exports over OTLP/gRPC when an endpoint is configured
(``TOLLGATE_OTLP_ENDPOINT`` or the standard ``OTEL_EXPORTER_OTLP_ENDPOINT``) and nowhere
otherwise; ``file`` writes one JSON span per line (rotated: gateway/span_file.py), for people
without a tracing backend and for tests.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from gateway.settings import Settings
from gateway.span_file import JsonLinesSpanExporter


def _exporter(settings: Settings) -> SpanExporter | None:
    wants_otlp = settings.trace_exporter == "otlp" or (settings.trace_exporter == "auto" and settings.otlp_endpoint)
    if wants_otlp:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=settings.otlp_endpoint)
    if settings.trace_exporter == "console":
        return ConsoleSpanExporter()
    if settings.trace_exporter == "file":
        return JsonLinesSpanExporter(settings.trace_file, settings.trace_file_max_bytes, settings.trace_file_backups)
    return None


def setup_tracing(settings: Settings) -> TracerProvider:
    """Creates the provider, installs it globally and returns it (so shutdown can flush it)."""
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    exporter = _exporter(settings)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider
