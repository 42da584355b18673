"""Triton Python model ``product_index``: query embedding + k -> the k nearest catalogue products.

Inputs (batch dimension implicit): ``EMBEDDING`` [384] fp32 (L2-normalised, from
``query_encoder``), ``K`` [1] int32.
Outputs: ``ITEM_IDS`` [-1] string, ``ITEM_TITLES`` [-1] string, ``SCORES`` [-1] fp32 (cosine,
descending), ``COMPUTE_NS`` [1] int64.

The index is the fp32, L2-normalised embedding of every catalogue title (``index.npz``,
written by ``python -m pipeline build search``). The whole dynamic batch is scored with one
matmul and one top-k at the batch's largest k; each row then keeps its own k (k above the
catalogue size returns the whole catalogue). A request may carry several rows, each with its
own k (the gateway coalesces concurrent calls): its outputs are [rows, width], a row with fewer
items than the widest padded at its end with empty ids and titles and 0.0 scores.

``COMPUTE_NS``: process CPU time of all of ``execute()`` (all threads: the vCPU-ns a CPU pool is
billed for; wall time would also charge the time this instance waits for a core), from its first
line to the last output tensor, split equally among the rows served in the batch, never 0.
Only the COMPUTE_NS tensors and the response objects themselves are made after the reading.

BLAS threads are capped at ``blas_threads`` (threadpoolctl, when installed): numpy's OpenBLAS
otherwise starts one thread per core whose idle spinning after each matmul was measured to
double the process CPU time of every request, for no speed gain on a memory-bound matvec.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from index_search import top_k_inner_product


def _parameter(config: dict, key: str, default: str | None = None) -> str:
    value = config.get("parameters", {}).get(key, {}).get("string_value", default)
    if value is None:
        raise ValueError(f"config.pbtxt lacks the parameter {key!r}")
    return value


def _limit_blas_threads(threads: int):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        pb_utils.Logger.log_warn("threadpoolctl is not installed: numpy keeps its default BLAS threads")
        return None
    return threadpool_limits(limits=threads, user_api="blas")


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        self._blas_limit = _limit_blas_threads(int(_parameter(config, "blas_threads", "1")))
        artifacts = Path(args["model_repository"]) / args["model_version"] / _parameter(config, "artifacts_dir")
        with np.load(artifacts / _parameter(config, "index_file")) as stored:
            self.embeddings = np.ascontiguousarray(stored["embeddings"], dtype=np.float32)
            self.item_ids = np.array([item.encode("utf-8") for item in stored["item_ids"]], dtype=np.object_)
            self.titles = np.array([title.encode("utf-8") for title in stored["titles"]], dtype=np.object_)
        pb_utils.Logger.log_info(
            f"product_index build {_parameter(config, 'build_id', '?')}: {self.embeddings.shape[0]} products"
        )

    def _read(self, request) -> tuple[np.ndarray, int]:
        embedding = pb_utils.get_input_tensor_by_name(request, "EMBEDDING").as_numpy()
        ks = pb_utils.get_input_tensor_by_name(request, "K").as_numpy().reshape(-1)
        if embedding.ndim != 2 or embedding.shape[1] != self.embeddings.shape[1]:
            raise ValueError(f"EMBEDDING must be [n, {self.embeddings.shape[1]}], got {list(embedding.shape)}")
        if len(ks) != embedding.shape[0]:
            raise ValueError(f"K has {len(ks)} rows but EMBEDDING has {embedding.shape[0]}")
        if np.any(ks < 1):
            raise ValueError(f"K must be at least 1, got {int(ks.min())}")
        if not np.all(np.isfinite(embedding)):
            raise ValueError("EMBEDDING holds a NaN or an infinity")
        return embedding.astype(np.float32, copy=False), ks.astype(np.int64)

    def execute(self, requests: list) -> list:
        started = time.process_time_ns()
        responses: list = [None] * len(requests)
        served: list[tuple[int, int, np.ndarray]] = []  # (request index, first row, each row's k)
        rows: list[np.ndarray] = []
        n_rows = 0
        for index, request in enumerate(requests):
            try:
                embedding, ks = self._read(request)
            except Exception as error:  # noqa: BLE001 - one bad request must not fail the batch
                responses[index] = pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error)))
                continue
            served.append((index, n_rows, ks))
            rows.append(embedding)
            n_rows += embedding.shape[0]
        if not served:
            return responses
        k_max = int(max(ks.max() for _, _, ks in served))
        positions, scores = top_k_inner_product(np.concatenate(rows), self.embeddings, k_max)
        outputs = []
        for index, first, ks in served:
            rows_of_request = slice(first, first + len(ks))
            outputs.append((index, len(ks), self._padded_rows(positions[rows_of_request], scores[rows_of_request], ks)))
        # Read last, after every output tensor is built: COMPUTE_NS covers all of execute().
        share = max(1, (time.process_time_ns() - started) // n_rows)
        for index, count, tensors in outputs:
            compute = pb_utils.Tensor("COMPUTE_NS", np.full((count, 1), share, dtype=np.int64))
            responses[index] = pb_utils.InferenceResponse(output_tensors=[*tensors, compute])
        return responses

    def _padded_rows(self, positions: np.ndarray, scores: np.ndarray, ks: np.ndarray) -> list:
        """ITEM_IDS, ITEM_TITLES and SCORES of one request's rows, each row cut at its own k and
        padded at its end to the request's widest row."""
        width = min(int(ks.max()), positions.shape[1])
        top = positions[:, :width]
        item_ids, titles = self.item_ids[top], self.titles[top]
        row_scores = np.ascontiguousarray(scores[:, :width])
        for row, k in enumerate(ks.tolist()):
            if k < width:
                item_ids[row, k:] = b""
                titles[row, k:] = b""
                row_scores[row, k:] = 0.0
        return [
            pb_utils.Tensor("ITEM_IDS", item_ids),
            pb_utils.Tensor("ITEM_TITLES", titles),
            pb_utils.Tensor("SCORES", row_scores),
        ]
