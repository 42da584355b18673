"""2. The result cache: hit vs miss latency and throughput, and hit rate vs cost saved under a Zipf-like mix.

- hits: a small set of calls is answered once (warming their keys), then only those calls are
  sent, so every measured call is a hit;
- misses: every call is a (user, k) never asked before in this run, so every call is a miss
  (lookup, model call and store: the full miss path, not the cache-off path);
- mix: the demo's realistic traffic (customers drawn with Zipf-like popularity) against an
  empty cache (this run's keys deleted first), several seeds: hit rate and the share of model
  compute cost the cache avoided, as the stream goes on.
"""

from __future__ import annotations

from typing import Any

from benchmarks.results_table import RATIO, Section
from benchmarks.runner import values
from benchmarks.sections import Context
from benchmarks.stack import CACHED
from benchmarks.workloads import distinct_recommend_calls, known_users, recommend_mix

HOT_CALLS = 64
HIT, MISS = "hit", "miss"
MIX_CONCURRENCY = 8
MIX_CHECKPOINTS = (0.25, 0.5, 0.75, 1.0)
# Upper bound of distinct calls one miss run can consume (the run is time-bound well before).
MISS_CALLS_PER_RUN = 20_000


def run(ctx: Context) -> Section:
    section = Section("cache", "2. Result cache — hit vs miss (Recommend), and a Zipf-like mix")
    address = ctx.stack.gateway_address(CACHED.name)
    users = known_users(ctx.local_settings)
    hot = distinct_recommend_calls(users, HOT_CALLS, offset=0)
    ctx.runner.run(
        label="warm hot keys",
        target="gateway.recommend",
        address=address,
        calls=hot,
        concurrency=4,
        max_requests=HOT_CALLS,
        cycle=False,
        warmup_requests=0,
    )
    offset = HOT_CALLS
    top = max(ctx.profile.concurrencies)
    results: dict[int, dict[str, list[dict[str, Any]]]] = {}
    for concurrency in (1, top):
        results[concurrency] = {HIT: [], MISS: []}
        for repetition in range(ctx.profile.repetitions):
            order = (HIT, MISS) if repetition % 2 == 0 else (MISS, HIT)
            for kind in order:
                if kind == HIT:
                    spec = {"calls": hot}
                else:
                    spec = {"calls": distinct_recommend_calls(users, MISS_CALLS_PER_RUN, offset), "cycle": False}
                    offset += MISS_CALLS_PER_RUN
                result = ctx.runner.run(
                    label=f"cache {kind}", target="gateway.recommend", address=address, concurrency=concurrency,
                    channels=ctx.stack.workers, **spec,
                )  # fmt: skip
                results[concurrency][kind].append(result)
    _check_kinds(section, results)
    one = results[1]
    section.add_row(
        "p50 latency, one request in flight",
        "ms",
        (HIT, values(one[HIT], "latency", "p50_ms")),
        (MISS, values(one[MISS], "latency", "p50_ms")),
        RATIO,
    )
    section.add_row(
        "p99 latency, one request in flight",
        "ms",
        (HIT, values(one[HIT], "latency", "p99_ms")),
        (MISS, values(one[MISS], "latency", "p99_ms")),
        RATIO,
    )
    # The goal reads the hit p99 itself, not the ratio.
    section.figures["cache_hit_p99_ms"] = section.rows[-1]["candidate"]
    many = results[top]
    section.add_row(
        f"throughput, C={top}",
        "rps",
        (HIT, values(many[HIT], "throughput_rps")),
        (MISS, values(many[MISS], "throughput_rps")),
        RATIO,
        figure="cache_hit_over_miss_throughput_c32",
    )
    section.add_row(
        f"p99 latency, C={top}",
        "ms",
        (HIT, values(many[HIT], "latency", "p99_ms")),
        (MISS, values(many[MISS], "latency", "p99_ms")),
        RATIO,
    )
    section.add_row(
        "cost per 1,000 requests",
        "USD",
        (HIT, [r["extras_mean"]["cost_total"] * 1000 for r in many[HIT]]),
        (MISS, [r["extras_mean"]["cost_total"] * 1000 for r in many[MISS]]),
        RATIO,
    )
    _mix(ctx, section, address)
    return section


def _check_kinds(section: Section, results: dict[int, dict[str, list[dict[str, Any]]]]) -> None:
    """Every hit run must have been all hits and every miss run all misses, or the figures lie."""
    for concurrency, kinds in results.items():
        for kind, runs in kinds.items():
            for result in runs:
                rate = result["extras_mean"].get("cache_hit", 0.0)
                expected = 1.0 if kind == HIT else 0.0
                if abs(rate - expected) > 1e-9:
                    section.notes.append(f"C={concurrency} {kind} run had a hit rate of {rate:.3f}, not {expected:.0f}")


def _mix(ctx: Context, section: Section, address: str) -> None:
    hit_rates, saved, cost_per_1k, curves = [], [], [], []
    for repetition in range(ctx.profile.repetitions):
        ctx.stack.clear_cache()
        calls = recommend_mix(ctx.local_settings, ctx.profile.mix_requests, ctx.seed + 1 + repetition)
        result = ctx.runner.run(
            label="cache zipf mix",
            target="gateway.recommend",
            address=address,
            calls=calls,
            cycle=False,
            concurrency=MIX_CONCURRENCY,
            max_requests=len(calls),
            max_seconds=60,
            warmup_requests=0,
            record_outcomes=True,
        )
        curve = mix_curve(result["outcomes"])
        curves.append(curve)
        hit_rates.append(curve[-1]["hit_rate"])
        saved.append(curve[-1]["compute_cost_saved"])
        cost_per_1k.append(result["extras_mean"]["cost_total"] * 1000)
    label = f"Zipf mix, {ctx.profile.mix_requests} calls from an empty cache"
    section.add_row(f"hit rate, {label}", "", ("mix", hit_rates))
    section.add_row(f"model compute cost avoided (avoided / (paid + avoided)), {label}", "", ("mix", saved))
    section.add_row(f"cost per 1,000 requests, {label}", "USD", ("mix", cost_per_1k))
    section.details["mix_curves"] = curves
    points = "; ".join(
        f"after {p['requests']} calls: hit rate {p['hit_rate']:.0%}, compute cost avoided {p['compute_cost_saved']:.0%}"
        for p in curves[0]
    )
    section.notes.append(f"Hit rate vs cost saved as the mix goes on (first seed): {points}.")
    ctx.stack.clear_cache()


def mix_curve(outcomes: list[list[Any]]) -> list[dict[str, float]]:
    """Cumulative hit rate and share of compute cost avoided at each checkpoint of the stream (pure).

    ``outcomes``: (index, latency_ms, status, extras) per call as the load generator records them."""
    ordered = sorted(outcomes, key=lambda outcome: outcome[0])
    points = []
    hits = ok = 0
    paid = avoided = 0.0
    marks = {max(1, round(len(ordered) * share)) for share in MIX_CHECKPOINTS}
    for position, (_, _, status, extras) in enumerate(ordered, start=1):
        if status == "OK":
            ok += 1
            hits += int(extras.get("cache_hit", 0.0))
            paid += extras.get("cost_compute", 0.0)
            avoided += extras.get("cost_avoided", 0.0)
        if position in marks:
            points.append(
                {
                    "requests": position,
                    "hit_rate": round(hits / ok, 4) if ok else 0.0,
                    "compute_cost_saved": round(avoided / (paid + avoided), 4) if paid + avoided else 0.0,
                }
            )
    return points
