"""``tollgate models gate`` through a real Triton with two versions of the recommender loaded.

The serving version is the project's built recommender (copied into a private repository as
version 1). Candidates are assembled from its arrays and written by the pipeline's own version
writer, which scores both versions with the pipeline's evaluator on the real data's test split:

- broken weights (each item's row of the int8 item-item table given to another item) → recall
  falls to about what the trending prior alone gives → refused, naming the metric;
- the same model with every link scale doubled (a different build_id, the same ranking:
  s / max|s| is unchanged) → passes; and refused when the budget is below its measured cost.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from typer.testing import CliRunner

from deploy.local.triton import TritonServer
from gateway.cli import app
from pipeline.recommender.build import write_assembled
from pipeline.recommender.export import RecommenderDir
from pipeline.recommender.version_comparison import blend_of
from pipeline.settings import PipelineSettings
from pipeline.version_store import serving_dir
from tests.support import e2e_log_path, wait_for

MODEL = "recommender"
PROBE_REQUESTS = "20"
GENEROUS_BUDGET = "1"  # USD per 1k requests: far above any CPU model's compute here
READY_TIMEOUT_S = 120.0


@pytest.fixture()
def repository(model_repository: Path, tmp_path: Path) -> Path:
    """A private repository whose version 1 (serving) is a copy of the project's serving recommender."""
    serving = serving_dir(RecommenderDir(model_repository, MODEL))
    target = tmp_path / "repo" / MODEL / "1"
    shutil.copytree(serving.version_dir, target, ignore=shutil.ignore_patterns("__pycache__", ".artifacts-*"))
    return tmp_path / "repo"


def served_arrays(repository: Path) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    artifacts = repository / MODEL / "1" / "artifacts"
    with np.load(artifacts / "recommender.npz") as data:
        arrays = {name: data[name] for name in data.files}
    assert str(arrays["scorer_kind"]) == "item-item"  # the EASE blend the project serves
    return arrays, blend_of(json.loads((artifacts / "eval.json").read_text()))


def settings_for(repository: Path) -> PipelineSettings:
    return PipelineSettings(model_repository=repository)


@pytest.fixture()
def triton(repository: Path) -> Iterator[TritonServer]:
    """Started once a candidate exists; the test reloads the model after writing another one."""
    server = TritonServer(repository, models=[MODEL], log_path=e2e_log_path("triton-gate"))
    yield server
    server.stop()


def both_versions_ready(server: TritonServer, versions: tuple[int, int]) -> None:
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        wait_for(lambda: all(client.is_model_ready(MODEL, str(v)) for v in versions), READY_TIMEOUT_S,
                 f"{MODEL} versions {versions} ready")


def gate(server: TritonServer, repository: Path, *options: str):
    return CliRunner().invoke(
        app,
        ["models", "gate", "--triton-url", server.grpc_url, "--model-repository", str(repository),
         "--requests", PROBE_REQUESTS, *options],
        env={"COLUMNS": "200"},
    )


def test_the_gate_refuses_broken_weights_and_passes_a_sound_candidate(repository: Path, triton: TritonServer) -> None:
    arrays, blend = served_arrays(repository)
    broken = dict(arrays)
    rows = np.random.default_rng(18).permutation(len(arrays["neighbour_weights_int8"]))
    broken["neighbour_weights_int8"] = arrays["neighbour_weights_int8"][rows]
    broken["neighbour_scales"] = arrays["neighbour_scales"][rows]
    note = "test: item rows of the item-item table shuffled"
    written = write_assembled(broken, blend, note, settings_for(repository))
    assert written.paths.version == 2

    evaluation = json.loads(written.paths.eval_file.read_text())["gate_evaluation"]["versions"]
    # The evaluator saw the damage: what is left is mostly the trending prior, which is recomputed
    # from the purchases (not a learned weight); here it measured 0.064 against 0.104.
    assert evaluation["2"]["recall_at_10"] < 0.75 * evaluation["1"]["recall_at_10"]

    triton.start()
    both_versions_ready(triton, (1, 2))
    refused = gate(triton, repository, "--budget", GENEROUS_BUDGET)
    assert refused.exit_code == 1, refused.output
    assert "REFUSED" in refused.output and "recall@10" in refused.output
    assert "below the serving version" in refused.output
    assert "candidate v2" in refused.output and "USD per 1k requests" in refused.output

    # The same model with every link scale doubled: another build_id, the same ranking.
    sound = dict(arrays)
    sound["neighbour_scales"] = arrays["neighbour_scales"] * np.float32(2)
    replaced = write_assembled(sound, blend, "test: link scales doubled", settings_for(repository))
    assert replaced.paths.version == 3 and not (repository / MODEL / "2").exists()
    scored = json.loads(replaced.paths.eval_file.read_text())["gate_evaluation"]["versions"]
    assert scored["3"]["recall_at_10"] == scored["1"]["recall_at_10"] > 0

    with grpcclient.InferenceServerClient(triton.grpc_url) as client:
        client.load_model(MODEL)  # explicit model control: re-read the config, load version 3, unload 2
    both_versions_ready(triton, (1, 3))
    passed = gate(triton, repository, "--budget", GENEROUS_BUDGET)
    assert passed.exit_code == 0, passed.output
    assert "PASSED" in passed.output and "candidate v3" in passed.output

    over_budget = gate(triton, repository, "--budget", "0.000000000001")
    assert over_budget.exit_code == 1, over_budget.output
    assert "over the budget of 0.000000000001 USD" in over_budget.output
