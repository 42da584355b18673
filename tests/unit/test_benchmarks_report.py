import pytest

from benchmarks.goals import evaluate_all
from benchmarks.perf_analyzer import input_data, parse_csv
from benchmarks.profiling import area_of, parse_collapsed, summarise
from benchmarks.results_table import DIFF, RATIO, Section, markdown, number
from benchmarks.sections.cache import mix_curve
from benchmarks.triton_counters import delta


def test_rows_compare_per_repetition_pair_and_name_figures_for_the_goals():
    section = Section("gateway", "1. Gateway")
    row = section.add_row(
        "throughput",
        "rps",
        ("gateway", [80.0, 90.0]),
        ("direct", [100.0, 100.0]),
        RATIO,
        figure="gateway_over_direct_throughput_c32",
    )
    assert row["comparison"]["values"] == [0.8, 0.9]
    assert row["comparison"]["median"] == pytest.approx(0.85)
    assert section.figures["gateway_over_direct_throughput_c32"] is row["comparison"]
    diff = section.add_row("p99", "ms", ("gateway", [5.0, 7.0]), ("direct", [4.0, 4.0]), DIFF)
    assert diff["comparison"]["values"] == [1.0, 3.0]
    single = section.add_row("hit rate", "", ("mix", [0.4]), figure="hit")
    assert single["baseline"] is None and section.figures["hit"]["median"] == 0.4
    with pytest.raises(ValueError):
        section.add_row("x", "", ("a", [1.0]), comparison=RATIO)


def test_markdown_has_the_goals_and_every_row():
    section = Section("gateway", "1. Gateway")
    section.add_row(
        "throughput",
        "rps",
        ("gateway", [85.0]),
        ("direct", [100.0]),
        RATIO,
        figure="dedicated_gateway_over_direct_throughput",
    )
    report = {
        "profile": "quick",
        "seconds": 12.0,
        "machine": {
            "measured_at_utc": "2026-11-23T20:00:00+00:00",
            "cpus": 2,
            "cpu_model": "x",
            "memory_gib": {"total": 24},
            "load_1m": 1,
            "load_5m": 1,
            "load_15m": 1,
            "python": "3.11",
            "git": {"commit": "abc", "dirty": False},
        },
        "sections": [{**section.as_dict(), "seconds": 1.0}],
        "goals": [g.as_dict() for g in evaluate_all(section.figures)],
    }
    text = markdown(report)
    assert "| dedicated cores: gateway throughput / direct Triton (C=32, cache off) | 0.850 × | >= 0.9x | not met |" in text
    assert "| throughput [rps] | direct: 100 | gateway: 85.0 | 0.850 × |" in text
    assert "not measured" in text  # the goals of sections that did not run


def test_numbers_keep_three_significant_digits():
    assert [number(v) for v in (1234.5, 12.34, 1.234, 0.1234, 0.000012345)] == [
        "1,234",
        "12.3",
        "1.23",
        "0.123",
        "1.23e-05",
    ]
    assert number(float("nan")) == "–"


def test_mix_curve_accumulates_hit_rate_and_avoided_compute_in_call_order():
    miss = {"cache_hit": 0.0, "cost_compute": 3.0, "cost_avoided": 0.0}
    hit = {"cache_hit": 1.0, "cost_compute": 0.0, "cost_avoided": 3.0}
    outcomes = [[3, 1.0, "OK", hit], [0, 1.0, "OK", miss], [1, 1.0, "OK", miss], [2, 1.0, "OK", hit]]
    curve = mix_curve(outcomes)
    assert [p["requests"] for p in curve] == [1, 2, 3, 4]
    assert curve[1] == {"requests": 2, "hit_rate": 0.0, "compute_cost_saved": 0.0}
    assert curve[-1] == {"requests": 4, "hit_rate": 0.5, "compute_cost_saved": 0.5}


def test_triton_statistics_delta_gives_the_server_s_view_of_a_run():
    before = {
        "inference_count": 10,
        "execution_count": 5,
        "success_count": 10,
        "success_ns": 10_000_000,
        "queue_ns": 0,
        "compute_infer_ns": 0,
        "queue_count": 10,
        "compute_infer_count": 10,
    }
    after = {
        **before,
        "inference_count": 110,
        "execution_count": 30,
        "success_count": 110,
        "success_ns": 310_000_000,
        "queue_ns": 100_000_000,
        "compute_infer_ns": 150_000_000,
    }
    server = delta(before, after)
    assert server["requests"] == 100 and server["mean_batch"] == 4.0
    assert server["mean_server_ms"] == 3.0 and server["mean_queue_ms"] == 1.0 and server["mean_compute_infer_ms"] == 1.5


def test_py_spy_collapsed_stacks_are_summarised_by_area_and_function():
    root = "<module> (gateway/__main__.py:3);run (asyncio/runners.py:190)"
    raw = (
        f"{root};Recommend (gateway/recommendation_servicer.py:30) 6\n"
        f"{root};infer (tritonclient/grpc/aio/__init__.py:700) 3\n"
        "<module> (gateway/__main__.py:3);select (selectors.py:468) 1\n"
        "garbage line\n"
    )
    stacks = parse_collapsed(raw)
    assert sum(stacks.values()) == 10
    summary = summarise(stacks)
    assert summary["self_by_area"] == {"gateway (Tollgate)": 60.0, "tritonclient": 30.0, "asyncio event loop": 10.0}
    assert summary["inclusive_by_function"]["<module> (gateway/__main__.py)"] == 100.0
    assert "run (asyncio/runners.py)" not in summary["inclusive_by_function"]  # the loop encloses everything
    assert area_of("epoll_wait (libc.so.6)") == "system calls (libc)"


def test_perf_analyzer_csv_and_input_data():
    csv_text = (
        "Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,"
        "Server Compute Infer,Server Compute Output,Client Recv,"
        "p50 latency,p90 latency,p95 latency,p99 latency,Avg latency\n"
        "8,1500.5,10,200,300,5,400,5,3,4000,6000,7000,9000,4500\n"
    )
    assert parse_csv(csv_text) == {
        "concurrency": 8,
        "throughput_rps": 1500.5,
        "p50_ms": 4.0,
        "p99_ms": 9.0,
        "mean_ms": 4.5,
    }
    document = input_data([{"user_id": "17850", "k": 5}])
    assert document == {
        "data": [{"USER_ID": {"content": ["17850"], "shape": [1]}, "K": {"content": [5], "shape": [1]}}]
    }
