"""Several gateway processes on one port: ``tollgate serve`` with ``TOLLGATE_WORKERS=N``.

One Python process uses one core, so a gateway given N cores runs N workers. Each worker is a
whole gateway (its own gRPC server, Triton channels, cache client, admission and cost
accounting) listening on the same address with SO_REUSEPORT, so the kernel spreads incoming
connections over them (a client needs several connections to reach several workers). What
must not be duplicated is per worker:

- the ledger is shared (SQLite in WAL mode, or PostgreSQL) and every worker writes its own
  records, each with a journal of its own (``<journal>.worker<i>``), so no record is lost or
  written twice;
- the Prometheus exporter of worker i listens on ``metrics_port + i`` (each its own target);
- only worker 0 reconciles the pools against Triton's statistics.

The supervisor starts the workers, restarts one that dies, and on SIGTERM/SIGINT passes the
signal on and waits for every worker to drain and flush its ledger.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gateway.settings import Settings

log = logging.getLogger(__name__)

# A worker that dies sooner than this after its start is not restarted in a loop.
RESTART_AFTER_S = 5.0
STOP_TIMEOUT_S = 30.0


def worker_environment(settings: Settings, index: int) -> dict[str, str]:
    """The TOLLGATE_* variables that make worker ``index`` of ``settings.workers``."""
    env = {"TOLLGATE_WORKERS": "1", "TOLLGATE_WORKER_INDEX": str(index)}
    journal = settings.effective_journal_path()
    env["TOLLGATE_LEDGER_JOURNAL_PATH"] = str(journal.with_name(f"{journal.name}.worker{index}"))
    if settings.metrics_port:
        env["TOLLGATE_METRICS_PORT"] = str(settings.metrics_port + index)
    if index > 0:
        env["TOLLGATE_RECONCILIATION_ENABLED"] = "false"
    return env


def run_workers(settings: Settings, log_level: str) -> int:
    """Runs ``settings.workers`` gateway processes until SIGTERM/SIGINT; returns the exit code."""
    if settings.port == 0:
        raise SystemExit("TOLLGATE_WORKERS > 1 needs a fixed TOLLGATE_PORT (the workers share it)")
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for process in workers.values():
            if process.poll() is None:
                process.send_signal(signum)

    workers = {index: _start(settings, index, log_level) for index in range(settings.workers)}
    started = dict.fromkeys(workers, time.monotonic())
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("gateway supervisor: %d workers on %s:%d", settings.workers, settings.host, settings.port)
    while not stopping:
        time.sleep(0.2)
        for index, process in list(workers.items()):
            code = process.poll()
            if code is None or stopping:
                continue
            if time.monotonic() - started[index] < RESTART_AFTER_S:
                log.error("worker %d exited with %d right after its start; stopping the gateway", index, code)
                stop(signal.SIGTERM, None)
                break
            log.error("worker %d exited with %d; restarting it", index, code)
            workers[index], started[index] = _start(settings, index, log_level), time.monotonic()
    codes = []
    for process in workers.values():
        try:
            codes.append(process.wait(timeout=STOP_TIMEOUT_S))
        except subprocess.TimeoutExpired:
            process.kill()
            codes.append(process.wait())
    return max((abs(code) for code in codes), default=0)


def _start(settings: Settings, index: int, log_level: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, **worker_environment(settings, index)}
    command = [sys.executable, "-m", "gateway", "serve", "--log-level", log_level]
    return subprocess.Popen(command, env=env, cwd=Path.cwd())
