import asyncio
import time

import pytest

from benchmarks.load_engine import OK, Outcome, Recording, closed_loop, open_loop
from benchmarks.load_spec import MAX_REQUESTS_CAP, MAX_SECONDS_CAP, LoadSpec, SpecError, check_loopback
from benchmarks.loadgen import result_of
from benchmarks.targets import recommender_inputs, search_inputs, search_query

CALLS = [{"user_id": "17850", "k": 10, "feature": "home_feed"}]


def spec(**fields):
    base = {
        "target": "gateway.recommend",
        "address": "127.0.0.1:50051",
        "calls": CALLS,
        "max_requests": 10,
        "max_seconds": 1.0,
    }
    return LoadSpec(**{**base, **fields})


# --- bounds -----------------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["127.0.0.1:1", "127.5.6.7:8001", "localhost:50051", "[::1]:8001"])
def test_loopback_addresses_are_accepted(address):
    check_loopback(address)


@pytest.mark.parametrize(
    "address", ["10.0.0.5:8001", "192.168.1.2:80", "8.8.8.8:53", "example.com:443", "127.0.0.1", "127.0.0.1:0"]
)
def test_anything_off_loopback_or_malformed_is_refused(address):
    with pytest.raises(SpecError):
        check_loopback(address)


def test_every_run_is_bounded_in_count_and_time():
    with pytest.raises(SpecError, match="max_requests"):
        spec(max_requests=MAX_REQUESTS_CAP + 1)
    with pytest.raises(SpecError, match="max_seconds"):
        spec(max_seconds=MAX_SECONDS_CAP + 1)
    with pytest.raises(SpecError, match="max_seconds"):
        spec(max_seconds=0)
    with pytest.raises(SpecError, match="warmup_seconds"):
        spec(warmup_seconds=3600)
    with pytest.raises(SpecError, match="address"):
        spec(address="10.1.2.3:8001")


def test_spec_checks_its_fields():
    with pytest.raises(SpecError, match="target"):
        spec(target="http.anything")
    with pytest.raises(SpecError, match="model"):
        spec(target="triton.recommender")
    with pytest.raises(SpecError, match="unknown"):
        LoadSpec.from_dict({**spec().to_dict(), "url": "x"})
    assert LoadSpec.from_dict(spec().to_dict()) == spec()


def test_distinct_calls_cap_the_measured_phase_after_the_warmup():
    calls = [{"user_id": str(i), "k": 1, "feature": "f"} for i in range(30)]
    bounded = spec(calls=calls, cycle=False, max_requests=100, warmup_requests=10, warmup_seconds=1)
    assert bounded.warmup_calls_used == 10 and bounded.measured_requests == 20
    with pytest.raises(SpecError, match="cycle"):
        spec(calls=calls[:5], cycle=False, warmup_requests=5, warmup_seconds=1)


# --- the loops ----------------------------------------------------------------------------------


def sleeper(seconds, status=OK):
    async def call(index):
        await asyncio.sleep(seconds)
        return Outcome(status, {"cost": 1.0})

    return call


async def test_closed_loop_stops_at_the_request_count():
    recording = await closed_loop(sleeper(0), concurrency=4, max_requests=37, max_seconds=10)
    assert recording.sent == 37 and recording.ok == 37
    assert recording.extras_sum == {"cost": 37.0}
    assert len(recording.latencies_ms) == 37


async def test_closed_loop_stops_at_the_time_limit():
    started = time.perf_counter()
    recording = await closed_loop(sleeper(0.01), concurrency=2, max_requests=100_000, max_seconds=0.1)
    assert time.perf_counter() - started < 0.5
    assert 2 <= recording.sent <= 30


async def test_failed_calls_are_counted_not_raised():
    async def broken(index):
        raise ConnectionError("boom")

    recording = await closed_loop(broken, concurrency=2, max_requests=6, max_seconds=5)
    assert recording.statuses == {"CLIENT_ConnectionError": 6}
    assert recording.ok == 0 and recording.latencies_ms == []


async def test_closed_loop_can_record_each_call_in_order_of_index():
    recording = await closed_loop(
        sleeper(0), concurrency=3, max_requests=9, max_seconds=5, first_index=100, record_outcomes=True
    )
    assert sorted(outcome[0] for outcome in recording.outcomes) == list(range(100, 109))


