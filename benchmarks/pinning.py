"""Which cores a process may run on (``taskset``'s job, done with ``sched_setaffinity``).

Affinity belongs to threads: pinning a running process means pinning every thread it has (its
later threads inherit from the thread that makes them). A pinned process group (Triton and its
model stubs) and a gateway with its worker processes are pinned whole.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path


def available_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def split_cores(cpus: Sequence[int]) -> tuple[list[int], list[int]]:
    """(gateway's cores, Triton's and the load generator's): the upper half for the gateway,
    the rest for the others; with 2 cores, one each."""
    half = len(cpus) // 2
    return list(cpus[half:]), list(cpus[:half])


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (a gateway's workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found


def pin(pids: Iterable[int], cpus: Iterable[int]) -> None:
    """Every thread of every process in ``pids`` onto ``cpus`` (gone processes are skipped)."""
    cores = set(cpus)
    for pid in pids:
        try:
            threads = [int(task.name) for task in Path(f"/proc/{pid}/task").iterdir()]
        except OSError:
            continue
        for tid in threads:
            try:
                os.sched_setaffinity(tid, cores)
            except OSError:
                pass
