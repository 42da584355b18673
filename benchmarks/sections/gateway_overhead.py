"""1. Gateway vs direct Triton on shared cores: same model, same calls, same aio load generator, cache off.

Every process (gateway, Triton, load generator, the machine's other jobs) shares the same cores,
so this ratio is information, shown beside its bound (the dedicated section is the goal).

Throughput at each concurrency (closed loop), then latency at a fixed offered load of half the
saturation rate (open loop, from the scheduled send time). Triton's statistics API is read
around one direct run as a server-side check of the client's figures, and NVIDIA's
perf_analyzer is run against the same model when it is installed.
"""

from __future__ import annotations

import statistics

from benchmarks import perf_analyzer, triton_counters
from benchmarks.pricing import compute_cost_per_1k, gateway_cpu_ns
from benchmarks.proc import process_group
from benchmarks.results_table import DIFF, RATIO, Section
from benchmarks.runner import cpu_us_per_request, errors_of, values
from benchmarks.sections import Context
from benchmarks.stack import OPEN_LOOP_MAX_IN_FLIGHT, PLAIN
from benchmarks.workloads import recommend_mix, search_mix

DIRECT, GATEWAY = "direct Triton", "gateway"
MIX_CALLS = 4000
SEARCH_MODEL = "product_search"


def run(ctx: Context) -> Section:
    section = Section("gateway", "1. Gateway vs direct Triton on shared cores — Recommend, cache off, same calls")
    calls = recommend_mix(ctx.local_settings, MIX_CALLS, ctx.seed)
    direct = {
        "target": "triton.recommender",
        "address": ctx.stack.triton.grpc_url,
        "model": ctx.settings.recommender_model,
        "calls": calls,
    }
    gateway = {"target": "gateway.recommend", "address": ctx.stack.gateway_address(PLAIN.name), "calls": calls,
               "channels": ctx.stack.workers}  # fmt: skip
    top = max(ctx.profile.concurrencies)
    by_concurrency = {}
    watch = {"gateway": ctx.stack.gateway_pids(PLAIN.name), "triton": process_group(ctx.stack.triton.pid)}
    for concurrency in ctx.profile.concurrencies:
        results = ctx.runner.side_by_side(
            {DIRECT: {**direct, "concurrency": concurrency}, GATEWAY: {**gateway, "concurrency": concurrency}},
            watch=watch,
        )
        by_concurrency[concurrency] = results
        _throughput_rows(
            section, results, f"C={concurrency}", "gateway_over_direct_throughput_c32" if concurrency == top else None
        )
    _shared_box_bound(ctx, section, by_concurrency[top])
    ctx.shared["recommend_by_concurrency"] = by_concurrency

    saturation = min(
        statistics.median(values(by_concurrency[top][name], "throughput_rps")) for name in (DIRECT, GATEWAY)
    )
    rate = max(1.0, round(saturation / 2))
    open_loop = {"rate": rate, "concurrency": OPEN_LOOP_MAX_IN_FLIGHT, "max_seconds": ctx.profile.latency_seconds}
    half = ctx.runner.side_by_side({DIRECT: {**direct, **open_loop}, GATEWAY: {**gateway, **open_loop}})
    for name, label in (("p50_ms", "p50"), ("p99_ms", "p99")):
        section.add_row(
            f"{label} latency at {rate:.0f} rps offered (½ saturation)",
            "ms",
            (GATEWAY, values(half[GATEWAY], "latency", name)),
            (DIRECT, values(half[DIRECT], "latency", name)),
            DIFF,
            figure="gateway_minus_direct_p99_ms_half_load" if name == "p99_ms" else None,
        )
    section.details["half_load"] = {"offered_rps": rate, "saturation_rps": saturation, "errors": errors_of(half)}

    _cost_rows(ctx, section, by_concurrency[top], top)
    section.details["triton_statistics"] = _server_side_check(ctx, direct, top)
    section.details["perf_analyzer"] = perf_analyzer.reference(
        ctx.stack.triton.grpc_url, ctx.settings.recommender_model, calls, ctx.profile.concurrencies, ctx.run_dir
    )
    section.details["errors"] = {c: errors_of(r) for c, r in by_concurrency.items()}
    _notes(section)
    if ctx.search_models:
        _search(ctx, section, top)
    return section


def _shared_box_bound(ctx: Context, section: Section, results: dict) -> None:
    """On cores shared by everyone, direct runs at cores / (T + L) and the gateway at best at
    cores / (T + L + floor): the shared-box ratio cannot exceed (T + L) / (T + L + floor), with T
    Triton's and L the load generator's CPU per direct request and floor the floor proxy's (the
    overhead section, same run)."""
    floor = ctx.shared.get("floor_cpu_us")
    if not floor:
        section.notes.append("shared-box bound not computed: the overhead section did not run")
        return
    triton = cpu_us_per_request(results[DIRECT], "triton")
    load = [r["client_cpu_s"] / max(1, r["sent"]) * 1e6 for r in results[DIRECT]]
    bound = [(t + lg) / (t + lg + f) for t, lg, f in zip(triton, load, floor)]
    section.add_row(
        "shared-box bound (T + L) / (T + L + floor CPU), per request: T Triton, L load generator (direct), floor proxy",
        "",
        ("bound", bound),
        figure="shared_box_bound",
    )
    section.add_row("load generator CPU per direct request (L)", "µs", ("load generator", load))


