"""The recommender's model.py outside Triton: requests of several rows against single rows.

``python -m benchmarks.model_rows [--device cpu|cuda|all] [--repository model_repo]`` loads
``model_repo/recommender/<N>/model.py`` with a stand-in for Triton's
``triton_python_backend_utils`` (the few calls model.py makes), on a CPU instance and, where
torch sees one, a GPU instance (KIND_GPU: fp16 tables, wall-clock COMPUTE_NS). It checks that
each row of a several-rows request is answered exactly as the same call alone (items, titles,
order; scores within fp16's precision on a GPU), then prints the model's own COMPUTE_NS per
row for requests of 1, 4, 16 and 32 rows: what a call is billed when the gateway coalesces
concurrent misses (gateway/row_coalescing.py). Needs only numpy and torch, so it also runs on
a machine without Triton (the GPU machine). Exit 1 when a row differs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

ROWS = (1, 4, 16, 32)
REPEATS = 30
CHECKED_USERS = 64


class _Tensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self._name, self._array = name, array

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._array


class _Response:
    def __init__(self, output_tensors: list[_Tensor] | None = None, error: Any = None) -> None:
        self.outputs = {tensor.name(): tensor.as_numpy() for tensor in output_tensors or []}
        self.error = error


class _Error:
    def __init__(self, message: str) -> None:
        self.message = message


class _Logger:
    @staticmethod
    def log_info(message: str) -> None:
        print(f"  model: {message}")

    log_warn = log_error = log_info


def backend_utils() -> types.ModuleType:
    """What model.py uses of triton_python_backend_utils."""
    module = types.ModuleType("triton_python_backend_utils")
    module.Tensor = _Tensor  # type: ignore[attr-defined]
    module.InferenceResponse = _Response  # type: ignore[attr-defined]
    module.TritonError = _Error  # type: ignore[attr-defined]
    module.TritonModelException = RuntimeError  # type: ignore[attr-defined]
    module.Logger = _Logger  # type: ignore[attr-defined]
    module.get_input_tensor_by_name = lambda request, name: request.get(name)  # type: ignore[attr-defined]
    return module


def load_model(repository: Path, version: str, kind: str) -> Any:
    sys.modules["triton_python_backend_utils"] = backend_utils()
    source = repository / "recommender" / version / "model.py"
    spec = importlib.util.spec_from_file_location(f"recommender_model_{kind}", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    manifest = json.loads((repository / "recommender" / version / "artifacts" / "manifest.json").read_text())
    parameters = {"artifacts_dir": "artifacts", f"build_id.{version}": manifest["build_id"], "num_threads": "1"}
    model = module.TritonPythonModel()
    model.initialize({
        "model_config": json.dumps({"parameters": {k: {"string_value": v} for k, v in parameters.items()}}),
        "model_version": version,
        "model_repository": str(repository / "recommender"),
        "model_instance_kind": kind,
        "model_instance_device_id": "0",
    })  # fmt: skip
    return model


def request(rows: list[tuple[bytes, int, list[bytes]]]) -> dict[str, _Tensor]:
    """One request of ``rows`` (user, k, excluded ids), EXCLUDE_ITEM_IDS padded with b""."""
    width = max(len(excluded) for _, _, excluded in rows)
    tensors = {
        "USER_ID": _Tensor("USER_ID", np.array([[user] for user, _, _ in rows], dtype=object)),
        "K": _Tensor("K", np.array([[k] for _, k, _ in rows], dtype=np.int32)),
    }
    if width:
        padded = [excluded + [b""] * (width - len(excluded)) for _, _, excluded in rows]
        tensors["EXCLUDE_ITEM_IDS"] = _Tensor("EXCLUDE_ITEM_IDS", np.array(padded, dtype=object))
    return tensors


def answer(response: _Response, row: int, k: int) -> tuple[list[bytes], list[bytes], list[float], bool]:
    if response.error is not None:
        raise RuntimeError(response.error.message)
    out = response.outputs
    count = next((n for n, item in enumerate(out["ITEM_IDS"][row]) if item == b""), out["ITEM_IDS"].shape[1])
    assert count <= k
    return (
        list(out["ITEM_IDS"][row, :count]), list(out["ITEM_TITLES"][row, :count]),
        out["SCORES"][row, :count].tolist(), bool(out["PERSONALIZED"][row, 0]),
    )  # fmt: skip


def sample_rows(model: Any, n: int, rng: random.Random) -> list[tuple[bytes, int, list[bytes]]]:
    users = sorted(model.user_rows)
    items = list(model.item_ids)
    return [
        (rng.choice(users) if rng.random() < 0.9 else b"stranger-%d" % i, rng.randint(1, 20),
         rng.sample(items, rng.randint(0, 4)))
        for i in range(n)
    ]  # fmt: skip


def check_rows(model: Any, rng: random.Random, score_tolerance: float) -> int:
    """Rows of one request answered as alone; returns the number of rows that differ."""
    rows = sample_rows(model, CHECKED_USERS, rng)
    together = model.execute([request(rows)])[0]
    differ = 0
    for position, (user, k, excluded) in enumerate(rows):
        alone = answer(model.execute([request([(user, k, excluded)])])[0], 0, k)
        got = answer(together, position, k)
        same = got[0] == alone[0] and got[1] == alone[1] and got[3] == alone[3]
        close = all(abs(a - b) <= score_tolerance * max(1.0, abs(b)) for a, b in zip(got[2], alone[2]))
        if not (same and close):
            differ += 1
            print(f"  row {position} ({user!r}, k={k}) differs: {got[0][:3]}... vs {alone[0][:3]}...")
    return differ


def compute_per_row(model: Any, rng: random.Random) -> dict[int, dict[str, float]]:
    """COMPUTE_NS per row (the model's own clock) and wall time per request, by rows per request."""
    figures = {}
    for rows in ROWS:
        per_row, wall = [], []
        for _ in range(REPEATS):
            batch = request(sample_rows(model, rows, rng))
            started = time.perf_counter_ns()
            response = model.execute([batch])[0]
            wall.append((time.perf_counter_ns() - started) / 1e3)
            per_row.append(float(response.outputs["COMPUTE_NS"][0, 0]) / 1e3)
        figures[rows] = {"compute_us_per_row": statistics.median(per_row), "wall_us_per_request": statistics.median(wall)}
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repository", type=Path, default=Path("model_repo"))
    parser.add_argument("--version", default="1")
    parser.add_argument("--device", choices=("cpu", "cuda", "all"), default="all")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    import torch

    kinds = []
    if args.device in ("cpu", "all"):
        kinds.append("CPU")
    if args.device == "cuda" or (args.device == "all" and torch.cuda.is_available()):
        kinds.append("GPU")
    results: dict[str, Any] = {"torch": torch.__version__, "numpy": np.__version__}
    failed = 0
    for kind in kinds:
        device = torch.cuda.get_device_name(0) if kind == "GPU" else "cpu"
        print(f"{kind} instance ({device}):")
        model = load_model(args.repository, args.version, kind)
        rng = random.Random(20111209)
        differ = check_rows(model, rng, score_tolerance=1e-6 if kind == "CPU" else 1e-2)
        failed += differ
        figures = compute_per_row(model, rng)
        print(f"  {CHECKED_USERS} rows of one request vs alone: {'all the same' if not differ else f'{differ} differ'}")
        base = figures[1]["compute_us_per_row"]
        for rows, figure in figures.items():
            print(
                f"  {rows:>2} rows per request: COMPUTE_NS per row {figure['compute_us_per_row']:9.1f} µs "
                f"({figure['compute_us_per_row'] / base:5.2f}× one row), wall per request {figure['wall_us_per_request']:9.1f} µs"
            )
        results[kind] = {"device": device, "rows_differ": differ, "by_rows": figures}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
