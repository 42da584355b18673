"""The load generator: its own process, aio gRPC, bounded in count and time, loopback only.

Child side (``python -m benchmarks.loadgen [SPEC_FILE]``): reads one :class:`LoadSpec` as JSON
from SPEC_FILE (or stdin), warms up (untimed), runs the measured phase and writes one JSON result on stdout::

    echo '{"target": "triton.recommender", "address": "127.0.0.1:8001", "model": "recommender",
           "calls": [{"user_id": "17850", "k": 10}], "max_requests": 1000, "max_seconds": 5,
           "concurrency": 8}' | python -m benchmarks.loadgen

Parent side: :func:`run_load` (blocking) or :func:`start_load` + :func:`finish_load` (to do
something, e.g. profile, while the load runs). The child runs in a separate process from the
gateway and from Triton, so its CPU is never counted as theirs.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.load_engine import Recording, closed_loop, open_loop
from benchmarks.load_spec import LoadSpec
from benchmarks.stats import latency_summary

# Beyond warm-up + measured time + deadlines, how long the child may take before it is killed.
CHILD_GRACE_S = 30.0


def _watchdog_s(spec: LoadSpec) -> float:
    return spec.warmup_seconds + spec.max_seconds + 2 * spec.deadline_s + 10.0


async def _run(spec: LoadSpec) -> dict[str, Any]:
    from benchmarks.targets import make_target

    async with make_target(spec) as target:
        warmup = None
        if spec.warmup_requests and spec.warmup_seconds:
            warmup = await closed_loop(
                target, concurrency=spec.concurrency, max_requests=spec.warmup_requests, max_seconds=spec.warmup_seconds
            )
        first = spec.warmup_calls_used
        cpu_before = _cpu_s()
        if spec.rate is None:
            recording = await closed_loop(
                target,
                concurrency=spec.concurrency,
                max_requests=spec.measured_requests,
                max_seconds=spec.max_seconds,
                first_index=first,
                record_outcomes=spec.record_outcomes,
            )
        else:
            recording = await open_loop(
                target,
                rate=spec.rate,
                max_in_flight=spec.concurrency,
                max_requests=spec.measured_requests,
                max_seconds=spec.max_seconds,
                first_index=first,
                record_outcomes=spec.record_outcomes,
            )
        client_cpu_s = _cpu_s() - cpu_before
    return result_of(spec, recording, warmup, client_cpu_s)


def result_of(spec: LoadSpec, recording: Recording, warmup: Recording | None, client_cpu_s: float) -> dict[str, Any]:
    """The JSON result of one run (pure: also used by the tests)."""
    ok = recording.ok
    result: dict[str, Any] = {
        "label": spec.label,
        "target": spec.target,
        "model": spec.model,
        "mode": "closed" if spec.rate is None else "open",
        "concurrency": spec.concurrency,
        "offered_rps": spec.rate,
        "sent": recording.sent,
        "ok": ok,
        "errors": recording.sent - ok,
        "statuses": dict(recording.statuses),
        "overflow": recording.overflow,
        "duration_s": round(recording.duration_s, 4),
        "throughput_rps": round(ok / recording.duration_s, 2),
        "latency": latency_summary(recording.latencies_ms),
        "extras_sum": recording.extras_sum,
        "extras_mean": {name: value / ok for name, value in recording.extras_sum.items()} if ok else {},
        "client_cpu_s": round(client_cpu_s, 3),
        "client_cpu_share": round(client_cpu_s / recording.duration_s, 3),
        "warmup": None
        if warmup is None
        else {"sent": warmup.sent, "ok": warmup.ok, "duration_s": round(warmup.duration_s, 3)},
    }
    if recording.outcomes is not None:
        result["outcomes"] = recording.outcomes
    return result


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    raw = Path(sys.argv[1]).read_text() if len(sys.argv) > 1 else sys.stdin.read()
    spec = LoadSpec.from_dict(json.loads(raw))
    result = asyncio.run(asyncio.wait_for(_run(spec), timeout=_watchdog_s(spec)))
    sys.stdout.write(json.dumps(result) + "\n")


# --- parent side ------------------------------------------------------------------------------


class LoadGeneratorError(RuntimeError):
    """The load generator process failed or produced no result."""


@dataclass
class RunningLoad:
    """A load generator child in flight (see :func:`start_load`)."""

    process: subprocess.Popen[str]
    spec_file: Path
    timeout_s: float  # past this the child is killed

    @property
    def pid(self) -> int:
        return self.process.pid


def start_load(spec: LoadSpec) -> RunningLoad:
    """Starts the child on ``spec`` and returns at once."""
    with tempfile.NamedTemporaryFile("w", prefix="tollgate-load-", suffix=".json", delete=False) as handle:
        json.dump(spec.to_dict(), handle)
    cpus = spec.cpus
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.loadgen", handle.name],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # Pinned before it starts, so every thread it makes inherits the cores.
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )
    return RunningLoad(process, Path(handle.name), _watchdog_s(spec) + CHILD_GRACE_S)


def finish_load(load: RunningLoad) -> dict[str, Any]:
    """Waits for the child (killing it past its time) and returns its JSON result."""
    try:
        out, err = load.process.communicate(timeout=load.timeout_s)
    except subprocess.TimeoutExpired:
        load.process.kill()
        load.process.communicate()
        raise LoadGeneratorError(f"load generator exceeded {load.timeout_s:.0f} s and was killed") from None
    finally:
        load.spec_file.unlink(missing_ok=True)
    if load.process.returncode != 0 or not out.strip():
        raise LoadGeneratorError(f"load generator failed (rc {load.process.returncode}): {err.strip()[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def run_load(spec: LoadSpec) -> dict[str, Any]:
    return finish_load(start_load(spec))


if __name__ == "__main__":
    main()
