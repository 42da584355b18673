"""The promotion gate: may the candidate version of a model replace the serving one?

Two conditions (issue 18), both checked by ``tollgate models gate``:

- **quality**: on the same evaluation — the candidate build's ``gate_evaluation``, where the
  pipeline scored the candidate's and the serving version's own artifacts on one split — the
  candidate's recall@k and NDCG@k are each at least the serving version's × (1 − tolerance);
- **cost**: its compute per 1,000 requests, measured through a running Triton that has both
  versions loaded (``requests`` single Recommend-shaped calls to each version, ModelInfer with
  ``model_version``, reading the model's own COMPUTE_NS) and priced with the price book for
  ``pool``, is within ``budget_usd_per_1k_requests``.

It reads only files (``<repository>/<model>/versions.json``, each version's ``eval.json``) and
Triton; it imports nothing of the pipeline. An evaluation that does not name the serving
version's build (stale: the serving version changed since the candidate was built), or a Triton
serving other builds than the record names, refuses the candidate as well.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from costing.money import NS_PER_HOUR, exact, pico_to_decimal, to_pico
from costing.price_book import PriceBook

REPO_ROOT = Path(__file__).resolve().parent.parent
VERSIONS_FILE = "versions.json"
EVAL_FILE = Path("artifacts") / "eval.json"
GATE_EVALUATION_KEY = "gate_evaluation"
BUILD_ID_PARAMETER = "build_id"
REQUESTS_PER_UNIT_COST = 1_000
QUALITY_METRICS = ("recall", "ndcg")


class GateSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOLLGATE_GATE_", env_file=None, extra="ignore")

    model_repository: Path = Field(
        REPO_ROOT / "model_repo", description="Model repository the gate reads versions from."
    )
    model: str = Field("recommender", description="The versioned model the gate judges.")
    triton_url: str = Field(
        "127.0.0.1:8001", description="Triton (gRPC) with both versions loaded, for the compute probes."
    )
    quality_tolerance: Decimal = Field(
        Decimal("0.02"),
        ge=0,
        lt=1,
        description="Gate: the candidate's recall@k and NDCG@k may each be this fraction below the serving version's.",
    )
    budget_usd_per_1k_requests: Decimal = Field(
        Decimal("0.00002"),
        gt=0,
        description="Gate: most compute cost per 1,000 requests (USD, through Triton, priced for pool) a candidate "
        "may have.",
    )
    requests: int = Field(200, ge=1, description="Gate: timed calls to each version for its compute probe.")
    warmup_requests: int = Field(20, ge=0, description="Gate: untimed calls to each version before its probe.")
    pool: str = Field("cpu-local", description="Gate: the price-book pool the probe's compute is priced for.")
    top_k: int = Field(10, ge=1, description="Gate: K of each probe call (as the gateway's Recommend sends it).")


@dataclass(frozen=True)
class VersionFigures:
    version: int
    build_id: str
    recall: float
    ndcg: float
    compute_ns: list[int] = field(default_factory=list)  # COMPUTE_NS of each probe call

    @property
    def mean_compute_ns(self) -> Fraction:
        return Fraction(sum(self.compute_ns), len(self.compute_ns)) if self.compute_ns else Fraction(0)

    def usd_per_1k_requests(self, book: PriceBook, pool: str) -> Decimal:
        """Exact: the mean COMPUTE_NS × 1,000 at the pool's price per unit-ns, rounded once to the pico-dollar."""
        per_ns = exact(book.pool(pool).usd_per_unit_hour) / NS_PER_HOUR
        return pico_to_decimal(to_pico(self.mean_compute_ns * REQUESTS_PER_UNIT_COST * per_ns))


@dataclass(frozen=True)
class GateVerdict:
    k: int
    serving: VersionFigures
    candidate: VersionFigures
    serving_cost: Decimal
    candidate_cost: Decimal
    reasons: list[str]  # why the candidate is refused; empty: it passes

    @property
    def passed(self) -> bool:
        return not self.reasons


class GateError(RuntimeError):
    """The gate cannot judge (no candidate, no evaluation, Triton serving other builds): a refusal too."""


@dataclass(frozen=True)
class Versions:
    serving: int
    candidate: int
    build_ids: dict[int, str]
    k: int
    quality: dict[int, tuple[float, float]]  # version -> (recall@k, NDCG@k) on the candidate's gate split
    probe_user_ids: list[str]


