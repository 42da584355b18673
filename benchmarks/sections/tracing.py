"""3. Tracing on vs off: throughput at the top concurrency, cache off, spans really exported.

Three gateways side by side: tracing off; the default (head sampling at the default ratio,
parent-based) exporting over OTLP; every request traced and exported over OTLP. Spans go to
the stack's OTLP receiver (benchmarks/otlp_sink.py) over gRPC, serialised and acknowledged as a
collector would take them. Cost tagging has no switch: every request is priced and recorded
whatever the sampling, so its price is in all three; what pricing itself costs is measured
in-process (``price_request`` per call) and from the gateway's own metered CPU per request.
"""

from __future__ import annotations

import time

from benchmarks.pricing import gateway_cpu_ns
from benchmarks.results_table import RATIO, Section
from benchmarks.runner import errors_of, values
from benchmarks.sections import Context
from benchmarks.stack import TRACED_ALL, TRACED_DEFAULT, UNTRACED
from benchmarks.workloads import recommend_mix
from costing.cost import Usage, price_request

PRICING_CALLS = 20_000


def run(ctx: Context) -> Section:
    section = Section("tracing", "3. Cost tagging + tracing on vs off — Recommend, cache off")
    calls = recommend_mix(ctx.local_settings, 4000, ctx.seed)
    top = max(ctx.profile.concurrencies)
    variants = {
        variant.name: {
            "target": "gateway.recommend",
            "address": ctx.stack.gateway_address(variant.name),
            "calls": calls,
            "concurrency": top,
            "channels": ctx.stack.workers,
        }
        for variant in (UNTRACED, TRACED_DEFAULT, TRACED_ALL)
    }
    results = ctx.runner.side_by_side(variants, ctx.profile.goal_repetitions)
    off = (UNTRACED.name, values(results[UNTRACED.name], "throughput_rps"))
    section.add_row(
        f"throughput, C={top}: default tracing (head-sampled, OTLP) vs tracing off",
        "rps",
        (TRACED_DEFAULT.name, values(results[TRACED_DEFAULT.name], "throughput_rps")),
        off,
        RATIO,
        figure="default_tracing_over_untraced_throughput_c32",
    )
    section.add_row(
        f"throughput, C={top}: every request traced, exported over OTLP, vs tracing off",
        "rps",
        (TRACED_ALL.name, values(results[TRACED_ALL.name], "throughput_rps")),
        off,
        RATIO,
        figure="all_traced_over_untraced_throughput_c32",
    )
    for name in (UNTRACED.name, TRACED_ALL.name):
        cpu_us = [gateway_cpu_ns(ctx.book, r["extras_mean"]["cost_gateway"]) / 1e3 for r in results[name]]
        section.add_row(f"gateway's metered CPU per request, {name}", "µs", (name, cpu_us))
    pricing_us = _price_request_us(ctx)
    section.add_row("price_request() per call, in-process", "µs", ("pricing", [pricing_us]))
    section.details["errors"] = errors_of(results)
    section.details["variants"] = {v.name: v.description for v in (UNTRACED, TRACED_DEFAULT, TRACED_ALL)}
    section.notes.append(
        "Variants: "
        + "; ".join(f"{v.name} = {v.description}" for v in (UNTRACED, TRACED_DEFAULT, TRACED_ALL))
        + ". Cost tagging (metering, pricing, ledger, trailing metadata) is always on; its in-process price "
        "is the metered CPU and price_request() rows."
    )
    return section


def _price_request_us(ctx: Context) -> float:
    usage = Usage(pool=ctx.settings.pool_name, model_compute_ns=250_000, gateway_cpu_ns=80_000, cache_ops=1)
    started = time.perf_counter_ns()
    for _ in range(PRICING_CALLS):
        price_request(usage, ctx.book)
    return (time.perf_counter_ns() - started) / PRICING_CALLS / 1e3
