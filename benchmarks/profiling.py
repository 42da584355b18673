"""Where the gateway's time goes: py-spy samples the gateway process under Recommend load (cache
off, or with ``--miss`` every call a cache miss: lookup, Triton, store).

``python -m benchmarks profile`` starts Triton and one gateway, drives it with the load
generator, and meanwhile (1) records the gateway with ``py-spy record --format raw`` (collapsed
stacks; ``--nonblocking`` so the gateway is not paused), and (2) reads the CPU time every
process used from ``/proc`` (gateway, Triton with its model stubs, load generator), which shows
who fills the two cores. The collapsed stacks are summarised by *area* (the package a sampled
frame belongs to: gateway code, grpc, tritonclient, OpenTelemetry, ...) and by function.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.load_spec import LoadSpec
from benchmarks.loadgen import finish_load, start_load
from benchmarks.proc import cpu_seconds, process_group
from benchmarks.stack import CACHED, PLAIN, bench_stack, search_models
from benchmarks.workloads import recommend_mix, tagged_calls
from deploy.local.settings import LocalStackSettings
from gateway.settings import Settings

WARMUP_S = 2.0
# Distinct calls for a --miss profile (each a key of its own): more than any run sends.
MISS_CALLS = 200_000
TOP = 15
# Area of a frame, by the first pattern its file path matches (order matters).
AREAS = (
    ("gateway (Tollgate)", re.compile(r"(^|/)gateway/")),
    ("costing (Tollgate)", re.compile(r"(^|/)costing/")),
    ("opentelemetry", re.compile(r"(^|/)opentelemetry/")),
    ("tritonclient", re.compile(r"(^|/)tritonclient/")),
    ("grpc (python + cython core)", re.compile(r"(^|/)grpc(io)?[/_]|(^|/)_cython/|\.pyx|libgrpc|cygrpc")),
    ("protobuf", re.compile(r"(^|/)google/protobuf/|(^|/)_message|libprotobuf|upb")),
    ("numpy", re.compile(r"(^|/)numpy/")),
    ("redis", re.compile(r"(^|/)redis/")),
    ("ledger thread (sqlite)", re.compile(r"(^|/)sqlite3/|_sqlite3|libsqlite")),
    ("asyncio event loop", re.compile(r"(^|/)asyncio/|(^|/)selectors\.py|(^|/)_asyncio|select\.epoll|epoll_wait")),
    ("system calls (libc)", re.compile(r"(^|/)libc\.so|(^|/)libpthread")),
    ("python interpreter", re.compile(r"libpython|python3\.11|(^|/)threading\.py|(^|/)concurrent/")),
)
# Areas left out of the inclusive-by-function table: entry points and the loop itself enclose everything.
FRAMEWORK_AREAS = {"other", "native / unknown", "asyncio event loop", "python interpreter"}
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def parse_collapsed(text: str) -> Counter:
    """``frame;frame;...;leaf count`` lines (py-spy ``--format raw``) -> Counter of stack tuples."""
    stacks: Counter = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def frame_parts(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip(), ""
    return match["function"], match["file"]


def area_of(frame: str) -> str:
    _, file = frame_parts(frame)
    for name, pattern in AREAS:
        if pattern.search(file):
            return name
    return "other" if file else "native / unknown"


def summarise(stacks: Counter, top: int = TOP) -> dict[str, Any]:
    """Self time by area and by function, inclusive time by function, in % of samples (pure)."""
    total = sum(stacks.values())
    if not total:
        return {"samples": 0, "self_by_area": {}, "self_by_function": {}, "inclusive_by_function": {}}
    by_area: Counter = Counter()
    self_fn: Counter = Counter()
    inclusive: Counter = Counter()
    for stack, count in stacks.items():
        leaf = stack[-1]
        by_area[area_of(leaf)] += count
        self_fn[_short(leaf)] += count
        for frame in set(stack):
            if area_of(frame) not in FRAMEWORK_AREAS:
                inclusive[_short(frame)] += count

    def shares(counter: Counter, limit: int | None = None) -> dict[str, float]:
        return {name: round(100 * n / total, 1) for name, n in counter.most_common(limit)}

    return {
        "samples": total,
        "self_by_area": shares(by_area),
        "self_by_function": shares(self_fn, top),
        "inclusive_by_function": shares(inclusive, top),
    }


def _short(frame: str) -> str:
    function, file = frame_parts(frame)
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{function} ({file})" if file else function


def profile_gateway(
    settings: Settings,
    local_settings: LocalStackSettings,
    seconds: float,
    concurrency: int,
    rate: int,
    console: Console,
    native: bool = False,
    miss: bool = False,
) -> dict[str, Any]:
    """``miss``: profile the cached gateway with every call a new key (the full miss path)."""
    # The venv's own py-spy (a dev dependency) first: `python -m` does not put the venv on PATH.
    py_spy = shutil.which("py-spy", path=os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", ""))))
    if py_spy is None:
        raise SystemExit("py-spy is not installed: `make install` (dev extras) or pip install py-spy, then run again")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = local_settings.run_dir / "bench" / f"profile-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    raw_file = run_dir / "gateway.collapsed.txt"
    calls = recommend_mix(local_settings, 4000, 7)
    variant = CACHED if miss else PLAIN
    if miss:
        calls = tagged_calls(calls, MISS_CALLS, f"profile-miss-{stamp}")
    with bench_stack(
        settings,
        local_settings,
        run_dir,
        models=(settings.recommender_model, *search_models(local_settings)),
        variants=(variant,),
    ) as stack:
        gateway_pid = stack.gateway_pid(variant.name)
        assert stack.triton.pid is not None
        spec = LoadSpec(
            target="gateway.recommend",
            address=stack.gateway_address(variant.name),
            calls=calls,
            cycle=not miss,
            concurrency=concurrency,
            max_requests=100_000,
            max_seconds=seconds + WARMUP_S + 1,
            warmup_requests=0,
            api_keys=stack.api_keys(),
        )
        load = start_load(spec)
        time.sleep(WARMUP_S)
        groups = {
            "gateway": [gateway_pid],
            "triton + model stubs": process_group(stack.triton.pid),
            "load generator": [load.pid],
        }
        before = {name: cpu_seconds(pids) for name, pids in groups.items()}
        started = time.perf_counter()
        command = [py_spy, "record", "--pid", str(gateway_pid), "--duration", str(int(seconds)), "--rate", str(rate)]
        command += ["--format", "raw", "--full-filenames", "--output", str(raw_file)]
        command += ["--native"] if native else ["--nonblocking"]  # --native needs to pause the process
        spy = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
        elapsed = time.perf_counter() - started
        cores = {name: round((cpu_seconds(pids) - before[name]) / elapsed, 2) for name, pids in groups.items()}
        result = finish_load(load)
    if spy.returncode != 0 or not raw_file.exists():
        raise SystemExit(f"py-spy failed (rc {spy.returncode}): {spy.stderr.strip()[-1500:]}")
    summary = summarise(parse_collapsed(raw_file.read_text()))
    report = {
        "measured_at_utc": stamp,
        "variant": variant.name + (" (every call a miss)" if miss else ""),
        "load": {k: result[k] for k in ("throughput_rps", "latency", "statuses", "concurrency")},
        "cores_used": cores,
        "py_spy": {"rate_hz": rate, "seconds": seconds, "native": native, "raw_file": str(raw_file)},
        **summary,
    }
    (run_dir / "profile.json").write_text(json.dumps(report, indent=1) + "\n")
    _print(report, console)
    console.print(f"wrote {run_dir / 'profile.json'} and {raw_file}")
    return report


def _print(report: dict[str, Any], console: Console) -> None:
    load = report["load"]
    console.print(
        f"[bold]Gateway ({report['variant']}) under load[/bold]: {load['throughput_rps']:.0f} rps at "
        f"C={load['concurrency']}, p50 {load['latency']['p50_ms']:.2f} ms, p99 {load['latency']['p99_ms']:.2f} ms; "
        "cores used (CPU µs per request): "
        + ", ".join(
            f"{name} {value:.2f} ({value * 1e6 / load['throughput_rps']:.0f})" if load["throughput_rps"] else name
            for name, value in report["cores_used"].items()
        )
    )
    for key, title in (
        ("self_by_area", "self time by area"),
        ("self_by_function", "self time by function"),
        ("inclusive_by_function", "inclusive time by function"),
    ):
        table = Table(
            title=f"py-spy, gateway process: {title} (% of {report['samples']} samples)", title_justify="left"
        )
        table.add_column("where", overflow="fold")
        table.add_column("%", justify="right")
        for name, share in report[key].items():
            table.add_row(name, f"{share:.1f}")
        console.print(table)