def _throughput_rows(section: Section, results: dict, where: str, figure: str | None, what: str = "") -> None:
    section.add_row(
        f"{what}throughput, {where}",
        "rps",
        (GATEWAY, values(results[GATEWAY], "throughput_rps")),
        (DIRECT, values(results[DIRECT], "throughput_rps")),
        RATIO,
        figure=figure,
    )
    section.add_row(
        f"{what}p99 latency, {where}",
        "ms",
        (GATEWAY, values(results[GATEWAY], "latency", "p99_ms")),
        (DIRECT, values(results[DIRECT], "latency", "p99_ms")),
        DIFF,
    )


def _cost_rows(ctx: Context, section: Section, results: dict, concurrency: int) -> None:
    pool = ctx.settings.pool_name
    direct_cost = [compute_cost_per_1k(ctx.book, pool, r["extras_mean"]["compute_ns"]) for r in results[DIRECT]]
    gateway_cost = [r["extras_mean"]["cost_total"] * 1000 for r in results[GATEWAY]]
    section.add_row(
        f"cost per 1,000 requests, C={concurrency} (direct: model compute only)",
        "USD",
        (GATEWAY, gateway_cost),
        (DIRECT, direct_cost),
        RATIO,
    )
    metered = [gateway_cpu_ns(ctx.book, r["extras_mean"]["cost_gateway"]) / 1e3 for r in results[GATEWAY]]
    section.add_row(
        f"gateway CPU per request, C={concurrency}: metered and billed (candidate) vs the process's own (/proc)",
        "µs",
        ("metered", metered),
        ("process", cpu_us_per_request(results[GATEWAY], "gateway")),
        RATIO,
    )
    section.add_row(
        f"Triton CPU per request (server + model stub, /proc), C={concurrency}",
        "µs",
        (GATEWAY, cpu_us_per_request(results[GATEWAY], "triton")),
        (DIRECT, cpu_us_per_request(results[DIRECT], "triton")),
        RATIO,
    )


def _server_side_check(ctx: Context, direct: dict, concurrency: int) -> dict:
    """One more direct run, bracketed by Triton's statistics: does the server agree with the client?"""
    url, model = ctx.stack.triton.grpc_url, ctx.settings.recommender_model
    before = triton_counters.snapshot(url, model)
    result = ctx.runner.run(label="direct Triton (stats)", **direct, concurrency=concurrency)
    server = triton_counters.delta(before, triton_counters.snapshot(url, model))
    client_sent = result["sent"] + (result["warmup"] or {}).get("sent", 0)
    return {
        "concurrency": concurrency,
        "client_sent_incl_warmup": client_sent,
        "server_requests": server["requests"],
        "counts_agree": server["requests"] == client_sent,
        "client_mean_ms": result["latency"]["mean_ms"],
        "client_throughput_rps": result["throughput_rps"],
        "server": server,
    }


def _notes(section: Section) -> None:
    check = section.details["triton_statistics"]
    server = check["server"]
    section.notes.append(
        f"Server-side check (Triton statistics API, C={check['concurrency']}): the server counted "
        f"{check['server_requests']} requests for {check['client_sent_incl_warmup']} sent "
        f"({'agree' if check['counts_agree'] else 'DISAGREE'}); mean time inside Triton "
        f"{server['mean_server_ms']} ms (queue {server['mean_queue_ms']} ms, mean batch {server['mean_batch']}) "
        f"vs {check['client_mean_ms']} ms seen by the client."
    )
    reference = section.details["perf_analyzer"]
    if reference.get("error"):
        section.notes.append(f"perf_analyzer failed: {reference['error']}")
    elif reference.get("available"):
        figures = ", ".join(
            f"C={r['concurrency']}: {r['throughput_rps']:.0f} rps, p99 {r['p99_ms']:.2f} ms" for r in reference["runs"]
        )
        section.notes.append(f"perf_analyzer against the same model: {figures}.")
    else:
        section.notes.append(f"perf_analyzer not run: {reference['reason']}")


def _search(ctx: Context, section: Section, concurrency: int) -> None:
    """Search through the gateway vs the product_search ensemble directly, when the gateway serves Search."""
    calls = search_mix(ctx.local_settings.model_repository, 600, ctx.seed)
    gateway = {"target": "gateway.search", "address": ctx.stack.gateway_address(PLAIN.name), "calls": calls}
    probe = ctx.runner.run(label="gateway search probe", **gateway, max_requests=1, max_seconds=5, warmup_requests=0)
    if probe["ok"] != 1:
        section.notes.append(f"Search not measured: the gateway answered {probe['statuses']} to a Search call.")
        return
    direct = {"target": "triton.search", "address": ctx.stack.triton.grpc_url, "model": SEARCH_MODEL, "calls": calls}
    for c in sorted({1, concurrency}):
        results = ctx.runner.side_by_side(
            {DIRECT: {**direct, "concurrency": c}, GATEWAY: {**gateway, "concurrency": c}}
        )
        _throughput_rows(section, results, f"C={c}", None, what="Search ")
