"""Session fixtures of the end-to-end tests: real model artifacts, a real Triton on free ports."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from deploy.local.access import LocalAccess, provision
from deploy.local.gateway import GatewayProcess, settings_env
from deploy.local.redis import delete_prefixed, ensure_redis
from deploy.local.stack import SERVED_MODELS
from deploy.local.triton import TritonServer
from gateway.api_keys import Role
from gateway.settings import get_settings
from pipeline.recommender.artifact_reader import ExportedRecommender, load_exported
from pipeline.recommender.build import build_recommender
from pipeline.search.build import build_search
from tests.support import e2e_log_path, port_for_later_bind, retry_on_port_collision

# Models the e2e Triton loads (explicit model control: other models of the repository may be unbuilt).
TRITON_MODELS = SERVED_MODELS
# A "buyer" has bought at least this many distinct items: enough history to personalise and exclude.
MIN_BUYER_ITEMS = 20


# --- model artifacts -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def model_repository() -> Path:
    """The project's model repository; the pipelines build it first when missing or stale."""
    build_search()
    return build_recommender().paths.repository


@pytest.fixture(scope="session")
def recommender_export(model_repository: Path) -> ExportedRecommender:
    return load_exported(model_repository)


@pytest.fixture(scope="session")
def catalog(recommender_export: ExportedRecommender) -> dict[str, str]:
    """Item id -> title of every item the recommender can return."""
    return recommender_export.titles


@pytest.fixture(scope="session")
def bought_by(recommender_export: ExportedRecommender) -> dict[str, frozenset[str]]:
    """User id -> every item the user bought (never recommended back to them)."""
    return recommender_export.seen


@pytest.fixture(scope="session")
def buyers(recommender_export: ExportedRecommender) -> list[str]:
    """Known users with at least MIN_BUYER_ITEMS purchased items, by user id."""
    return sorted(user for user, items in recommender_export.seen.items() if len(items) >= MIN_BUYER_ITEMS)


# --- Triton ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def triton_server(model_repository: Path) -> Iterator[TritonServer]:
    """The real tritonserver on free loopback ports, stopped at the end of the session."""
    server = retry_on_port_collision(
        lambda: TritonServer(model_repository, models=TRITON_MODELS, log_path=e2e_log_path("triton")).start()
    )
    try:
        yield server
    finally:
        server.stop()


# --- Redis and the gateway --------------------------------------------------


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """The Redis the project is configured with (started here if none answers)."""
    handle = ensure_redis(get_settings().redis_url, tmp_path_factory.mktemp("redis"))
    yield handle.url
    handle.stop()


@pytest.fixture(scope="session")
def cache_prefix(redis_url) -> Iterator[str]:
    """A key prefix of this test run only; its keys are deleted afterwards, nobody else's."""
    prefix = f"tollgate-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    delete_prefixed(redis_url, prefix)


@pytest.fixture(scope="session")
def access(tmp_path_factory) -> LocalAccess:
    """Registered tenants and an API key per tenant and role, for every gateway of the run."""
    return provision(tmp_path_factory.mktemp("access"))


@dataclass
class RunningGateway:
    process: GatewayProcess
    ledger_path: Path
    trace_file: Path
    log_path: Path
    access: LocalAccess

    def metadata(self, tenant: str = "shop-uk", role: Role = Role.CALLER) -> tuple[tuple[str, str], ...]:
        """Call metadata that authenticates as ``tenant`` with ``role``."""
        return self.access.metadata(tenant, role)

    @property
    def address(self) -> str:
        return self.process.address

    def stop(self) -> int:
        return self.process.stop()


class GatewayLauncher:
    """Starts real gateway processes (``python -m gateway serve``) wired to the test Triton and
    Redis, each with its own ledger, span file and log; ``stop_all`` stops them."""

    def __init__(
        self,
        triton_url: str,
        redis_url: str,
        cache_prefix: str,
        tmp_path_factory: pytest.TempPathFactory,
        access: LocalAccess,
    ):
        self._defaults = {
            "triton_url": triton_url, "redis_url": redis_url, "cache_prefix": cache_prefix, **access.settings()
        }  # fmt: skip
        self._access = access
        self._tmp = tmp_path_factory
        self._started: list[RunningGateway] = []

    def start(
        self,
        *,
        require_serving: bool = True,
        service: str = "",
        tls: grpc.ChannelCredentials | None = None,
        **overrides: object,
    ) -> RunningGateway:
        """``tls``: channel credentials of the readiness check, for a TLS listener."""
        run_dir = self._tmp.mktemp("gateway")
        values = {
            **self._defaults,
            "ledger_path": run_dir / "ledger.sqlite",
            "ledger_flush_interval_s": 0.2,
            "trace_exporter": "file",
            "trace_file": run_dir / "spans.jsonl",
            "readiness_poll_s": 0.5,
            "trace_sample_ratio": 1.0,  # every call traced: tests read their spans
            **overrides,
        }
        env = {**settings_env(**values), "OTEL_BSP_SCHEDULE_DELAY": "100"}
        log_path = run_dir / "gateway.log"
        process = GatewayProcess(port_for_later_bind(), env, log_path, tls)
        process.start(require_serving=require_serving, service=service)
        gateway = RunningGateway(
            process, Path(values["ledger_path"]), Path(values["trace_file"]), log_path, self._access
        )
        self._started.append(gateway)
        return gateway

    def stop_all(self) -> None:
        for gateway in self._started:
            gateway.stop()


@pytest.fixture
def gateway_factory(
    triton_server, redis_url, cache_prefix, tmp_path_factory, access
) -> Iterator[Callable[..., RunningGateway]]:
    """A test's own gateways, with settings overridden per call; stopped after the test."""
    launcher = GatewayLauncher(triton_server.grpc_url, redis_url, cache_prefix, tmp_path_factory, access)
    yield launcher.start
    launcher.stop_all()


@pytest.fixture(scope="module")
def module_gateway_factory(
    triton_server, redis_url, cache_prefix, tmp_path_factory, access
) -> Iterator[Callable[..., RunningGateway]]:
    """Gateways shared by a test module, with settings overridden per call; stopped after it."""
    launcher = GatewayLauncher(triton_server.grpc_url, redis_url, cache_prefix, tmp_path_factory, access)
    yield launcher.start
    launcher.stop_all()


@pytest.fixture(scope="module")
def gateway(module_gateway_factory) -> RunningGateway:
    """One gateway with default settings, shared by a test module."""
    return module_gateway_factory()
