"""Several gateway replicas on one machine (deploy/local/cluster.py, what `make cluster` runs):
two gateways behind client-side round-robin, two Triton pools, Redis, PostgreSQL as the shared
ledger and a real Prometheus scraping everything, all real processes on loopback.

Checked with real Recommend and Search traffic:
- both replicas serve;
- the shared ledger holds every request exactly once, and what the callers were charged;
- Prometheus' sum of the replicas' cost counters equals the ledger's total;
- killing one replica (SIGKILL, no drain): the other serves on, Prometheus sees it down, and
  no cost record that a caller was given is lost, i.e. every answer that reached a caller (with
  its x-tollgate-request-id) is in the ledger: the replicas run with commit-before-answer, as
  the production manifests do. (A gateway in the default mode, which answers before its batch
  is written, loses at most its last flush interval: tests/e2e/test_gateway_crash.py.)

Run ``make test PYTEST_ARGS='-s tests/e2e/test_cluster_replicas.py'`` to see the figures.
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from deploy.local.cluster import CLIENT_CHANNEL_OPTIONS, RunningCluster, local_cluster
from gateway.api import recommendation_pb2, recommendation_pb2_grpc, search_pb2, search_pb2_grpc
from gateway.settings import get_settings
from tests.support import wait_for

pytestmark = pytest.mark.e2e

REQUESTS = 400
CONCURRENCY = 8
DEADLINE_S = 5.0
LEDGER_FLUSH_INTERVAL_S = 0.2
# Relative difference allowed between sums of the same doubles added in different orders.
SUM_TOLERANCE = 1e-9
# The kill: steady load, one replica SIGKILLed after KILL_AFTER_S, load for KILL_LOAD_S in all.
KILL_AFTER_S = 2.0
KILL_LOAD_S = 5.0
KILL_CONCURRENCY = 4
RECOMMEND_FEATURES = ("home_feed", "cart_upsell", "order_confirmation")
SEARCH_FEATURES = ("search_box", "search_autocomplete")
TENANTS = ("shop-uk", "shop-eu")


@dataclass(frozen=True)
class Call:
    rpc: str
    feature: str
    tenant: str
    user_id: str = ""
    query: str = ""


@dataclass(frozen=True)
class Outcome:
    call: Call
    status: str
    request_id: str  # "" when no response reached the caller (the call died with its replica)
    cost: float
    answered_at: float  # time.monotonic() when the answer (or the failure) reached the caller


def plan(buyers: list[str], catalog: dict[str, str], count: int) -> list[Call]:
    """Three Recommend calls for one Search; real customers and words of real product titles."""
    titles = sorted(catalog.values())
    calls = []
    for n in range(count):
        tenant = TENANTS[n % len(TENANTS)]
        if n % 4 == 3:
            words = titles[(n * 37) % len(titles)].lower().split()[:3]
            calls.append(Call("Search", SEARCH_FEATURES[(n // 4) % 2], tenant, query=" ".join(words)))
        else:
            calls.append(Call("Recommend", RECOMMEND_FEATURES[n % 3], tenant, user_id=buyers[(n * 7) % len(buyers)]))
    return calls


class Client:
    """One aio channel over every replica, calls spread by gRPC's round_robin policy."""

    def __init__(self, cluster: RunningCluster) -> None:
        self.channel = grpc.aio.insecure_channel(cluster.client_target, options=CLIENT_CHANNEL_OPTIONS)
        self.access = cluster.access
        self.recommend = recommendation_pb2_grpc.RecommendationServiceStub(self.channel).Recommend
        self.search = search_pb2_grpc.SearchServiceStub(self.channel).Search

    async def send(self, call: Call) -> Outcome:
        if call.rpc == "Search":
            rpc = self.search(search_pb2.SearchRequest(query=call.query, k=10, feature=call.feature),
                              timeout=DEADLINE_S, metadata=self.access.metadata(call.tenant))  # fmt: skip
        else:
            rpc = self.recommend(recommendation_pb2.RecommendRequest(user_id=call.user_id, k=10, feature=call.feature),
                                 timeout=DEADLINE_S, metadata=self.access.metadata(call.tenant))  # fmt: skip
        try:
            await rpc
            status = "OK"
        except grpc.aio.AioRpcError as error:
            status = error.code().name
        trailing = dict(await rpc.trailing_metadata() or ())
        request_id, cost = trailing.get("x-tollgate-request-id", ""), float(trailing.get("x-tollgate-cost", 0.0))
        return Outcome(call, status, request_id, cost, time.monotonic())

    async def send_all(self, calls: list[Call], concurrency: int) -> list[Outcome]:
        semaphore = asyncio.Semaphore(concurrency)

        async def one(call: Call) -> Outcome:
            async with semaphore:
                return await self.send(call)

        return list(await asyncio.gather(*(one(call) for call in calls)))

    async def steady(self, calls: list[Call], concurrency: int, stop: asyncio.Event) -> list[Outcome]:
        """Keeps ``concurrency`` calls in flight until ``stop`` (bounded by the plan's length)."""
        outcomes: list[Outcome] = []
        queue = collections.deque(calls)

        async def worker() -> None:
            while queue and not stop.is_set():
                outcomes.append(await self.send(queue.popleft()))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return outcomes

    async def close(self) -> None:
        await self.channel.close()


