"""``make bench``: starts the stack once, runs the sections in order, evaluates the goals, writes the JSON.

Output: ``var/bench/bench-<UTC time>.json`` (everything: machine facts, every load run, every
row and figure, the goals) and a copy at ``var/bench/latest.json``; the table is printed, and
``python -m benchmarks report --format markdown`` renders it (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.goals import evaluate_all
from benchmarks.machine import load_now, machine_facts
from benchmarks.results_table import Section
from benchmarks.runner import Profile, Runner
from benchmarks.pinning import available_cpus, split_cores
from benchmarks.sections import Context, cache, dedicated, gateway_overhead, overhead, quantization, scaling, tracing
from benchmarks.stack import bench_stack, search_models
from costing.price_book import load_price_book
from deploy.local.settings import LocalStackSettings
from gateway.settings import Settings

log = logging.getLogger(__name__)

BENCH_ROOT = Path(__file__).resolve().parent.parent
SECTIONS: dict[str, Callable[[Context], Section]] = {
    "overhead": overhead.run,
    "gateway": gateway_overhead.run,
    "dedicated": dedicated.run,
    "cache": cache.run,
    "tracing": tracing.run,
    "quantization": quantization.run,
    "scaling": scaling.run,
}
LATEST = "latest.json"


def bench_dir(local_settings: LocalStackSettings) -> Path:
    return local_settings.run_dir / "bench"


def run_suite(
    settings: Settings,
    local_settings: LocalStackSettings,
    profile: Profile,
    sections: Sequence[str],
    seed: int,
    command: str,
) -> tuple[dict[str, Any], Path]:
    started = time.perf_counter()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = bench_dir(local_settings) / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    machine = machine_facts(BENCH_ROOT)
    runner = Runner(profile)
    search = search_models(local_settings)
    done: list[Section] = []
    # One gateway worker per core the gateway gets in the dedicated section (1 on a 2-core machine).
    workers = max(1, len(split_cores(available_cpus())[0]))
    models = (settings.recommender_model, *search)
    with bench_stack(settings, local_settings, run_dir, models=models, workers=workers) as stack:
        runner.api_keys = stack.api_keys()
        context = Context(
            settings=settings,
            local_settings=local_settings,
            profile=profile,
            runner=runner,
            stack=stack,
            book=load_price_book(settings.price_book_path),
            run_dir=run_dir,
            seed=seed,
            search_models=bool(search),
        )
        for name in sections:
            done.append(_run_section(name, context))
    figures: dict[str, Any] = {}
    for section in done:
        figures.update(section.figures)
    report = {
        "profile": profile.name,
        "command": command,
        "seed": seed,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine,
        "machine_load_end": load_now(),
        "sections": [section.as_dict() for section in done],
        "goals": [result.as_dict() for result in evaluate_all(figures)],
        "figures": figures,
        "runs": runner.runs,
    }
    path = bench_dir(local_settings) / f"bench-{stamp}.json"
    path.write_text(json.dumps(report, indent=1, default=str) + "\n")
    shutil.copyfile(path, bench_dir(local_settings) / LATEST)
    _clean_run_dir(run_dir)
    return report, path


def _run_section(name: str, context: Context) -> Section:
    started = time.perf_counter()
    log.info("section %s", name)
    try:
        section = SECTIONS[name](context)
    except Exception as error:  # noqa: BLE001 - one broken section must not lose the others' figures
        log.error("section %s failed: %s", name, error)
        section = Section(name, f"{name} (failed)")
        section.notes.append(f"FAILED: {type(error).__name__}: {error}")
        section.details["traceback"] = traceback.format_exc()
    section.seconds = round(time.perf_counter() - started, 1)
    section.details["machine_load_after"] = load_now()
    return section


def _clean_run_dir(run_dir: Path) -> None:
    """Ledgers and span files of the bench gateways are large and of no further use; logs stay."""
    for pattern in ("ledger-*.sqlite*", "spans-*.jsonl"):
        for path in run_dir.glob(pattern):
            path.unlink(missing_ok=True)
    shutil.rmtree(run_dir / "encoder_repo", ignore_errors=True)
