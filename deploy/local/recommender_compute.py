"""COMPUTE_NS of the served recommender through a real Triton, recorded in the build's eval.json.

``make models`` runs ``python -m deploy.local.recommender_compute`` after the pipeline: it starts
Triton on the model repository (the recommender alone), sends single requests one at a time —
known customers (the personalised path) and unknown ones (the popularity fallback) — and records
the median and p90 of the COMPUTE_NS they report, then prints the build's candidate table. It
measures the serving version (Triton loads every kept version; the calls name the serving one)
and does nothing but print when its eval.json already holds a measurement of the same build. The
pipeline itself stays offline (it imports nothing of deploy/), hence this separate step.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import tritonclient.grpc as grpcclient
import typer
from rich.console import Console

from deploy.local.settings import get_local_settings
from deploy.local.triton import TritonServer
from pipeline.recommender.artifact_reader import load_exported
from pipeline.recommender.build import model_paths
from pipeline.recommender.export import record_triton_compute, triton_compute_of
from pipeline.recommender.summary import summary_tables
from pipeline.settings import PipelineSettings

log = logging.getLogger(__name__)
app = typer.Typer(add_completion=False, help=__doc__)

MODEL = "recommender"
TOP_K = 10
WARMUP_REQUESTS = 20
SEED = 20111209


def request_inputs(user_id: str, k: int) -> list[grpcclient.InferInput]:
    """USER_ID and K as the gateway's recommend route sends them (no exclusions)."""
    user = grpcclient.InferInput("USER_ID", [1, 1], "BYTES")
    user.set_data_from_numpy(np.array([[user_id.encode()]], dtype=object))
    top = grpcclient.InferInput("K", [1, 1], "INT32")
    top.set_data_from_numpy(np.array([[k]], dtype=np.int32))
    return [user, top]


def compute_ns_of(client: grpcclient.InferenceServerClient, user_ids: list[str], version: int) -> list[int]:
    return [
        int(
            client.infer(MODEL, request_inputs(user, TOP_K), model_version=str(version))
            .as_numpy("COMPUTE_NS")
            .reshape(-1)[0]
        )
        for user in user_ids
    ]


def _summary(values: list[int]) -> dict:
    return {
        "median": int(np.median(values)),
        "p90": int(np.percentile(values, 90)),
        "requests": len(values),
    }


def measure(requests: int, version: int) -> dict:
    """Starts Triton on the built model and measures ``requests`` single requests of each kind to ``version``."""
    repository = PipelineSettings().model_repository
    exported = load_exported(repository, version=version)
    rng = np.random.default_rng(SEED)
    buyers = sorted(user for user, items in exported.seen.items() if items)
    known = [str(user) for user in rng.choice(buyers, size=requests)]
    unknown = [f"not-a-customer-{n}" for n in range(requests)]
    log_path = get_local_settings().run_dir / "logs" / "triton-recommender-compute.log"
    with TritonServer(repository, models=[MODEL], log_path=log_path).start() as server:
        with grpcclient.InferenceServerClient(server.grpc_url) as client:
            compute_ns_of(client, known[:WARMUP_REQUESTS], version)
            figures = {
                "build_id": exported.build_id,
                "what": "COMPUTE_NS reported by the model, single requests one at a time (batch 1), k = "
                f"{TOP_K}, CPU instance (process CPU time of execute())",
                "version": version,
                "known_users": _summary(compute_ns_of(client, known, version)),
                "unknown_users": _summary(compute_ns_of(client, unknown, version)),
            }
    return figures


@app.command()
def main(
    requests: int = typer.Option(200, min=1, help="Timed requests of each kind (known, unknown user)."),
    force: bool = typer.Option(False, "--force", help="Measure again even if this build was measured."),
) -> None:
    """Measure (once per build) and print the recommender's candidate table, of the serving version."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    paths = model_paths()
    evaluation = json.loads(paths.eval_file.read_text())
    if force or triton_compute_of(evaluation) is None:
        evaluation = record_triton_compute(paths, measure(requests, paths.version))
    console = Console() if Console().is_terminal else Console(width=150)
    for table in summary_tables(evaluation, reused=False):
        console.print(table)


if __name__ == "__main__":
    app()
