"""One trace per call, opened by the gateway itself from the caller's metadata: head sampling,
parent-based, and no OpenTelemetry work at all for a call that is not sampled.

- A caller's ``traceparent`` is continued: sampled (flag 01) it is always recorded, unsampled
  it never is. A call without one starts a trace, recorded with ``sample_ratio``.
- A recorded call gets the server span ``/<service>/<method>`` with the cost attributes (set at
  settlement, once) and child spans (``cache.lookup``, ``triton.infer``, ``cache.store``).
- Every call, recorded or not, has a W3C trace id (the caller's, or a new one): it goes back to
  the caller in the trailing metadata and on to Triton in the ``traceparent`` of the model call.

This replaces the generic OpenTelemetry gRPC server interceptor, which opened a span, attached
contexts and filtered method names on every call whatever the sampling.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    Tracer,
)

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_HEX = frozenset("0123456789abcdef")
# gRPC status codes that are the server's fault (OpenTelemetry's rule for server spans).
_SERVER_ERRORS = frozenset({"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"})
_STATUS_NUMBERS = {
    "OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9, "ABORTED": 10,
    "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12, "INTERNAL": 13, "UNAVAILABLE": 14, "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}  # fmt: skip
Attributes = Mapping[str, str | int | float | bool]


def parse_traceparent(header: str | None) -> tuple[str, str, bool] | None:
    """(trace id, parent span id, sampled) of a valid W3C ``traceparent``, else None."""
    if header is None or len(header) < 55:
        return None
    version, trace_id, span_id, flags = header[:2], header[3:35], header[36:52], header[53:55]
    if header[2] != "-" or header[35] != "-" or header[52] != "-" or version == "ff":
        return None
    if len(header) > 55 and (version == "00" or header[55] != "-"):
        return None
    if not _HEX.issuperset(version + trace_id + span_id + flags):
        return None
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return trace_id, span_id, bool(int(flags, 16) & 1)


class CallTrace:
    """The trace of one call; ``span`` is its recording server span, or None when unsampled."""

    __slots__ = ("trace_id", "span", "_tracer", "_parent")

    def __init__(self, trace_id: str, span: Span | None, tracer: Tracer | None, parent: str) -> None:
        """``parent``: "<span id>-<flags>" of what this call passes on when it records nothing
        (the caller's own, unchanged, when it sent a ``traceparent``)."""
        self.trace_id = trace_id  # 32 lower-case hex digits; "" when tracing is off
        self.span = span
        self._tracer = tracer
        self._parent = parent

    def child(self, name: str, attributes: Attributes | None = None) -> Span | None:
        """A child span of the server span when the call is recorded; end it yourself."""
        if self.span is None or self._tracer is None:
            return None
        return self._tracer.start_span(name, context=trace.set_span_in_context(self.span), attributes=attributes)

    def traceparent(self, child: Span | None = None) -> str | None:
        """The W3C ``traceparent`` for a call made on this call's behalf (under ``child``, when
        recorded); None when tracing is off."""
        if not self.trace_id:
            return None
        if child is not None:
            return f"00-{self.trace_id}-{child.get_span_context().span_id:016x}-01"
        return f"00-{self.trace_id}-{self._parent}"

    def finish(self, status: str, attributes: Attributes | None) -> None:
        """Ends the server span (if any) with the call's gRPC status and ``attributes``."""
        span = self.span
        if span is None:
            return
        if attributes:
            span.set_attributes(attributes)
        span.set_attribute("rpc.grpc.status_code", _STATUS_NUMBERS.get(status, 2))
        if status in _SERVER_ERRORS:
            span.set_status(Status(StatusCode.ERROR, status))
        span.end()


NO_TRACE = CallTrace("", None, None, "")


class CallTracer:
    """Opens each call's trace (see the module docstring). ``tracer`` None: trace ids are still
    kept and propagated, but nothing is recorded (no exporter configured)."""

    def __init__(self, tracer: Tracer | None, sample_ratio: float, rng: random.Random | None = None) -> None:
        if not 0.0 <= sample_ratio <= 1.0:
            raise ValueError(f"sample_ratio must be within 0..1, got {sample_ratio}")
        self._tracer = tracer
        self._ratio = sample_ratio
        self._rng = rng or random.Random()

    def begin(self, name: str, service: str, method: str, traceparent: str | None, tracestate: str | None) -> CallTrace:
        parent = parse_traceparent(traceparent)
        if parent is not None:
            trace_id, parent_span_id, sampled = parent
            passed_on = f"{parent_span_id}-{'01' if sampled else '00'}"
        else:
            sampled = self._rng.random() < self._ratio
            trace_id, parent_span_id = "", ""
            passed_on = "%016x-00" % (self._rng.getrandbits(64) | 1)
        if not sampled or self._tracer is None:
            return CallTrace(trace_id or "%032x" % (self._rng.getrandbits(128) | 1), None, None, passed_on)
        context = None
        if parent is not None:
            remote = SpanContext(
                int(trace_id, 16),
                int(parent_span_id, 16),
                is_remote=True,
                trace_flags=_SAMPLED,
                trace_state=TraceState.from_header([tracestate]) if tracestate else None,
            )
            context = trace.set_span_in_context(NonRecordingSpan(remote))
        span = self._tracer.start_span(
            name,
            context=context,
            kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method},
        )
        return CallTrace(f"{span.get_span_context().trace_id:032x}", span, self._tracer, passed_on)
