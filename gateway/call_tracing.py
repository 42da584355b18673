"""One trace per call, opened by the gateway itself from the caller's metadata: head sampling,
parent-based, and no tracing work at all for a call that is not sampled.

- A caller's ``traceparent`` is continued: sampled (flag 01) it is always recorded, unsampled
  it never is. A call without one starts a trace, recorded with ``sample_ratio``.
- A recorded call gets the server span ``/<service>/<method>`` with the cost attributes (set at
  settlement, once) and child spans (``cache.lookup``, ``triton.infer``, ``cache.store``), as
  gateway/lean_spans.py records (and exports them, from a thread).
- Every call, recorded or not, has a W3C trace id (the caller's, or a new one): it goes back to
  the caller in the trailing metadata and on to Triton in the ``traceparent`` of the model call.

This replaces the generic OpenTelemetry gRPC server interceptor, which opened a span, attached
contexts and filtered method names on every call whatever the sampling.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from gateway.lean_spans import INTERNAL, SERVER, LeanSpan, Recorder, Value

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_HEX = frozenset("0123456789abcdef")
# gRPC status codes that are the server's fault (OpenTelemetry's rule for server spans).
_SERVER_ERRORS = frozenset({"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"})
_STATUS_NUMBERS = {
    "OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9, "ABORTED": 10,
    "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12, "INTERNAL": 13, "UNAVAILABLE": 14, "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}  # fmt: skip
Attributes = Mapping[str, Value]


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
    """The trace of one call; ``span`` is its recorded server span, or None when not recorded."""

    __slots__ = ("trace_id", "span", "_recorder", "_rng", "_parent")

    def __init__(
        self, trace_id: str, span: LeanSpan | None, recorder: Recorder | None, rng: random.Random | None, parent: str
    ) -> None:
        """``parent``: "<span id>-<flags>" of what this call passes on when it records nothing
        (the caller's own, unchanged, when it sent a ``traceparent``)."""
        self.trace_id = trace_id  # 32 lower-case hex digits; "" when tracing is off
        self.span = span
        self._recorder = recorder
        self._rng = rng
        self._parent = parent

    def child(self, name: str, attributes: Attributes | None = None) -> LeanSpan | None:
        """A child span of the server span when the call is recorded; end it yourself."""
        span = self.span
        if span is None or self._recorder is None or self._rng is None:
            return None
        return LeanSpan(
            self._recorder, name, span.trace_id, _span_id(self._rng), span.span_id, INTERNAL, attributes,
            trace_state=span.trace_state,
        )  # fmt: skip

    def traceparent(self, child: LeanSpan | None = None) -> str | None:
        """The W3C ``traceparent`` for a call made on this call's behalf (under ``child``, when
        recorded); None when tracing is off."""
        if not self.trace_id:
            return None
        if child is not None:
            return f"00-{self.trace_id}-{child.span_id:016x}-01"
        return f"00-{self.trace_id}-{self._parent}"

    def finish(self, status: str, attributes: Attributes | None) -> None:
        """Ends the server span (if any) with the call's gRPC status and ``attributes``."""
        span = self.span
        if span is None:
            return
        if attributes:
            span.attributes.update(attributes)
        span.attributes["rpc.grpc.status_code"] = _STATUS_NUMBERS.get(status, 2)
        if status in _SERVER_ERRORS:
            span.set_error(status)
        span.end()


NO_TRACE = CallTrace("", None, None, None, "")


def _span_id(rng: random.Random) -> int:
    return rng.getrandbits(64) or 1


class CallTracer:
    """Opens each call's trace (see the module docstring). ``recorder`` None: trace ids are
    still kept and passed on, but nothing is recorded (no exporter configured)."""

    def __init__(self, recorder: Recorder | None, sample_ratio: float, rng: random.Random | None = None) -> None:
        if not 0.0 <= sample_ratio <= 1.0:
            raise ValueError(f"sample_ratio must be within 0..1, got {sample_ratio}")
        self._recorder = recorder
        self._ratio = sample_ratio
        self._rng = rng or random.Random()

    def begin(self, name: str, service: str, method: str, traceparent: str | None, tracestate: str | None) -> CallTrace:
        rng = self._rng
        parent = parse_traceparent(traceparent)
        if parent is not None:
            trace_id, parent_span_id, sampled = parent
            passed_on = f"{parent_span_id}-{'01' if sampled else '00'}"
        else:
            sampled = rng.random() < self._ratio
            trace_id, parent_span_id = "%032x" % (rng.getrandbits(128) or 1), ""
            passed_on = "%016x-00" % _span_id(rng)
        if not sampled or self._recorder is None:
            return CallTrace(trace_id, None, None, None, passed_on)
        span = LeanSpan(
            self._recorder,
            name,
            int(trace_id, 16),
            _span_id(rng),
            int(parent_span_id, 16) if parent_span_id else 0,
            SERVER,
            {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method},
            parent_remote=bool(parent_span_id),
            trace_state=tracestate or "" if parent_span_id else "",
        )
        return CallTrace(trace_id, span, self._recorder, rng, passed_on)
