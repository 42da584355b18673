"""The local span file: one JSON span per line, rotated so that it never grows without bound.

``spans.jsonl`` is the file being written; when the next batch would take it past ``max_bytes``
it becomes ``spans.jsonl.1`` (the older ones shift to ``.2`` … ``.<backups>``, and the oldest
is dropped), so the span files of a run never hold more than ``(backups + 1) × max_bytes``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


def rotated(path: Path, index: int) -> Path:
    """The ``index``-th rotated file of ``path`` (1 is the newest)."""
    return path.with_name(f"{path.name}.{index}")


def span_files(path: Path) -> list[Path]:
    """``path`` and its rotated files that exist, oldest first."""
    backups = []
    index = 1
    while rotated(path, index).exists():
        backups.append(rotated(path, index))
        index += 1
    return [*reversed(backups), *([path] if path.exists() else [])]


class JsonLinesSpanExporter(SpanExporter):
    """Appends each finished span to a file as one line of JSON, rotating it at ``max_bytes``
    and keeping ``backups`` rotated files (0: the file is started afresh instead)."""

    def __init__(self, path: Path, max_bytes: int = 64 * 2**20, backups: int = 3) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._max_bytes = max_bytes
        self._backups = backups
        self._file = path.open("a", encoding="utf-8")
        self._size = self._file.tell()
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(json.loads(span.to_json()), separators=(",", ":")) + "\n" for span in spans)
        size = len(lines.encode())
        with self._lock:
            if self._file.closed:
                return SpanExportResult.FAILURE
            if self._size and self._size + size > self._max_bytes:
                self._rotate()
            self._file.write(lines)
            self._file.flush()
            self._size += size
        return SpanExportResult.SUCCESS

    def _rotate(self) -> None:
        self._file.close()
        if self._backups:
            rotated(self._path, self._backups).unlink(missing_ok=True)
            for index in range(self._backups - 1, 0, -1):
                if rotated(self._path, index).exists():
                    rotated(self._path, index).replace(rotated(self._path, index + 1))
            self._path.replace(rotated(self._path, 1))
        self._file = self._path.open("w", encoding="utf-8")
        self._size = 0

    def shutdown(self) -> None:
        with self._lock:
            self._file.close()
