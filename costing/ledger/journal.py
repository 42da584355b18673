"""The ledger's local journal: where cost records go when the database cannot take them.

An append-only file of JSON lines, one record per line, flushed and fsynced once per batch
(a group commit: one fsync per flush interval, not per record). When the database answers
again the writer replays the journal into it and empties it; replay is idempotent, because the
ledger skips request ids it already has. The journal belongs on a disk other than a local
database's, or a full disk takes both.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from collections.abc import Sequence
from pathlib import Path

from costing.records import CostRecord

_FIELDS = {field.name: field.type for field in dataclasses.fields(CostRecord)}


class JournalError(Exception):
    """The journal cannot be written or read (a full or read-only disk, ...)."""


def _to_line(record: CostRecord) -> str:
    data = dataclasses.asdict(record)
    data["timestamp"] = record.timestamp.isoformat()
    return json.dumps(data, separators=(",", ":")) + "\n"


def _from_line(line: str) -> CostRecord:
    data = json.loads(line)
    data["timestamp"] = dt.datetime.fromisoformat(data["timestamp"])
    return CostRecord(**{name: value for name, value in data.items() if name in _FIELDS})


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._count: int | None = None

    def append(self, records: Sequence[CostRecord]) -> None:
        """Durably appends ``records`` (written, flushed and fsynced before it returns)."""
        if not records:
            return
        body = "".join(_to_line(record) for record in records).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                written = 0
                while written < len(body):
                    written += os.write(descriptor, body[written:])
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        except OSError as error:
            raise JournalError(f"cannot append to the ledger journal {self.path}: {error}") from error
        self._count = self.count() if self._count is None else self._count + len(records)

    def read(self) -> list[CostRecord]:
        """Every journalled record; a torn last line (a crash mid-append) is left out."""
        try:
            lines = self.path.read_text().splitlines(keepends=True)
        except FileNotFoundError:
            return []
        except OSError as error:
            raise JournalError(f"cannot read the ledger journal {self.path}: {error}") from error
        records = []
        for line in lines:
            if not line.endswith("\n"):
                break  # torn: its batch was never acknowledged as journalled
            records.append(_from_line(line))
        return records

    def clear(self) -> None:
        """Empties the journal once its records are in the database."""
        try:
            self.path.unlink(missing_ok=True)
        except OSError as error:
            raise JournalError(f"cannot empty the ledger journal {self.path}: {error}") from error
        self._count = 0

    def count(self) -> int:
        """Records waiting in the journal (0 when it cannot even be read: nothing to replay)."""
        if self._count is None:
            try:
                self._count = len(self.read())
            except JournalError:
                return 0
        return self._count
