"""``python -m benchmarks run [--quick]`` (``make bench``), ``report``, ``publish``, ``profile``,
``cache-ops``, ``loop-lag`` and ``search-serving``; see benchmarks/README.md."""

from __future__ import annotations

import json
import logging
import shlex
import statistics
import sys
from pathlib import Path

import typer
from rich.console import Console

from benchmarks.results_page import publish as publish_results
from benchmarks.results_table import markdown, print_report
from benchmarks.runner import FULL, QUICK
from benchmarks.suite import LATEST, SECTIONS, bench_dir, run_suite
from deploy.local.settings import get_local_settings
from gateway.settings import get_settings

app = typer.Typer(add_completion=False, help="Tollgate's performance suite (side-by-side ratios on this machine).")
REPORT_WIDTH = 200


def _console() -> Console:
    return Console(width=None if Console().is_terminal else REPORT_WIDTH)


@app.command()
def run(
    quick: bool = typer.Option(False, help="Smoke run (~2-3 min): fewer and shorter repetitions, no 400k catalogue."),
    section: list[str] = typer.Option(None, help=f"Run only these sections: {', '.join(SECTIONS)} (repeatable)."),
    seed: int = typer.Option(7, help="Seed of the traffic plans and synthetic catalogues."),
    publish: bool | None = typer.Option(
        None,
        "--publish/--no-publish",
        help="Also write benchmarks/RESULTS.md and benchmarks/results/latest.json (to commit). "
        "Default: only a full run of every section that did not fail.",
    ),
) -> None:
    """Run the suite, print the table, write var/bench/bench-<time>.json and var/bench/latest.json;
    a full run also writes the committed results page benchmarks/RESULTS.md and its JSON."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    chosen = section or list(SECTIONS)
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown:
        raise typer.BadParameter(f"unknown sections {unknown}; choose from {list(SECTIONS)}")
    command = "python -m benchmarks " + shlex.join(sys.argv[1:])
    report, path = run_suite(get_settings(), get_local_settings(), QUICK if quick else FULL, chosen, seed, command)
    print_report(report, _console())
    _console().print(f"wrote {path} (and {path.parent / LATEST})")
    failed = any("FAILED" in note for s in report["sections"] for note in s["notes"])
    if publish is None:  # only a complete run replaces the committed figures
        publish = not (quick or section or failed)
    if publish:
        page, copy = publish_results(path)
        _console().print(f"wrote {page} and {copy}: commit them")
    if failed:
        raise typer.Exit(1)


@app.command()
def report(
    path: Path = typer.Argument(None, help="A bench JSON; default: var/bench/latest.json."),
    format: str = typer.Option("table", help="table or markdown"),
) -> None:
    """Print a written result again, as the terminal table or as README Markdown."""
    data = json.loads((path or bench_dir(get_local_settings()) / LATEST).read_text())
    if format == "markdown":
        sys.stdout.write(markdown(data))
    else:
        print_report(data, _console())


@app.command()
def publish(
    path: Path = typer.Argument(None, help="A bench JSON; default: var/bench/latest.json."),
) -> None:
    """Write the committed results page benchmarks/RESULTS.md and its JSON benchmarks/results/latest.json."""
    page, copy = publish_results(path or bench_dir(get_settings()) / LATEST)
    sys.stdout.write(f"wrote {page} and {copy}\n")


@app.command()
def profile(
    seconds: float = typer.Option(15.0, min=2, max=60, help="How long py-spy samples the gateway under load."),
    concurrency: int = typer.Option(32, min=1, max=256, help="Load-generator concurrency while sampling."),
    rate: int = typer.Option(200, min=10, max=2000, help="py-spy samples per second."),
    native: bool = typer.Option(False, help="Also sample C/Cython frames (grpc core, protobuf)."),
    miss: bool = typer.Option(False, help="Cache on, every call a new key (lookup, Triton, store) instead of cache off."),
) -> None:
    """py-spy the gateway (cache off, or every call a cache miss) under Recommend load; print where its time goes."""
    from benchmarks.profiling import profile_gateway

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    profile_gateway(get_settings(), get_local_settings(), seconds, concurrency, rate, _console(), native, miss)


@app.command("cache-ops")
def cache_ops(
    concurrency: list[int] = typer.Option([1, 4, 32], min=1, max=256, help="Concurrent callers (repeatable)."),
    ops: int = typer.Option(4000, min=100, help="Operations per timed block."),
    repetitions: int = typer.Option(5, min=1, help="Timed blocks per kind and concurrency."),
) -> None:
    """CPU per cache lookup and lookup + store in-process against Redis, as the gateway does them now and did before."""
    from rich.table import Table

    from benchmarks.cache_ops import run_cache_ops

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings, local = get_settings(), get_local_settings()
    report = run_cache_ops(settings.redis_url, local.run_dir / "bench", concurrency, ops, repetitions)
    table = Table(title=f"CPU µs per call (median of {repetitions} blocks of {ops})", title_justify="left")
    table.add_column("concurrency")
    kinds = list(next(iter(report["median_us"].values())))
    for kind in kinds:
        table.add_column(kind, justify="right")
    for concurrency_, medians in report["median_us"].items():
        table.add_row(concurrency_, *(f"{medians[kind]:.1f}" for kind in kinds))
    _console().print(table)


@app.command("loop-lag")
def loop_lag(
    rate: float = typer.Option(450.0, min=1, help="Cost records recorded per second (calls settled)."),
    seconds: float = typer.Option(4.0, min=1, max=60, help="Length of one timed block."),
    repetitions: int = typer.Option(6, min=1, help="Timed blocks per switch interval."),
) -> None:
    """The event loop's lag while the ledger writes in its thread: Python's GIL switch interval vs the gateway's."""
    from rich.table import Table

    from benchmarks.loop_lag import run_loop_lag

    report = run_loop_lag(get_settings().gil_switch_interval_s, rate, seconds, repetitions)
    table = Table(
        title=f"lag of a 1 ms timer, {rate:g} records/s, blocks of {seconds:g} s (median of {repetitions})",
        title_justify="left",
    )
    columns = {"p50_ms": "p50 ms", "p99_ms": "p99 ms", "p99_9_ms": "p99.9 ms", "long_per_1000": "ticks > 4 ms per 1000"}
    table.add_column("switch interval", justify="right")
    for title in columns.values():
        table.add_column(title, justify="right")
    for name, blocks in report["blocks"].items():
        table.add_row(name, *(f"{statistics.median(b[k] for b in blocks):.2f}" for k in columns))
    _console().print(table)


