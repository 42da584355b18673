import json

from gateway.settings import PoolConfig, Settings


def test_the_standard_otlp_variable_configures_the_endpoint(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")
    assert Settings().otlp_endpoint == "http://collector:4317"
    monkeypatch.setenv("TOLLGATE_OTLP_ENDPOINT", "http://mine:4317")
    assert Settings().otlp_endpoint == "http://mine:4317"


def test_pools_come_from_json_and_default_to_one_pool(monkeypatch):
    monkeypatch.setenv("TOLLGATE_TRITON_URL", "127.0.0.1:9001")
    assert Settings().effective_pools() == [PoolConfig(name="cpu-local", endpoints=["127.0.0.1:9001"])]
    pools = [{"name": "gpu-local", "endpoints": ["a:1", "b:1"], "max_in_flight": 8}, {"name": "cpu-local", "endpoints": ["c:1"]}]
    monkeypatch.setenv("TOLLGATE_POOLS", json.dumps(pools))
    parsed = Settings().effective_pools()
    assert [(p.name, p.endpoints, p.max_in_flight) for p in parsed] == [
        ("gpu-local", ["a:1", "b:1"], 8),
        ("cpu-local", ["c:1"], 64),
    ]
