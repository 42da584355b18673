"""3. Cost tagging and tracing on vs off: throughput at the top concurrency, cache off.

The gateway always prices and records every request (there is no switch for cost tagging), so
three configurations are compared side by side: tracing off; tracing on with spans created but
not exported (``tollgate serve``'s default); tracing on with every span exported (to a file, the
demo's exporter). What pricing itself costs is measured in-process (``price_request`` per call)
and from the gateway's own metered CPU per request.
"""

from __future__ import annotations

import time

from benchmarks.pricing import gateway_cpu_ns
from benchmarks.results_table import RATIO, Section
from benchmarks.runner import errors_of, values
from benchmarks.sections import Context
from benchmarks.stack import PLAIN, TRACED, UNTRACED
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
        }
        for variant in (UNTRACED, PLAIN, TRACED)
    }
    results = ctx.runner.side_by_side(variants)
    off = (UNTRACED.name, values(results[UNTRACED.name], "throughput_rps"))
    section.add_row(
        f"throughput, C={top}: spans exported vs tracing off",
        "rps",
        (TRACED.name, values(results[TRACED.name], "throughput_rps")),
        off,
        RATIO,
        figure="traced_over_untraced_throughput_c32",
    )
    section.add_row(
        f"throughput, C={top}: spans not exported vs tracing off",
        "rps",
        (PLAIN.name, values(results[PLAIN.name], "throughput_rps")),
        off,
        RATIO,
    )
    for name in (UNTRACED.name, TRACED.name):
        cpu_us = [gateway_cpu_ns(ctx.book, r["extras_mean"]["cost_gateway"]) / 1e3 for r in results[name]]
        section.add_row(f"gateway's metered CPU per request, {name}", "µs", (name, cpu_us))
    pricing_us = _price_request_us(ctx)
    section.add_row("price_request() per call, in-process", "µs", ("pricing", [pricing_us]))
    section.details["errors"] = errors_of(results)
    section.details["variants"] = {v.name: v.description for v in (UNTRACED, PLAIN, TRACED)}
    section.notes.append(
        "Variants: "
        + "; ".join(f"{v.name} = {v.description}" for v in (UNTRACED, PLAIN, TRACED))
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
