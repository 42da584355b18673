"""NVIDIA's perf_analyzer as a reference client against Triton, when it is installed.

It shows that the direct-Triton figures are not an artefact of our own load generator. It is
optional: PyPI's ``perf-analyzer`` must provide the ``perf_analyzer`` binary on PATH (or set
``PERF_ANALYZER``); without it the section says so and goes on.

The calls are given as ``--input-data`` JSON (USER_ID, K; the optional ragged
EXCLUDE_ITEM_IDS is left out), perf_analyzer runs one concurrency at a time with bounded
measurement windows and trials, and its CSV (latencies in µs) is parsed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MEASUREMENT_INTERVAL_MS = 2000
MAX_TRIALS = 4
TIMEOUT_S = 60
INPUT_ROWS = 200


def find_binary() -> str | None:
    return os.environ.get("PERF_ANALYZER") or shutil.which("perf_analyzer")


def input_data(calls: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """perf_analyzer's --input-data document for the first calls (one request per entry)."""
    return {
        "data": [
            {"USER_ID": {"content": [call["user_id"]], "shape": [1]}, "K": {"content": [int(call["k"])], "shape": [1]}}
            for call in calls[:INPUT_ROWS]
        ]
    }


def parse_csv(text: str) -> dict[str, float]:
    """Throughput and latency percentiles (ms) from perf_analyzer's ``-f`` CSV (first data row)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise ValueError("perf_analyzer wrote no CSV row")
    row = rows[0]
    return {
        "concurrency": int(row["Concurrency"]),
        "throughput_rps": float(row["Inferences/Second"]),
        "p50_ms": float(row["p50 latency"]) / 1000,
        "p99_ms": float(row["p99 latency"]) / 1000,
        "mean_ms": float(row["Avg latency"]) / 1000,
    }


def reference(
    url: str, model: str, calls: Sequence[dict[str, Any]], concurrencies: Sequence[int], work_dir: Path
) -> dict[str, Any]:
    binary = find_binary()
    if binary is None:
        return {
            "available": False,
            "reason": "no perf_analyzer binary on PATH (PyPI's perf-analyzer resolves to a 0.1.0 placeholder "
            "without the binary on this machine); Triton's own statistics API is the server-side check instead.",
        }
    work_dir.mkdir(parents=True, exist_ok=True)
    data_file = work_dir / "perf_analyzer_input.json"
    data_file.write_text(json.dumps(input_data(calls)))
    runs = []
    for concurrency in concurrencies:
        out_file = work_dir / f"perf_analyzer_c{concurrency}.csv"
        command = [
            binary,
            "-m",
            model,
            "-u",
            url,
            "-i",
            "grpc",
            "--concurrency-range",
            f"{concurrency}:{concurrency}",
            "--input-data",
            str(data_file),
            "--measurement-interval",
            str(MEASUREMENT_INTERVAL_MS),
            "--max-trials",
            str(MAX_TRIALS),
            "-f",
            str(out_file),
        ]
        try:
            subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=True)
            runs.append(parse_csv(out_file.read_text()))
        except (subprocess.SubprocessError, OSError, ValueError, KeyError) as error:
            return {"available": True, "error": f"{type(error).__name__}: {str(error)[-500:]}", "runs": runs}
    return {"available": True, "binary": binary, "runs": runs}
