"""Triton's admin APIs answer only callers that hold the admin key (issue 13).

The real tritonserver 2.51 (nvidia-pytriton) runs with the very --grpc-restricted-protocol and
--http-restricted-api arguments of the Kubernetes manifests (deploy/k8s/base/triton-cpu/
statefulset.yaml, the admin key in place of $(TRITON_ADMIN_KEY)): without the key, loading,
unloading, statistics and the other admin calls are refused and the served model stays loaded;
with the key they work; inference, metadata and health need no key.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import yaml
from tritonclient.utils import InferenceServerException

from deploy.local.triton import TritonServer
from gateway.settings import REPO_ROOT

pytestmark = pytest.mark.e2e

STATEFULSET = REPO_ROOT / "deploy" / "k8s" / "base" / "triton-cpu" / "statefulset.yaml"
MODEL = "recommender"
ADMIN_KEY = secrets.token_hex(16)
ADMIN_HEADERS = {"triton-grpc-protocol-admin-key": ADMIN_KEY}
GRPC_REFUSAL = "This protocol is restricted, expecting header 'triton-grpc-protocol-admin-key'"
HTTP_REFUSAL = "This API is restricted, expecting header 'admin-key'"
CALL_TIMEOUT_S = 60.0
RELOAD_TIMEOUT_S = 60.0


def manifest_restriction_args(admin_key: str) -> list[str]:
    """The Triton container's restricted-protocol arguments, as Kubernetes expands them."""
    statefulset = yaml.safe_load(STATEFULSET.read_text())
    container = next(c for c in statefulset["spec"]["template"]["spec"]["containers"] if c["name"] == "triton")
    args = [a for a in container["args"] if a.startswith(("--grpc-restricted-protocol=", "--http-restricted-api="))]
    assert len(args) == 2, args
    assert all(a.endswith(":admin-key=$(TRITON_ADMIN_KEY)") for a in args), args
    return [a.replace("$(TRITON_ADMIN_KEY)", admin_key) for a in args]


@pytest.fixture(scope="module")
def restricted_triton(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    server = TritonServer(
        model_repository,
        models=[MODEL],
        extra_args=manifest_restriction_args(ADMIN_KEY),
        log_path=tmp_path_factory.mktemp("triton-access") / "triton.log",
    )
    server.start(ready_timeout_s=120)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def client(restricted_triton: TritonServer) -> Iterator[grpcclient.InferenceServerClient]:
    with grpcclient.InferenceServerClient(restricted_triton.grpc_url) as client:
        yield client


def admin_calls(client: grpcclient.InferenceServerClient) -> dict[str, Callable[..., object]]:
    """One call of each restricted protocol; each takes ``headers=``."""
    timeout = {"client_timeout": CALL_TIMEOUT_S}
    return {
        "load_model": lambda **kw: client.load_model(MODEL, **kw, **timeout),
        "unload_model": lambda **kw: client.unload_model(MODEL, **kw, **timeout),
        "get_inference_statistics": lambda **kw: client.get_inference_statistics(MODEL, **kw, **timeout),
        "get_model_repository_index": lambda **kw: client.get_model_repository_index(**kw, **timeout),
        "get_trace_settings": lambda **kw: client.get_trace_settings(**kw, **timeout),
        "get_log_settings": lambda **kw: client.get_log_settings(**kw, **timeout),
        "get_system_shared_memory_status": lambda **kw: client.get_system_shared_memory_status(**kw, **timeout),
    }


def recommend(client: grpcclient.InferenceServerClient, user_id: str, k: int) -> list[str]:
    """One inference, without the admin key."""
    tensors = []
    for name, array, datatype in (
        ("USER_ID", np.array([[user_id.encode()]], dtype=object), "BYTES"),
        ("K", np.array([[k]], dtype=np.int32), "INT32"),
    ):
        tensor = grpcclient.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    result = client.infer(MODEL, tensors, client_timeout=CALL_TIMEOUT_S)
    return [item.decode() for item in result.as_numpy("ITEM_IDS")[0]]


def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


# Refusals first: the model must still be loaded after them (the acceptance test reloads it).


@pytest.mark.parametrize(
    "call",
    [
        "unload_model",
        "load_model",
        "get_inference_statistics",
        "get_model_repository_index",
        "get_trace_settings",
        "get_log_settings",
        "get_system_shared_memory_status",
    ],
)
def test_admin_calls_without_the_key_are_refused(client, call):
    with pytest.raises(InferenceServerException) as refusal:
        admin_calls(client)[call]()
    assert refusal.value.status() == "StatusCode.UNAVAILABLE", refusal.value
    assert GRPC_REFUSAL in refusal.value.message(), refusal.value
    assert client.is_model_ready(MODEL), f"{MODEL} is no longer ready after a refused {call}"


def test_admin_calls_with_a_wrong_key_are_refused(client):
    with pytest.raises(InferenceServerException) as refusal:
        client.unload_model(MODEL, headers={"triton-grpc-protocol-admin-key": "not-" + ADMIN_KEY})
    assert refusal.value.status() == "StatusCode.UNAVAILABLE", refusal.value
    assert client.is_model_ready(MODEL)


def test_http_admin_apis_without_the_key_are_refused(restricted_triton):
    base = f"http://{restricted_triton.http_url}"
    for path, body in (("/v2/repository/index", b"{}"), (f"/v2/models/{MODEL}/stats", None), ("/v2/logging", None)):
        request = urllib.request.Request(base + path, data=body)
        with pytest.raises(urllib.error.HTTPError) as refusal:
            urllib.request.urlopen(request, timeout=CALL_TIMEOUT_S)
        assert refusal.value.code == 403, path
        assert json.loads(refusal.value.read())["error"] == HTTP_REFUSAL, path
        request.add_header("admin-key", ADMIN_KEY)
        with urllib.request.urlopen(request, timeout=CALL_TIMEOUT_S) as reply:
            assert reply.status == 200, path
    # The kubelet's probes need no key.
    for path in ("/v2/health/live", "/v2/health/ready", f"/v2/models/{MODEL}/ready"):
        with urllib.request.urlopen(base + path, timeout=CALL_TIMEOUT_S) as reply:
            assert reply.status == 200, path


def test_inference_metadata_and_health_need_no_key(client, buyers):
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL)
    assert client.get_model_metadata(MODEL).name == MODEL
    assert client.get_model_config(MODEL).config.name == MODEL
    assert len(recommend(client, buyers[0], 5)) == 5


def test_admin_calls_with_the_key_are_accepted(client, buyers):
    recommend(client, buyers[0], 3)  # something to count
    calls = admin_calls(client)
    for call in ("get_inference_statistics", "get_model_repository_index", "get_trace_settings", "get_log_settings",
                 "get_system_shared_memory_status"):
        calls[call](headers=ADMIN_HEADERS)
    statistics = client.get_inference_statistics(MODEL, headers=ADMIN_HEADERS, as_json=True)
    assert [s["name"] for s in statistics["model_stats"]] == [MODEL]
    assert int(statistics["model_stats"][0]["inference_count"]) >= 1
    calls["unload_model"](headers=ADMIN_HEADERS)
    assert wait_until(lambda: not client.is_model_ready(MODEL), RELOAD_TIMEOUT_S), f"{MODEL} still ready after unload"
    calls["load_model"](headers=ADMIN_HEADERS)
    assert wait_until(lambda: client.is_model_ready(MODEL), RELOAD_TIMEOUT_S), f"{MODEL} not ready after load"
    assert len(recommend(client, buyers[0], 3)) == 3
