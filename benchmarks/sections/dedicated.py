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

Other jobs on a shared machine are not pinned away: the cores are the gateway's own only
among the processes of this run.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from contextlib import contextmanager

from benchmarks.pinning import available_cpus, pin, split_cores
from benchmarks.proc import process_group
from benchmarks.results_table import DIFF, RATIO, Section
from benchmarks.runner import values
from benchmarks.sections import Context
from benchmarks.stack import CACHED, OPEN_LOOP_MAX_IN_FLIGHT, PLAIN
from benchmarks.workloads import recommend_mix, tagged_calls

DIRECT, GATEWAY, HITS = "direct Triton", "gateway", "gateway, cache hits"
HOT_CALLS = 64


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
    with _pinned(ctx, gateway_cpus, other_cpus):
        ctx.runner.run(label="warm hot keys", **{**hits, "max_requests": HOT_CALLS, "cycle": False,
                                                  "warmup_requests": 0, "concurrency": 4})  # fmt: skip
        repetitions = ctx.profile.goal_repetitions
        closed = ctx.runner.side_by_side(
            {DIRECT: {**direct, "concurrency": top}, GATEWAY: {**gateway, "concurrency": top}}, repetitions
        )
        capacity = statistics.median(values(closed[GATEWAY], "throughput_rps"))
        rate = max(1.0, round(capacity / 2))
        open_loop = {"rate": rate, "concurrency": OPEN_LOOP_MAX_IN_FLIGHT, "max_seconds": ctx.profile.latency_seconds}
        half = ctx.runner.side_by_side(
            {DIRECT: {**direct, **open_loop}, GATEWAY: {**gateway, **open_loop}, HITS: {**hits, **open_loop}}, repetitions
        )
    section.add_row(
        f"throughput, C={top}, cache off",
        "rps",
        (GATEWAY, values(closed[GATEWAY], "throughput_rps")),
        (DIRECT, values(closed[DIRECT], "throughput_rps")),
        RATIO,
        figure="dedicated_gateway_over_direct_throughput",
    )
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
    section.details.update(
        gateway_cpus=gateway_cpus, other_cpus=other_cpus, offered_rps=rate, gateway_capacity_rps=capacity, errors=errors
    )
    section.notes.append(
        f"Cores: gateway ({ctx.stack.workers} worker(s)) on {gateway_cpus}; Triton, its model stubs and the load "
        f"generator on {other_cpus}, for direct and gateway runs alike. Errors or overflow: {errors}."
    )
    if len(cpus) == 2:
        section.notes.append(
            "With 2 cores, direct Triton runs with the load generator on one core and the gateway's core idle, while "
            "the gateway runs use both: the ratio says whether one gateway core keeps up with one core of Triton + "
            "load generator, not how the gateway scales. Other jobs on this machine share both cores."
        )
    return section


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