async def test_open_loop_sends_at_the_rate_within_both_bounds():
    recording = await open_loop(sleeper(0), rate=500, max_in_flight=10, max_requests=1000, max_seconds=0.1)
    # Due times 0, 2, ... 98 ms: each is sent, or counted as overflow when a stall of this shared
    # machine let more than 10 fall due at once (the in-flight bound itself is the next test's).
    assert recording.sent + recording.overflow == 50 and recording.sent >= 10
    count_bound = await open_loop(sleeper(0), rate=500, max_in_flight=10, max_requests=7, max_seconds=1)
    assert count_bound.sent == 7


async def test_open_loop_drops_what_exceeds_the_in_flight_limit_and_times_from_the_due_time():
    recording = await open_loop(sleeper(0.05), rate=1000, max_in_flight=2, max_requests=1000, max_seconds=0.01)
    assert recording.sent == 2 and recording.overflow == 8
    assert min(recording.latencies_ms) >= 50


def test_result_reports_throughput_latency_and_means():
    recording_spec = spec()
    recording = Recording(latencies_ms=[1.0, 2.0, 3.0], sent=4, started=10.0, finished=12.0)
    recording.statuses.update({OK: 3, "UNAVAILABLE": 1})
    recording.extras_sum = {"compute_ns": 300.0}
    result = result_of(recording_spec, recording, None, client_cpu_s=0.5)
    assert result["throughput_rps"] == 1.5 and result["errors"] == 1
    assert result["extras_mean"] == {"compute_ns": 100.0}
    assert result["latency"]["p50_ms"] == 2.0
    assert result["client_cpu_share"] == 0.25


# --- direct Triton gets the gateway's inputs ------------------------------------------------------


def test_recommender_inputs_are_one_request_with_sorted_unique_exclusions():
    inputs = recommender_inputs({"user_id": "17850", "k": 5, "exclude_item_ids": ["b", "a", "b"]})
    by_name = {tensor.name(): tensor for tensor in inputs}
    assert by_name["USER_ID"].shape() == [1, 1] and by_name["USER_ID"].datatype() == "BYTES"
    assert by_name["K"].datatype() == "INT32"
    assert by_name["EXCLUDE_ITEM_IDS"].shape() == [1, 2]
    assert "EXCLUDE_ITEM_IDS" not in {t.name() for t in recommender_inputs({"user_id": "1", "k": 5})}


def test_search_calls_send_the_normalised_query_and_room_to_filter():
    call = {"query": "  Red  RETROSPOT bag ", "k": 10, "exclude_item_ids": ["x", "y", "x"]}
    assert search_query(call) == ("red retrospot bag", 12)
    inputs = {t.name(): t for t in search_inputs(call)}
    assert inputs["QUERY"].shape() == [1, 1] and inputs["K"].shape() == [1, 1]


# --- the gateways the bench starts --------------------------------------------------------------


def test_bench_gateways_queue_as_many_calls_as_the_open_loop_sends(monkeypatch, tmp_path):
    """The bench's gateways read a pool limit of 256 calls in flight (not the default 64), the
    load generator's open-loop cap: in a stall they queue as direct Triton does, and do not shed."""
    from benchmarks.stack import CACHED, OPEN_LOOP_MAX_IN_FLIGHT, _gateway_env
    from gateway.settings import Settings

    env = _gateway_env(Settings(), CACHED, "127.0.0.1:8001", "tollgate-bench:x:", tmp_path, "127.0.0.1:4317")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    (pool,) = Settings().effective_pools()
    assert OPEN_LOOP_MAX_IN_FLIGHT == 256
    assert (pool.name, pool.endpoints, pool.max_in_flight) == ("cpu-local", ["127.0.0.1:8001"], 256)


def test_dedicated_latency_runs_more_shorter_pairs_in_the_same_time():
    """Full profile: 5 repetitions of 4 s become 9 pairs of 20/9 s (the same 20 s per variant)."""
    from benchmarks.runner import FULL, QUICK
    from benchmarks.sections.dedicated import latency_plan

    assert latency_plan(FULL) == (9, pytest.approx(20 / 9))
    assert latency_plan(QUICK) == (3, pytest.approx(1.0))  # 2 x 1.5 s as 3 x 1 s