# --- the ledger ----------------------------------------------------------------------------------


def ledger_rows(url: str) -> dict[str, tuple[int, float]]:
    """request_id -> (rows with that id, direct cost in currency units) of the whole shared ledger."""
    import psycopg

    with psycopg.connect(url, connect_timeout=5) as connection:
        rows = connection.execute(
            "SELECT request_id, COUNT(*), MAX(cost_total_pico) FROM cost_records GROUP BY request_id"
        ).fetchall()
    return {request_id: (count, cost / 1e12) for request_id, count, cost in rows}


def ledger_total(url: str) -> tuple[int, float]:
    import psycopg

    with psycopg.connect(url, connect_timeout=5) as connection:
        count, total = connection.execute("SELECT COUNT(*), COALESCE(SUM(cost_total_pico), 0) FROM cost_records").fetchone()
    return count, int(total) / 1e12


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(model_repository, redis_url) -> Iterator[RunningCluster]:
    with local_cluster(get_settings(), "e2e-cluster", ledger_flush_interval_s=LEDGER_FLUSH_INTERVAL_S) as running:
        _require_shared_ledger_and_metrics(running)
        yield running


def _require_shared_ledger_and_metrics(cluster: RunningCluster) -> None:
    """The gateways must write to TOLLGATE_LEDGER_URL and serve TOLLGATE_METRICS_PORT (each
    replica creates the ledger's tables when it starts)."""
    import psycopg

    problems = []
    with psycopg.connect(cluster.ledger_url, connect_timeout=5) as connection:
        if connection.execute("SELECT to_regclass('cost_records')").fetchone()[0] is None:
            problems.append("no cost_records table in the PostgreSQL ledger (TOLLGATE_LEDGER_URL not used)")
    for replica in cluster.replicas:
        try:
            replica.metrics_text()
        except OSError as error:
            problems.append(f"{replica.name} serves no metrics on TOLLGATE_METRICS_PORT ({error})")
    if problems:
        pytest.fail("the gateway is not wired to the cost accounting yet: " + "; ".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def calls(buyers, catalog) -> list[Call]:
    return plan(buyers, catalog, REQUESTS)


# --- tests -------------------------------------------------------------------------------------------


async def test_both_replicas_serve_and_the_shared_ledger_holds_every_request_once(cluster, calls):
    client = Client(cluster)
    try:
        outcomes = await client.send_all(calls, CONCURRENCY)
    finally:
        await client.close()
    statuses = collections.Counter(o.status for o in outcomes)
    assert statuses == {"OK": len(calls)}, statuses
    ids = [o.request_id for o in outcomes]
    assert all(ids) and len(set(ids)) == len(ids)

    # The ledger: every request once, at the price the caller was told.
    def all_stored() -> dict[str, tuple[int, float]] | None:
        rows = ledger_rows(cluster.ledger_url)
        return rows if set(ids) <= set(rows) else None

    rows = wait_for(all_stored, timeout_s=10, what="every request in the ledger")
    assert set(rows) == set(ids), f"ledger rows of no request of ours: {sorted(set(rows) - set(ids))[:5]}"
    assert all(count == 1 for count, _ in rows.values())
    for outcome in outcomes:
        assert math.isclose(rows[outcome.request_id][1], outcome.cost, rel_tol=1e-12), outcome
    count, total = ledger_total(cluster.ledger_url)
    assert count == len(calls)
    assert math.isclose(total, sum(o.cost for o in outcomes), rel_tol=SUM_TOLERANCE)

    # Both replicas served: their own counters, and Prometheus' view of them.
    per_replica = {r.name: r.counter_total("tollgate_requests_total") for r in cluster.replicas}
    assert sum(per_replica.values()) == len(calls), per_replica
    assert all(served > 0 for served in per_replica.values()), per_replica

    # Prometheus: once it has scraped every replica after the last request, the sum of the
    # cost counters across replicas is the ledger's total.
    prometheus = cluster.prometheus
    replicas_own = sum(r.counter_total("tollgate_cost_usd_total") for r in cluster.replicas)

    def scraped_final_counters() -> float | None:
        value = prometheus.value("sum(tollgate_cost_usd_total)")
        return value if value is not None and math.isclose(value, replicas_own, rel_tol=1e-12) else None

    prometheus_sum = wait_for(scraped_final_counters, timeout_s=15, what="Prometheus to scrape every replica's final counters")
    assert math.isclose(prometheus_sum, total, rel_tol=SUM_TOLERANCE), (prometheus_sum, total)
    by_replica = {s["metric"]["replica"]: s["value"] for s in prometheus.query("sum by (replica) (tollgate_requests_total)")}
    assert by_replica == per_replica
    requests_in_prometheus = prometheus.value("sum(tollgate_requests_total)")
    assert requests_in_prometheus == len(calls)

    print(
        f"\n{len(calls)} calls ({statuses}) over {len(cluster.replicas)} replicas: {per_replica}"
        f"\nledger: {count} rows for {len(set(ids))} request ids, total {total:.9e} USD"
        f"\nPrometheus sum(tollgate_cost_usd_total) {prometheus_sum:.9e} USD"
        f" (difference {prometheus_sum - total:+.3e}); sum(tollgate_requests_total) {requests_in_prometheus:.0f}"
    )


@dataclass(frozen=True)
class KillRun:
    victim: str
    outcomes: list[Outcome]
    killed_at: float
    stored: set[str]  # request ids the ledger gained during the run

    @property
    def acknowledged(self) -> dict[str, Outcome]:
        """Calls whose caller got an answer, with its request id and cost."""
        return {o.request_id: o for o in self.outcomes if o.request_id}

    @property
    def lost(self) -> list[Outcome]:
        return sorted((o for i, o in self.acknowledged.items() if i not in self.stored), key=lambda o: o.answered_at)


@pytest.fixture(scope="module")
def kill_run(cluster, calls) -> KillRun:
    """Steady load over both replicas; one is SIGKILLed (no drain, no final flush) midway."""
    victim = cluster.replicas[-1]
    before = set(ledger_rows(cluster.ledger_url))

    async def run() -> tuple[list[Outcome], float]:
        client = Client(cluster)
        stop = asyncio.Event()
        try:
            load = asyncio.create_task(client.steady(calls * 50, KILL_CONCURRENCY, stop))
            await asyncio.sleep(KILL_AFTER_S)
            victim.kill()
            killed_at = time.monotonic()
            await asyncio.sleep(KILL_LOAD_S - KILL_AFTER_S)
            stop.set()
            return await load, killed_at
        finally:
            await client.close()

    outcomes, killed_at = asyncio.run(run())
    assert not victim.running
    time.sleep(LEDGER_FLUSH_INTERVAL_S * 5)  # the survivor's last flushes
    run_ = KillRun(victim.name, outcomes, killed_at, set(ledger_rows(cluster.ledger_url)) - before)
    statuses = collections.Counter(o.status for o in outcomes)
    lost = run_.lost
    oldest = f", the oldest answered {killed_at - lost[0].answered_at:.3f} s before the kill" if lost else ""
    print(
        f"\nkill: {len(outcomes)} calls in {KILL_LOAD_S:.0f} s over {len(cluster.replicas)} replicas, {victim.name} SIGKILLed"
        f" after {KILL_AFTER_S:.0f} s; statuses {dict(statuses)}; {len(run_.acknowledged)} answered (the caller got"
        f" the request id and cost), {len(outcomes) - len(run_.acknowledged)} died in flight without an answer;"
        f" answered but missing from the ledger: {len(lost)}{oldest}; stored without an answer:"
        f" {len(run_.stored - set(run_.acknowledged))}"
    )
    return run_


def test_a_killed_replica_is_seen_down_and_the_other_serves_on(cluster, kill_run):
    statuses = collections.Counter(o.status for o in kill_run.outcomes)
    after_kill = [o for o in kill_run.outcomes if o.answered_at > kill_run.killed_at + 1.0]
    assert after_kill and all(o.status == "OK" for o in after_kill), collections.Counter(o.status for o in after_kill)
    assert statuses["OK"] >= len(kill_run.outcomes) - 2 * KILL_CONCURRENCY, statuses  # only calls in flight on it failed
    wait_for(
        lambda: cluster.prometheus.value(f'up{{job="tollgate-gateway",replica="{kill_run.victim}"}}') == 0,
        timeout_s=10,
        what="Prometheus to see the killed replica down",
    )


def test_killing_a_replica_loses_no_cost_record_a_caller_was_given(kill_run):
    lost = kill_run.lost
    assert not lost, f"{len(lost)} answered cost records lost with {kill_run.victim}, e.g. {[o.request_id for o in lost[:3]]}"
