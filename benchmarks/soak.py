"""The soak: the local stack under steady load for minutes, with Redis and one Triton bounced
half-way (``make soak``; ``SOAK_ARGS='--minutes 2'`` for a short one).

1. Starts the stack (two Triton pools, a private Redis on a free port, the gateway) in
   ``<run_dir>/soak``; measures the gateway's capacity closed-loop (concurrency 8, 15 s).
2. Drives it open-loop at ``--load`` (default 80 %) of that capacity for ``--minutes``, from a
   separate load-generator process; at half time stops Redis and kills the private pool's
   Triton, then starts both again after ``--outage-s``.
3. Prints and writes (``<run_dir>/soak/soak-<UTC>.json``): throughput, statuses, the gateway's
   RSS after warm-up and at the end (growth %), OK answers against OK rows in the ledger (every
   answered call must be there), and the size of every file the stack wrote (each bounded:
   spans rotate, logs are per run).

Bounded in time and calls, on loopback only. Nothing here asserts: the figures go to
benchmarks/README.md; the fault behaviour itself is tested in tests/e2e/test_faults.py.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.load_spec import LoadSpec
from benchmarks.loadgen import finish_load, run_load, start_load
from benchmarks.workloads import recommend_mix
from deploy.local.ports import free_port
from deploy.local.redis import ensure_redis
from deploy.local.settings import LocalStackSettings
from deploy.local.stack import RunningStack, local_stack
from deploy.local.triton import TritonServer
from gateway.api_keys import Role
from gateway.settings import Settings

CAPACITY_CONCURRENCY = 8
CAPACITY_SECONDS = 15.0
WARMUP_FRACTION = 0.1
MAX_CHUNK_S = 120.0  # the load generator's own bound on one run  # RSS is compared from the end of this share of the run


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def _gateway_pid(port: int) -> int:
    """The pid of the process listening on ``port`` (the gateway the stack started)."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    inode = fields[9]
    if inode is None:
        raise RuntimeError(f"nothing listens on port {port}")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                if str(fd.readlink()) == f"socket:[{inode}]":
                    return int(proc.name)
    raise RuntimeError(f"no process owns port {port}")


def _files(root: Path) -> dict[str, int]:
    return {str(path.relative_to(root)): path.stat().st_size for path in sorted(root.rglob("*")) if path.is_file()}


def run_soak(settings: Settings, local_settings: LocalStackSettings, minutes: float, load: float, outage_s: float) -> dict[str, Any]:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    redis_url = f"redis://127.0.0.1:{free_port()}/0"
    soak_settings = settings.model_copy(update={"redis_url": redis_url})
    calls = recommend_mix(local_settings, 20_000, 11)
    duration_s = minutes * 60
    with local_stack(soak_settings, "soak", fresh_ledger=True, local_settings=local_settings) as stack:
        gateway_port = int(stack.gateway_address.rsplit(":", 1)[1])
        pid = _gateway_pid(gateway_port)
        keys = {tenant: token for (tenant, role), token in stack.access.tokens.items() if role is Role.CALLER}
        base = {"target": "gateway.recommend", "address": stack.gateway_address, "calls": calls, "api_keys": keys}
        capacity = run_load(LoadSpec(**base, concurrency=CAPACITY_CONCURRENCY, max_requests=100_000,
                                     max_seconds=CAPACITY_SECONDS, warmup_seconds=2.0))  # fmt: skip
        rate = max(1.0, load * capacity["throughput_rps"])
        time.sleep(2 * soak_settings.ledger_flush_interval_s)
        ok_before = _ledger_ok_rows(stack.ledger_path)  # the capacity run's
        rss: dict[str, int] = {}
        bounced: dict[str, float] = {}

        def watch() -> None:
            time.sleep(duration_s * WARMUP_FRACTION)
            rss["after_warmup_kib"] = _rss_kib(pid)
            time.sleep(duration_s / 2 - duration_s * WARMUP_FRACTION)
            bounced.update(_bounce(stack, "cpu-local", outage_s))
            time.sleep(max(0.0, duration_s / 2 - outage_s - 2))
            rss["end_kib"] = _rss_kib(pid)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        chunks = _steady_load(base, rate, duration_s)
        watcher.join(timeout=60)
        time.sleep(2 * soak_settings.ledger_flush_interval_s)
        ledger_ok = _ledger_ok_rows(stack.ledger_path) - ok_before
        files = _files(stack.log_dir.parent)
    report = {
        "measured_at_utc": stamp,
        "minutes": minutes,
        "capacity_rps": capacity["throughput_rps"],
        "offered_rps": round(rate, 1),
        "throughput_rps": round(sum(c["ok"] for c in chunks) / sum(c["duration_s"] for c in chunks), 1),
        "sent": sum(c["sent"] for c in chunks),
        "statuses": _summed(c["statuses"] for c in chunks),
        "latency_ms_by_chunk": [{"p50": c["latency"].get("p50_ms"), "p99": c["latency"].get("p99_ms")} for c in chunks],
        "bounced": bounced,
        "rss": {**rss, "growth_pct": round(100 * (rss["end_kib"] - rss["after_warmup_kib"]) / rss["after_warmup_kib"], 2)},
        "answered_ok": sum(c["ok"] for c in chunks),
        "ledger_ok_rows": ledger_ok,
        "answered_missing_from_ledger": max(0, sum(c["ok"] for c in chunks) - ledger_ok),
        "files_bytes": files,
        "largest_file_bytes": max(files.values(), default=0),
    }
    out = local_settings.run_dir / "soak" / f"soak-{stamp}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    report["report_file"] = str(out)
    return report


def _steady_load(base: dict[str, Any], rate: float, duration_s: float) -> list[dict[str, Any]]:
    """Open-loop load for ``duration_s``, as back-to-back load-generator runs of at most
    MAX_CHUNK_S (a run's own bound)."""
    chunks, left = [], duration_s
    while left > 0.5:
        seconds = min(MAX_CHUNK_S, left)
        running = start_load(LoadSpec(**base, rate=rate, concurrency=64, max_requests=int(rate * seconds * 1.2) + 1,
                                      max_seconds=seconds))  # fmt: skip
        chunks.append(finish_load(running))
        left -= seconds
    return chunks


def _summed(counts: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for count in counts:
        for key, value in count.items():
            total[key] = total.get(key, 0) + value
    return total


def _bounce(stack: RunningStack, pool: str, outage_s: float) -> dict[str, float]:
    """Stops the stack's private Redis and kills one pool's Triton, waits ``outage_s``, then
    starts both again on the same ports (stopped with the stack)."""
    started = time.monotonic()
    old = stack.tritons[pool]
    stack.redis.stop()
    old.kill()
    time.sleep(outage_s)
    redis = ensure_redis(stack.redis_url, stack.log_dir)
    stack.on_stop(redis.stop)
    new = TritonServer(
        old.model_repository, models=old.models, grpc_port=old.grpc_port, http_port=old.http_port,
        metrics_port=old.metrics_port, log_path=old.log_path,
    )  # fmt: skip
    stack.on_stop(new.stop)
    new.start()
    return {"outage_s": round(time.monotonic() - started, 1), "back_after_s": round(time.monotonic() - started, 1)}


def _ledger_ok_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM cost_records WHERE status = 'OK'").fetchone()[0]
