"""A call under an active rollout, through RequestFlow with a scripted model (pure logic): a
canary call goes to the candidate, is cached under the candidate's version and build and
recorded as canary; the serving version never answers from the canary's cache entry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from gateway.answers import ModelAnswer, RankedItem
from gateway.rollout import ActiveRollout, ShadowMirror
from gateway.rollout_metrics import RolloutMetrics
from gateway.rollout_state import RolloutState
from gateway.rollout_window import OutcomeWindow, Slo
from gateway.router import Placement
from gateway.triton_model import ModelState
from tests.unit.test_gateway_request_flow import COMPUTE_NS, ScriptedModel, ScriptedRoute, book, ledger, make_flow, recommend

__all__ = ["book", "ledger"]  # fixtures of the request-flow tests

SLO = Slo(window_s=10.0, min_calls=5, max_error_rate=0.2, max_p99_ms=100.0)


class VersionedModel(ScriptedModel):
    """Serving version 1 (build b1) and a ready candidate 2 (build b2)."""

    def version_state(self, version: str) -> ModelState:
        return ModelState(True, "ready", "2", "b2") if version == "2" else ModelState(False, "not loaded", version)


class VersionedRoute(ScriptedRoute):
    def __init__(self) -> None:
        super().__init__()
        self.model = VersionedModel()
        self.versions: list[str | None] = []
        self.keys: list[str] = []

    def cache_key(self, query, state):
        key = super().cache_key(query, state)
        self.keys.append(key)
        return key

    async def answer(self, query, timeout_s, metadata=None, version=None):
        self.versions.append(version)
        items = tuple(RankedItem(f"item{i}", f"TITLE {i}", 1.0) for i in range(query.k))
        answer = ModelAnswer.of(items, compute_ns=COMPUTE_NS, model_version=version or "1")
        return answer, Placement("cpu-local", "cpu", "private", "primary", 1, "127.0.0.1:8001")


def canary(route: VersionedRoute, share: float) -> ActiveRollout:
    state = RolloutState("recommender", serving="1", candidate="2", mode="canary", share=share, revision=1)
    breaches = []
    return ActiveRollout(
        state, route.model, OutcomeWindow(SLO), ShadowMirror(None, 1, 1.0),  # type: ignore[arg-type]
        RolloutMetrics(CollectorRegistry()), lambda *breach: breaches.append(breach), check_s=0.0,
    )  # fmt: skip


async def test_a_canary_call_is_the_candidates_in_the_cache_and_the_ledger(ledger, book):
    route = VersionedRoute()
    flow, writer = make_flow(ledger, book)
    route.model.rollout = canary(route, share=1.0)
    by_canary = await recommend(flow, route)
    again = await recommend(flow, route)  # the same query: the canary's own cache entry
    route.model.rollout = None  # rolled back
    by_serving = await recommend(flow, route)
    await writer.close()

    assert route.versions == ["2", None], "the candidate once, then the serving version (its own entry)"
    assert (by_canary.answer.model_version, again.answer.model_version, by_serving.answer.model_version) == ("2", "2", "1")
    assert ":recommender:2:b2:" in route.keys[0] and ":recommender:1:b1:" in route.keys[2]
    rows = sorted(ledger.records(), key=lambda record: record.request_id)
    by_id = {record.request_id: record for record in rows}
    assert [(by_id[a.info.request_id].model_version, by_id[a.info.request_id].traffic) for a in (by_canary, again, by_serving)] == [
        ("2", "canary"), ("2", "canary"), ("1", "serving")
    ]  # fmt: skip


async def test_the_canary_gets_its_share_of_calls_and_the_rest_stay_serving(ledger, book):
    route = VersionedRoute()
    flow, writer = make_flow(ledger, book, cache=None)
    route.model.rollout = canary(route, share=0.25)
    for _ in range(8):
        await recommend(flow, route)
    await writer.close()
    # Calls 3 and 7 (from 0) are the canary's: floor((n + 1) / 4) > floor(n / 4).
    assert route.versions == [None, None, None, "2", None, None, None, "2"]
    assert sorted(record.traffic for record in ledger.records()) == ["canary"] * 2 + ["serving"] * 6


async def test_a_shadow_call_is_skipped_while_the_pools_are_busy():
    route = VersionedRoute()
    route.model.busy_share = lambda: 0.6  # 60 % of the pools' limits in flight
    mirror = ShadowMirror(None, max_in_flight=4, timeout_s=1.0, max_busy_share=0.5)  # type: ignore[arg-type]
    rollout = canary(route, share=1.0)
    answer = ModelAnswer.of((), compute_ns=0, model_version="1")
    assert mirror.mirror(rollout, route, object(), "acme", "home_feed", answer) is False
    assert route.versions == [], "no call to the candidate"
