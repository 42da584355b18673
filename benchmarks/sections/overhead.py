"""The gateway's own tax: its CPU per request against the floor proxy's, side by side.

The floor proxy (benchmarks/floor_proxy.py) forwards the bytes of every call to the same Triton
on the same event loop with no logic at all: what any Python gRPC gateway pays for its two hops.
The gateway's CPU is read from /proc (every thread and worker, warm-up included, divided by
the calls sent), for each kind of call at the same concurrency, interleaved with the floor:

- miss: cache on, every call a new key (lookup, Triton, store: the full miss path);
- hit: cache on, every call a hit;

(misses and hits are the floor's calls, same users, k and carts, each made a key of its own by
one unknown excluded item id that the model ignores);
- cache off (`plain`): the gateway section's configuration;
- reject: an invalid request (k = 0), refused with INVALID_ARGUMENT after authentication,
  priced and recorded.

Each row also gives the requests per second one core sustains at that cost (10⁶ ÷ CPU-µs), and
Triton's statistics give the calls each Triton request carried (the gateway coalesces the
misses of one loop iteration into one request of several rows; the floor proxy cannot).
"""

from __future__ import annotations

from typing import Any

from benchmarks import triton_counters
from benchmarks.results_table import RATIO, Section
from benchmarks.runner import cpu_us_per_request
from benchmarks.sections import Context
from benchmarks.stack import CACHED, PLAIN
from benchmarks.workloads import recommend_mix, tagged_calls

FLOOR, MISS, HIT, PLAIN_KIND, REJECT = "floor proxy", "miss", "hit", "cache off", "reject"
HOT_CALLS = 64
MISS_CALLS_PER_RUN = 20_000


def run(ctx: Context) -> Section:
    section = Section("overhead", "0. The gateway's own tax — CPU per request vs the floor proxy (Recommend)")
    concurrency = max(ctx.profile.concurrencies)
    mix = recommend_mix(ctx.local_settings, 4000, ctx.seed)
    hot = tagged_calls(mix, HOT_CALLS, f"bench-hot-{ctx.seed}")
    cached, plain = ctx.stack.gateway_address(CACHED.name), ctx.stack.gateway_address(PLAIN.name)
    channels = ctx.stack.workers
    ctx.runner.run(
        label="warm hot keys", target="gateway.recommend", address=cached, calls=hot, concurrency=4,
        max_requests=HOT_CALLS, cycle=False, warmup_requests=0, channels=channels,
    )  # fmt: skip
    results: dict[str, list[dict[str, Any]]] = {kind: [] for kind in (FLOOR, MISS, HIT, PLAIN_KIND, REJECT)}
    for repetition in range(ctx.profile.goal_repetitions):
        kinds = list(results) if repetition % 2 == 0 else list(reversed(results))
        for kind in kinds:
            spec: dict[str, Any]
            if kind == FLOOR:
                spec = {"target": "triton.recommender", "model": ctx.settings.recommender_model,
                        "address": ctx.stack.floor.address, "calls": mix}  # fmt: skip
                pids = [ctx.stack.floor.pid]
            else:
                variant = CACHED.name if kind in (MISS, HIT) else PLAIN.name
                spec = {"target": "gateway.recommend", "address": cached if kind in (MISS, HIT) else plain,
                        "channels": channels}  # fmt: skip
                if kind == MISS:
                    spec |= {"calls": tagged_calls(mix, MISS_CALLS_PER_RUN, f"bench-miss-{repetition}"), "cycle": False}
                elif kind == HIT:
                    spec["calls"] = hot
                elif kind == REJECT:
                    spec["calls"] = [{**call, "k": 0} for call in mix[:200]]
                else:
                    spec["calls"] = mix
                pids = ctx.stack.gateway_pids(variant)
            before = triton_counters.snapshot(ctx.stack.triton.grpc_url, ctx.settings.recommender_model)
            result = ctx.runner.run(watch={"process": pids}, label=f"overhead {kind}", concurrency=concurrency, **spec)
            after = triton_counters.snapshot(ctx.stack.triton.grpc_url, ctx.settings.recommender_model)
            result["triton"] = triton_counters.delta(before, after)
            results[kind].append(result)
    floor_us = cpu_us_per_request(results[FLOOR], "process")
    ctx.shared["floor_cpu_us"] = floor_us
    figures = {MISS: "gateway_over_floor_cpu_miss", HIT: "gateway_over_floor_cpu_hit"}
    for kind in (MISS, HIT, PLAIN_KIND, REJECT):
        section.add_row(
            f"CPU per request, {kind}, C={concurrency}: gateway vs floor proxy (/proc, all threads)",
            "µs",
            (f"gateway {kind}", cpu_us_per_request(results[kind], "process")),
            (FLOOR, floor_us),
            RATIO,
            figure=figures.get(kind),
        )
    for kind in (FLOOR, MISS, HIT, PLAIN_KIND, REJECT):
        per_core = [1e6 / us if us else float("nan") for us in cpu_us_per_request(results[kind], "process")]
        section.add_row(f"requests per second per core (10⁶ ÷ CPU-µs), {kind}", "rps", (kind, per_core))
    for kind in (FLOOR, MISS, PLAIN_KIND):
        section.add_row(
            f"calls per Triton request (Triton's statistics: inferences / requests), {kind}, C={concurrency}",
            "calls",
            (kind, [run["triton"]["rows_per_request"] or float("nan") for run in results[kind]]),
        )
    _check(section, results)
    section.notes.append(
        f"Floor proxy: benchmarks/floor_proxy.py, a grpc.aio proxy forwarding the bytes of each call to the same "
        f"Triton on the same event loop (uvloop), driven by the direct-Triton client; gateway worker processes: "
        f"{ctx.stack.workers}, load generator channels: {channels}. CPU is read from /proc for every thread of the "
        "process (its workers included) over the whole run, warm-up included, per request sent."
    )
    return section


def _check(section: Section, results: dict[str, list[dict[str, Any]]]) -> None:
    """The runs were what they claim: hits all hits, misses all misses, rejects all refused."""
    for kind, runs in results.items():
        for result in runs:
            if kind == REJECT:
                if set(result["statuses"]) != {"INVALID_ARGUMENT"}:
                    section.notes.append(f"reject run answered {result['statuses']}, not only INVALID_ARGUMENT")
                continue
            if result["errors"]:
                section.notes.append(f"{kind} run had {result['errors']} errors: {result['statuses']}")
            if kind in (MISS, HIT):
                rate = result["extras_mean"].get("cache_hit", 0.0)
                if abs(rate - (1.0 if kind == HIT else 0.0)) > 1e-9:
                    section.notes.append(f"{kind} run had a hit rate of {rate:.3f}")
