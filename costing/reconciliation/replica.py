"""This gateway process as one replica of the gateway: its name and its process CPU.

The per-request meter sees only the synchronous sections of each request; the process spends
more (gRPC's C core, the event loop, TLS, the ledger writer, the exporters). Each replica
publishes its cumulative process CPU (``time.process_time_ns``: user + system, all threads) at
every window boundary, so that the booking charges the gateway for all of it: the metered
per-request CPU as direct, the rest as overhead.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
import uuid
from collections.abc import Callable

from costing.records import ReplicaReading


def replica_name() -> str:
    """Unique per process: host, pid and a random suffix (a restarted pod is a new replica)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class ReplicaMeter:
    """Readings of this process's CPU, for ``cost_replicas``."""

    def __init__(
        self,
        provisioned_vcpus: float,
        *,
        replica: str | None = None,
        cpu_ns: Callable[[], int] = time.process_time_ns,
        started_at: dt.datetime | None = None,
    ) -> None:
        self.replica = replica or replica_name()
        self.provisioned_vcpus = provisioned_vcpus
        self._cpu_ns = cpu_ns
        self.started_at = started_at or dt.datetime.now(dt.UTC)

    def reading(self, now: dt.datetime, *, stopped: bool = False) -> ReplicaReading:
        return ReplicaReading(
            replica=self.replica,
            started_at=self.started_at,
            seen_at=max(now, self.started_at),
            process_cpu_ns=self._cpu_ns(),
            provisioned_vcpus=self.provisioned_vcpus,
            stopped=stopped,
        )
