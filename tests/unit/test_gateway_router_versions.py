"""The router when a call names a model version (a rollout's canary or shadow call): only
endpoints where that version is ready take it, under either policy; the version reaches the
model; what it says when no endpoint has the version; and the rollout's view of the pools
(version_state, busy_share, pin_serving)."""

import pytest

from gateway.errors import BackendUnavailable, PoolsSaturated
from gateway.outlier_detection import OutlierDetector
from gateway.pool import Endpoint, Pool
from gateway.retry_budget import RetryBudget
from gateway.router import Router
from gateway.triton_model import ModelState

V1 = ModelState(True, "ready", "1", "build-1")
V2 = ModelState(True, "ready", "2", "build-2")


class VersionedModel:
    """A scripted Triton model with some versions loaded; records the version each call named."""

    def __init__(self, url: str, versions: dict[str, ModelState]) -> None:
        self.url, self.versions = url, versions
        self.state = versions.get("1", ModelState(False, "serving version not loaded"))
        self.called_versions: list[str | None] = []
        self.pinned: list[str | None] = []

    def version_state(self, version: str) -> ModelState:
        return self.versions.get(version) or ModelState(False, f"version {version} of 'm' is not loaded on {self.url}")

    def pin_serving(self, version: str | None) -> None:
        self.pinned.append(version)

    async def infer(self, tensors, timeout_s, metadata=None, version=None):
        self.called_versions.append(version)
        return f"answer from {self.url}"


def pool(name: str, *endpoint_versions: dict[str, ModelState], device="cpu", rank=0, limit=4, price=1.0) -> Pool:
    endpoints = []
    for index, versions in enumerate(endpoint_versions):
        endpoint = Endpoint(f"{name}:{index}", name, device, ["m"], OutlierDetector(2, 1.0, 5.0))
        endpoint.models["m"] = VersionedModel(f"{name}:{index}", versions)
        endpoints.append(endpoint)
    return Pool(name, device, "private", price, rank, limit, endpoints)


def router(*pools: Pool, policy="gpu_first") -> Router:
    return Router(list(pools), policy, 50.0, RetryBudget(1.0, 100, 10), 3)


def model(p: Pool, index: int = 0) -> VersionedModel:
    return p.endpoints[index].models["m"]


@pytest.mark.parametrize("policy", ["gpu_first", "cheapest_within_slo"])
async def test_a_named_version_goes_only_where_it_is_ready_and_reaches_the_model(policy):
    gpu = pool("gpu", {"1": V1}, device="gpu", price=1.0)
    cpu = pool("cpu", {"1": V1, "2": V2}, rank=1, price=5.0)
    r = router(gpu, cpu, policy=policy)
    _, placement = await r.infer("m", [], 1.0, version="2")
    assert (placement.pool, placement.reason) == ("cpu", "fallback")  # the preferred pool lacks version 2
    assert model(cpu).called_versions == ["2"] and model(gpu).called_versions == []
    _, placement = await r.infer("m", [], 1.0)
    assert (placement.pool, placement.reason) == ("gpu", "primary")
    assert model(gpu).called_versions == [None]


async def test_within_a_pool_the_endpoint_with_the_version_is_picked():
    cpu = pool("cpu", {"1": V1}, {"1": V1, "2": V2})
    cpu.endpoints[1].in_flight = 3  # busier: only the version decides
    _, placement = await router(cpu).infer("m", [], 1.0, version="2")
    assert placement.endpoint == "cpu:1"
    assert model(cpu, 1).called_versions == ["2"] and model(cpu, 0).called_versions == []


async def test_a_full_preferred_pool_with_the_version_makes_it_an_overflow_without_it_a_fallback():
    gpu = pool("gpu", {"1": V1, "2": V2}, device="gpu", limit=1)
    cpu = pool("cpu", {"1": V1, "2": V2}, rank=1)
    gpu.in_flight = 1
    _, placement = await router(gpu, cpu).infer("m", [], 1.0, version="2")
    assert (placement.pool, placement.reason) == ("cpu", "overflow")
    gpu_without = pool("gpu", {"1": V1}, device="gpu", limit=1)
    gpu_without.in_flight = 1
    _, placement = await router(gpu_without, cpu).infer("m", [], 1.0, version="2")
    assert (placement.pool, placement.reason) == ("cpu", "fallback")


async def test_a_version_loaded_nowhere_is_unavailable_naming_each_endpoint():
    gpu, cpu = pool("gpu", {"1": V1}, device="gpu"), pool("cpu", {"1": V1}, rank=1)
    with pytest.raises(BackendUnavailable) as raised:
        await router(gpu, cpu).infer("m", [], 1.0, version="9")
    assert str(raised.value) == (
        "no pool can serve 'm': pool gpu: version 9 of 'm' is not loaded on gpu:0; "
        "pool cpu: version 9 of 'm' is not loaded on cpu:0"
    )


async def test_a_version_loaded_only_on_full_pools_is_shed_not_unavailable():
    cpu = pool("cpu", {"1": V1, "2": V2}, limit=1)
    cpu.in_flight = 1
    with pytest.raises(PoolsSaturated) as raised:
        await router(cpu).infer("m", [], 1.0, version="2")
    assert str(raised.value) == "every pool serving 'm' is at its concurrency limit: pool cpu is full (1/1 in flight)"


async def test_version_state_is_the_ready_endpoints_and_says_why_when_none_is():
    gpu, cpu = pool("gpu", {"1": V1}, device="gpu"), pool("cpu", {"1": V1, "2": V2}, rank=1)
    r = router(gpu, cpu)
    assert r.version_state("m", "2") is V2
    assert r.model("m").version_state("2") is V2
    missing = r.version_state("m", "7")
    assert missing == ModelState(
        False,
        "no pool can serve version 7 of 'm': pool gpu: version 7 of 'm' is not loaded on gpu:0; "
        "pool cpu: version 7 of 'm' is not loaded on cpu:0",
        "7",
    )


async def test_busy_share_is_calls_in_flight_over_all_pools_limits():
    gpu, cpu = pool("gpu", {"1": V1}, device="gpu", limit=4), pool("cpu", {"1": V1}, rank=1, limit=12)
    gpu.in_flight, cpu.in_flight = 3, 1
    r = router(gpu, cpu)
    assert r.busy_share() == 0.25  # (3 + 1) / (4 + 12)
    assert r.model("m").busy_share() == 0.25


async def test_pin_serving_reaches_every_endpoint_and_endpoints_is_a_copy():
    gpu, cpu = pool("gpu", {"1": V1}, device="gpu"), pool("cpu", {"1": V1}, {"1": V1}, rank=1)
    r = router(gpu, cpu)
    r.pin_serving("m", "2")
    r.pin_serving("m", None)
    assert [model(p, i).pinned for p, i in ((gpu, 0), (cpu, 0), (cpu, 1))] == [["2", None]] * 3
    listed = r.endpoints()
    assert [e.url for e in listed] == ["gpu:0", "cpu:0", "cpu:1"]
    listed.clear()
    assert len(r.endpoints()) == 3


async def test_the_routed_model_is_one_per_name_without_a_rollout_and_passes_the_version_on():
    cpu = pool("cpu", {"1": V1, "2": V2})
    r = router(cpu)
    routed = r.model("m")
    assert r.model("m") is routed and routed.name == "m"
    assert routed.rollout is None  # a call pays one check when no rollout runs
    _, placement = await routed.infer([], 1.0, None, "2")
    assert placement.pool == "cpu" and model(cpu).called_versions == ["2"]