@app.command("search-serving")
def search_serving(
    queries: int = typer.Option(200, min=1, help="Sequential timed queries per path."),
    warmup: int = typer.Option(20, min=0, help="Untimed queries per path first."),
    k: int = typer.Option(10, min=1, help="Products asked for."),
) -> None:
    """Start Triton on the built search models; time the ensemble vs the client-composed two calls."""
    from benchmarks.search_serving import run_serving_bench, serving_table

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    report, path = run_serving_bench(get_local_settings(), n_queries=queries, warmup=warmup, k=k)
    _console().print(serving_table(report))
    _console().print(f"written to {path}")


@app.command()
def soak(
    minutes: float = typer.Option(10.0, min=0.5, max=60, help="How long the steady load runs."),
    load: float = typer.Option(0.8, min=0.1, max=1.0, help="Offered rate as a share of the measured capacity."),
    outage_s: float = typer.Option(5.0, min=1, max=60, help="How long Redis and one Triton stay down half-way."),
) -> None:
    """The local stack under steady load, Redis and one Triton bounced half-way; RSS, ledger, files."""
    from benchmarks.soak import run_soak

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    report = run_soak(get_settings(), get_local_settings(), minutes, load, outage_s)
    _console().print_json(json.dumps({k: v for k, v in report.items() if k != "files_bytes"}))


if __name__ == "__main__":
    app()