def read_versions(settings: GateSettings) -> Versions:
    """The serving and candidate versions and the candidate's gate evaluation, checked against each other."""
    model_dir = settings.model_repository / settings.model
    record_file = model_dir / VERSIONS_FILE
    if not record_file.is_file():
        raise GateError(f"{record_file} does not exist: {settings.model} has no versions (run `make models`)")
    record = json.loads(record_file.read_text())
    if record.get("candidate") is None:
        raise GateError(f"{settings.model} has no candidate version (serving: version {record.get('serving')})")
    serving, candidate = int(record["serving"]), int(record["candidate"])
    build_ids = {int(version): entry["build_id"] for version, entry in record["versions"].items()}
    eval_file = model_dir / str(candidate) / EVAL_FILE
    gate = json.loads(eval_file.read_text()).get(GATE_EVALUATION_KEY) if eval_file.is_file() else None
    if not gate:
        raise GateError(f"{eval_file} holds no {GATE_EVALUATION_KEY}: rebuild the candidate")
    scored = gate["versions"]
    for version in (serving, candidate):
        entry = scored.get(str(version))
        if entry is None or entry["build_id"] != build_ids[version]:
            raise GateError(
                f"the candidate's evaluation does not score version {version} build {build_ids[version]} "
                f"(it scored {sorted(scored)}): the serving version changed since; rebuild the candidate"
            )
    k = int(gate["k"])
    quality = {
        version: (float(scored[str(version)][f"recall_at_{k}"]), float(scored[str(version)][f"ndcg_at_{k}"]))
        for version in (serving, candidate)
    }
    return Versions(serving, candidate, build_ids, k, quality, list(gate["probe_user_ids"]))


def _probe_inputs(user_id: str, k: int) -> list[grpcclient.InferInput]:
    """USER_ID and K as the gateway's Recommend route sends them."""
    user = grpcclient.InferInput("USER_ID", [1, 1], "BYTES")
    user.set_data_from_numpy(np.array([[user_id.encode()]], dtype=object))
    top = grpcclient.InferInput("K", [1, 1], "INT32")
    top.set_data_from_numpy(np.array([[k]], dtype=np.int32))
    return [user, top]


def check_loaded_builds(client: grpcclient.InferenceServerClient, settings: GateSettings, versions: Versions) -> None:
    """Triton must serve, for both versions, the builds the record names (``build_id.<N>`` of the config)."""
    parameters = client.get_model_config(settings.model, as_json=True)["config"].get("parameters", {})
    for version in (versions.serving, versions.candidate):
        if not client.is_model_ready(settings.model, str(version)):
            raise GateError(f"Triton at {settings.triton_url} has no ready {settings.model} version {version}")
        declared = parameters.get(f"{BUILD_ID_PARAMETER}.{version}", {}).get("string_value")
        if declared != versions.build_ids[version]:
            raise GateError(
                f"Triton's {settings.model} config names build {declared!r} for version {version}, the record "
                f"{versions.build_ids[version]!r}: load the repository's current config first"
            )


def probe_compute_ns(
    client: grpcclient.InferenceServerClient, settings: GateSettings, versions: Versions
) -> dict[int, list[int]]:
    """COMPUTE_NS of ``settings.requests`` single calls to each version (after the warm-up).

    The calls alternate between the versions, user by user, so that both see the same users and
    the same load from whatever else runs on the machine.
    """
    users = versions.probe_user_ids
    if not users:
        raise GateError("the candidate's evaluation lists no probe users")
    order = (versions.serving, versions.candidate)

    def call(version: int, user_id: str) -> int:
        result = client.infer(settings.model, _probe_inputs(user_id, settings.top_k), model_version=str(version))
        return int(result.as_numpy("COMPUTE_NS").reshape(-1)[0])

    for n in range(settings.warmup_requests):
        for version in order:
            call(version, users[n % len(users)])
    measured: dict[int, list[int]] = {version: [] for version in order}
    for n in range(settings.requests):
        for version in order:
            measured[version].append(call(version, users[n % len(users)]))
    return measured


def judge(versions: Versions, compute_ns: dict[int, list[int]], book: PriceBook, settings: GateSettings) -> GateVerdict:
    """The verdict from the recorded quality and the measured compute."""
    figures = {
        version: VersionFigures(version, versions.build_ids[version], *versions.quality[version], compute_ns[version])
        for version in (versions.serving, versions.candidate)
    }
    serving, candidate = figures[versions.serving], figures[versions.candidate]
    tolerance = settings.quality_tolerance
    reasons = []
    for metric in QUALITY_METRICS:
        floor = Decimal(str(getattr(serving, metric))) * (1 - tolerance)
        if Decimal(str(getattr(candidate, metric))) < floor:
            reasons.append(
                f"{metric}@{versions.k} {getattr(candidate, metric):.4f} is below the serving version's "
                f"{getattr(serving, metric):.4f} by more than the tolerance of {tolerance:%} (floor {floor:.4f})"
            )
    serving_cost = serving.usd_per_1k_requests(book, settings.pool)
    candidate_cost = candidate.usd_per_1k_requests(book, settings.pool)
    if candidate_cost > settings.budget_usd_per_1k_requests:
        reasons.append(
            f"compute costs {candidate_cost:f} USD per 1k requests on {settings.pool}, over the budget of "
            f"{settings.budget_usd_per_1k_requests:f} USD"
        )
    return GateVerdict(versions.k, serving, candidate, serving_cost, candidate_cost, reasons)


def run_gate(settings: GateSettings, book: PriceBook) -> GateVerdict:
    """Reads the versions, probes both through Triton and judges the candidate."""
    versions = read_versions(settings)
    book.pool(settings.pool)  # an unknown pool fails before any probe
    with grpcclient.InferenceServerClient(settings.triton_url) as client:
        check_loaded_builds(client, settings, versions)
        compute_ns = probe_compute_ns(client, settings, versions)
    return judge(versions, compute_ns, book, settings)
