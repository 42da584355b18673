"""A request's spans from the local span files, as a tree (what ``tollgate trace`` prints).

A request is found by its trace id (the ``x-tollgate-trace-id`` trailer) or by its request id
(``x-tollgate-request-id``, the attribute ``tollgate.request_id`` of its RPC span). Lines are
matched as text before they are parsed, so a search through the rotated files of a long run
parses only the spans it prints.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc

from gateway import telemetry_attributes as attr
from gateway.span_file import span_files

GRPC_STATUS_ATTRIBUTE = "rpc.grpc.status_code"
_STATUS_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


@dataclass(frozen=True)
class Span:
    name: str
    trace_id: str  # 32 hex digits, as W3C traceparent and OTLP backends show it
    span_id: str
    parent_id: str | None
    start: datetime
    end: datetime
    status: str  # UNSET, OK or ERROR
    status_description: str
    attributes: dict[str, Any]

    @property
    def duration_ms(self) -> float:
        return (self.end - self.start).total_seconds() * 1000

    @classmethod
    def from_json(cls, line: str) -> Span:
        """A span as ``ReadableSpan.to_json`` writes it (one line of the span file)."""
        data = json.loads(line)
        status = data.get("status") or {}
        return cls(
            name=data["name"],
            trace_id=_hex(data["context"]["trace_id"]),
            span_id=_hex(data["context"]["span_id"]),
            parent_id=_hex(data["parent_id"]) if data.get("parent_id") else None,
            start=_time(data["start_time"]),
            end=_time(data["end_time"]),
            status=status.get("status_code", "UNSET"),
            status_description=status.get("description") or "",
            attributes=data.get("attributes") or {},
        )


def _hex(value: str) -> str:
    return value.lower().removeprefix("0x")


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def run_span_files(trace_file: Path, search_root: Path | None) -> list[list[Path]]:
    """The span files to search, newest run first: ``trace_file`` (with its rotated files), or,
    given ``search_root``, every run's ``trace_file.name`` found under it."""
    if search_root is None:
        return [span_files(trace_file)]
    runs = [span_files(path) for path in search_root.rglob(trace_file.name) if path.is_file()]
    return sorted((files for files in runs if files), key=lambda files: files[-1].stat().st_mtime, reverse=True)


def find_spans(files: Sequence[Path], wanted: str) -> list[Span]:
    """The spans of ``wanted``: every span of the trace with that id, or the RPC span whose
    request id it is and the spans under it."""
    wanted = _hex(wanted.strip())
    mentions = [Span.from_json(line) for line in _lines_containing(files, (wanted,))]
    rpc_spans = [span for span in mentions if span.attributes.get(attr.REQUEST_ID) == wanted]
    trace_ids = {span.trace_id for span in mentions if span.trace_id == wanted} or {s.trace_id for s in rpc_spans}
    if not trace_ids:
        return []
    spans = [span for span in map(Span.from_json, _lines_containing(files, trace_ids)) if span.trace_id in trace_ids]
    if wanted in trace_ids:
        return spans
    return _subtrees(spans, {span.span_id for span in rpc_spans})


def _lines_containing(files: Sequence[Path], needles: Iterable[str]) -> Iterator[str]:
    needles = tuple(needles)
    for path in files:
        try:
            with path.open(encoding="utf-8", errors="replace") as lines:
                for line in lines:
                    if line.strip() and any(needle in line for needle in needles):
                        yield line
        except FileNotFoundError:  # rotated away while we read
            continue


def _subtrees(spans: list[Span], roots: set[str]) -> list[Span]:
    kept = set(roots)
    changed = True
    while changed:
        grown = {span.span_id for span in spans if span.parent_id in kept} - kept
        kept |= grown
        changed = bool(grown)
    return [span for span in spans if span.span_id in kept]


def render(spans: Sequence[Span], show_all: bool = False) -> str:
    """The spans as a tree per trace, children in start order: name, duration, status and the
    key attributes (every attribute with ``show_all``)."""
    by_id = {span.span_id: span for span in spans}
    children: dict[str | None, list[Span]] = {}
    for span in sorted(spans, key=lambda s: s.start):
        parent = span.parent_id if span.parent_id in by_id else None
        children.setdefault(parent, []).append(span)
    lines: list[str] = []
    for root in children.get(None, []):
        lines.append(f"trace {root.trace_id}")
        lines.append(_describe(root, show_all))
        _render_children(root, children, "", lines, show_all)
    return "\n".join(lines)


def _render_children(
    span: Span, children: dict[str | None, list[Span]], indent: str, lines: list[str], show_all: bool
) -> None:
    below = children.get(span.span_id, [])
    for index, child in enumerate(below):
        last = index == len(below) - 1
        lines.append(f"{indent}{'└── ' if last else '├── '}{_describe(child, show_all)}")
        _render_children(child, children, indent + ("    " if last else "│   "), lines, show_all)


def _describe(span: Span, show_all: bool) -> str:
    parts = [span.name, f"{span.duration_ms:.2f} ms"]
    code = span.attributes.get(GRPC_STATUS_ATTRIBUTE)
    if code is not None:
        parts.append(_STATUS_NAMES.get(code, str(code)))
    if span.status == "ERROR" and span.status_description:
        parts.append(f"error: {span.status_description}")
    parts.extend(_all_attributes(span) if show_all else _key_attributes(span))
    return "  ".join(parts)


def _key_attributes(span: Span) -> list[str]:
    values = span.attributes
    shown = [f"{label} {values[name]}" for label, name in _KEY_ATTRIBUTES if values.get(name) not in (None, "")]
    if attr.CACHE_HIT in values:
        shown.append("cache hit" if values[attr.CACHE_HIT] else "cache miss")
    if values.get(attr.COMPUTE_NS):
        shown.append(f"compute {values[attr.COMPUTE_NS] / 1e6:.2f} ms")
    if attr.COST_TOTAL in values:
        shown.append(f"cost {values[attr.COST_TOTAL]:.3g} {values.get(attr.COST_CURRENCY, '')}".rstrip())
    shown.extend(f"{name} {value}" for name, value in values.items() if _is_endpoint(name))
    return shown


def _is_endpoint(name: str) -> bool:
    """Where the call went (e.g. the Triton endpoint of a ``triton.infer`` span)."""
    return name.endswith(".endpoint") or name == "server.address"


def _all_attributes(span: Span) -> list[str]:
    return [f"{name}={value}" for name, value in sorted(span.attributes.items())]


_KEY_ATTRIBUTES = (
    ("request", attr.REQUEST_ID),
    ("tenant", attr.TENANT),
    ("feature", attr.FEATURE),
    ("model", attr.MODEL_NAME),
    ("pool", attr.POOL),
    ("device", attr.DEVICE),
    ("route", attr.ROUTE_REASON),
)
