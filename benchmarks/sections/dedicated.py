"""Dedicated cores: the gateway on its own core(s), Triton and the load generator on the others.

How the gateway is meant to run: it never competes with the model for a core. The gateway's
processes (its workers and every thread) are pinned to the upper half of the cores, Triton
(with its model stubs) and the load generator to the lower half, for the gateway runs and for
the direct runs alike (direct: Triton and the load on the same cores as with the gateway, the
gateway's cores idle). On a 2-core machine that is one core for the gateway and one for Triton
and the load generator together: the direct runs then have a core to themselves that the
gateway runs share with nothing, so "gateway ≥ 0.9× direct" means the gateway's one core
keeps up with what one core of Triton + load generator can produce.

1. Throughput at C=32 (closed loop), gateway (cache off) vs direct.
2. Latency at an equal offered rate for both, half the gateway's measured capacity (open loop,
   from the scheduled send time): added p50 and p99.
3. Cache hits end to end at the same rate (open loop, every call a hit): p99.

The closed-loop runs also read each side's CPU from /proc: Triton's (with its stubs) per
request, and the cores each side keeps busy (Triton + load generator on theirs, the gateway on
its own), which says which core limits the gateway's throughput. The open-loop comparisons run
as more, shorter pairs than the others in the same time (``latency_plan``): a stall of the
shared machine spoils a pair, and a median over 9 pairs survives 4 spoiled ones (over 5: 2).

Other jobs on a shared machine are not pinned away: the cores are the gateway's own only
among the processes of this run.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks.pinning import available_cpus, pin, split_cores
from benchmarks.proc import process_group
from benchmarks.results_table import DIFF, RATIO, Section
from benchmarks.runner import Profile, cpu_us_per_request, values
from benchmarks.sections import Context
from benchmarks.stack import CACHED, OPEN_LOOP_MAX_IN_FLIGHT, PLAIN
from benchmarks.workloads import recommend_mix, tagged_calls

DIRECT, GATEWAY, HITS = "direct Triton", "gateway", "gateway, cache hits"
HOT_CALLS = 64
TRITON, GATEWAY_PROCESS = "triton", "gateway"


def run(ctx: Context) -> Section:
    section = Section("dedicated", "1b. Dedicated cores — gateway on its own core(s), Triton + load on the others")
    cpus = available_cpus()
    if len(cpus) < 2:
        section.notes.append(f"not measured: needs 2 cores or more, this process may use {cpus}")
        return section
    gateway_cpus, other_cpus = split_cores(cpus)
    top = max(ctx.profile.concurrencies)
    calls = recommend_mix(ctx.local_settings, 4000, ctx.seed)
    hot = tagged_calls(calls, HOT_CALLS, f"bench-dedicated-hot-{ctx.seed}")
    channels = ctx.stack.workers
    direct = {"target": "triton.recommender", "address": ctx.stack.triton.grpc_url,
              "model": ctx.settings.recommender_model, "calls": calls, "cpus": other_cpus}  # fmt: skip
    gateway = {"target": "gateway.recommend", "address": ctx.stack.gateway_address(PLAIN.name), "calls": calls,
               "cpus": other_cpus, "channels": channels}  # fmt: skip
    hits = {"target": "gateway.recommend", "address": ctx.stack.gateway_address(CACHED.name), "calls": hot,
            "cpus": other_cpus, "channels": channels}  # fmt: skip
    assert ctx.stack.triton.pid is not None
    watch = {TRITON: process_group(ctx.stack.triton.pid), GATEWAY_PROCESS: ctx.stack.gateway_pids(PLAIN.name)}
    with _pinned(ctx, gateway_cpus, other_cpus):
        ctx.runner.run(label="warm hot keys", **{**hits, "max_requests": HOT_CALLS, "cycle": False,
                                                  "warmup_requests": 0, "concurrency": 4})  # fmt: skip
        repetitions = ctx.profile.goal_repetitions
        closed = ctx.runner.side_by_side(
            {DIRECT: {**direct, "concurrency": top}, GATEWAY: {**gateway, "concurrency": top}}, repetitions, watch=watch
        )
        capacity = statistics.median(values(closed[GATEWAY], "throughput_rps"))
        rate = max(1.0, round(capacity / 2))
        pairs, seconds = latency_plan(ctx.profile)
        open_loop = {"rate": rate, "concurrency": OPEN_LOOP_MAX_IN_FLIGHT, "max_seconds": seconds}
        half = ctx.runner.side_by_side(
            {DIRECT: {**direct, **open_loop}, GATEWAY: {**gateway, **open_loop}, HITS: {**hits, **open_loop}}, pairs
        )
    section.add_row(
        f"throughput, C={top}, cache off",
        "rps",
        (GATEWAY, values(closed[GATEWAY], "throughput_rps")),
        (DIRECT, values(closed[DIRECT], "throughput_rps")),
        RATIO,
        figure="dedicated_gateway_over_direct_throughput",
    )
    section.add_row(
        f"Triton CPU per request (server + model stubs, /proc, warm-up included), C={top}",
        "µs",
        (GATEWAY, cpu_us_per_request(closed[GATEWAY], TRITON)),
        (DIRECT, cpu_us_per_request(closed[DIRECT], TRITON)),
        RATIO,
    )
    section.add_row(
        f"cores kept busy by Triton + the load generator (on {other_cpus}), C={top}",
        "cores",
        (GATEWAY, _busy_cores(closed[GATEWAY], TRITON)),
        (DIRECT, _busy_cores(closed[DIRECT], TRITON)),
    )
    section.add_row(
        f"cores kept busy by the gateway (on {gateway_cpus}), C={top}",
        "cores",
        (GATEWAY, [us * r["throughput_rps"] / 1e6 for us, r in zip(
            cpu_us_per_request(closed[GATEWAY], GATEWAY_PROCESS), closed[GATEWAY], strict=True)]),
    )  # fmt: skip
    for name, label in (("p50_ms", "p50"), ("p99_ms", "p99")):
        section.add_row(
            f"{label} latency at {rate:.0f} rps offered (½ the gateway's capacity), cache off",
            "ms",
            (GATEWAY, values(half[GATEWAY], "latency", name)),
            (DIRECT, values(half[DIRECT], "latency", name)),
            DIFF,
            figure=f"dedicated_gateway_minus_direct_{label}_ms",
        )
    section.add_row(
        f"cache hit p99 latency at {rate:.0f} rps offered, end to end",
        "ms",
        (HITS, values(half[HITS], "latency", "p99_ms")),
        figure="dedicated_cache_hit_p99_ms",
    )
    section.add_row(
        f"cache hit p50 latency at {rate:.0f} rps offered, end to end", "ms", (HITS, values(half[HITS], "latency", "p50_ms"))
    )
    errors = {name: sum(r["errors"] + r.get("overflow", 0) for r in runs) for name, runs in {**closed, **half}.items()}
    statuses = {name: sorted({s for r in runs for s in r["statuses"] if s != "OK"}) for name, runs in half.items()}
    section.details.update(
        gateway_cpus=gateway_cpus, other_cpus=other_cpus, offered_rps=rate, gateway_capacity_rps=capacity, errors=errors,
        open_loop_pairs=pairs, open_loop_seconds=round(seconds, 2), error_statuses=statuses,
    )  # fmt: skip
    section.notes.append(
        f"Cores: gateway ({ctx.stack.workers} worker(s)) on {gateway_cpus}; Triton, its model stubs and the load "
        f"generator on {other_cpus}, for direct and gateway runs alike. Errors or overflow: {errors}"
        + (f" (open loop: {statuses})" if any(statuses.values()) else "") + f". Open loop: {pairs} pairs of "
        f"{seconds:.1f} s. The gateway's pool admits {OPEN_LOOP_MAX_IN_FLIGHT} calls in flight, the load "
        "generator's cap (at the default 64 a stall made it shed calls that direct Triton queued)."
    )
    if len(cpus) == 2:
        section.notes.append(
            "With 2 cores, direct Triton runs with the load generator on one core and the gateway's core idle, while "
            "the gateway runs use both: the ratio says whether one gateway core keeps up with one core of Triton + "
            "load generator, not how the gateway scales. Other jobs on this machine share both cores."
        )
    return section


def latency_plan(profile: Profile) -> tuple[int, float]:
    """Pairs and seconds of the open-loop comparisons: 2n - 1 pairs for the profile's n, each
    shorter, in the time n would take."""
    pairs = 2 * profile.goal_repetitions - 1
    return pairs, profile.latency_seconds * profile.goal_repetitions / pairs


def _busy_cores(runs: list[dict[str, Any]], process: str) -> list[float]:
    """Cores a process and the load generator kept busy: its CPU per request times the rate, plus
    the load generator's own share."""
    return [
        us * run["throughput_rps"] / 1e6 + run["client_cpu_share"]
        for us, run in zip(cpu_us_per_request(runs, process), runs, strict=True)
    ]


@contextmanager
def _pinned(ctx: Context, gateway_cpus: list[int], other_cpus: list[int]) -> Iterator[None]:
    """Pins the measured gateways and Triton for the section, and gives them every core back after."""
    gateways = [pid for variant in (PLAIN.name, CACHED.name) for pid in ctx.stack.gateway_pids(variant)]
    assert ctx.stack.triton.pid is not None
    triton = process_group(ctx.stack.triton.pid)
    pin(gateways, gateway_cpus)
    pin(triton, other_cpus)
    try:
        yield
    finally:
        everything = gateway_cpus + other_cpus
        pin(gateways, everything)
        pin(triton, everything)
