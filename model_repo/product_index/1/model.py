"""Triton Python model ``product_index``: query embedding + k -> the k nearest catalogue products.

Inputs (batch dimension implicit): ``EMBEDDING`` [384] fp32 (L2-normalised, from
``query_encoder``), ``K`` [1] int32.
Outputs: ``ITEM_IDS`` [-1] string, ``ITEM_TITLES`` [-1] string, ``SCORES`` [-1] fp32 (cosine,
descending), ``COMPUTE_NS`` [1] int64.

The index is the fp32, L2-normalised embedding of every catalogue title (``index.npz``,
written by ``python -m pipeline build search``). The whole dynamic batch is scored with one
matmul and one top-k at the batch's largest k; each request then keeps its own k (k above the
catalogue size returns the whole catalogue). All rows of one request must ask for the same k.

``COMPUTE_NS``: process CPU time of all of ``execute()`` (all threads: the vCPU-ns a CPU pool is
billed for; wall time would also charge the time this instance waits for a core), from its first
line to the last output tensor, split equally among the requests served in the batch, never 0.
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
        if len(ks) != embedding.shape[0] or np.any(ks != ks[0]):
            raise ValueError("every row of one request must carry the same K")
        if ks[0] < 1:
            raise ValueError(f"K must be at least 1, got {int(ks[0])}")
        if not np.all(np.isfinite(embedding)):
            raise ValueError("EMBEDDING holds a NaN or an infinity")
        return embedding.astype(np.float32, copy=False), int(ks[0])

    def execute(self, requests: list) -> list:
        started = time.process_time_ns()
        responses: list = [None] * len(requests)
        served: list[tuple[int, int, int, int]] = []  # (request index, first row, row count, k)
        rows: list[np.ndarray] = []
        n_rows = 0
        for index, request in enumerate(requests):
            try:
                embedding, k = self._read(request)
            except Exception as error:  # noqa: BLE001 - one bad request must not fail the batch
                responses[index] = pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error)))
                continue
            served.append((index, n_rows, embedding.shape[0], k))
            rows.append(embedding)
            n_rows += embedding.shape[0]
        if not served:
            return responses
        positions, scores = top_k_inner_product(np.concatenate(rows), self.embeddings, max(s[3] for s in served))
        outputs = []
        for index, first, count, k in served:
            top = positions[first : first + count, :k]
            outputs.append(
                (
                    index,
                    count,
                    [
                        pb_utils.Tensor("ITEM_IDS", self.item_ids[top]),
                        pb_utils.Tensor("ITEM_TITLES", self.titles[top]),
                        pb_utils.Tensor("SCORES", np.ascontiguousarray(scores[first : first + count, :k])),
                    ],
                )
            )
        # Read last, after every output tensor is built: COMPUTE_NS covers all of execute().
        share = max(1, (time.process_time_ns() - started) // len(served))
        for index, count, tensors in outputs:
            compute = pb_utils.Tensor("COMPUTE_NS", np.full((count, 1), max(1, share // count), dtype=np.int64))
            responses[index] = pb_utils.InferenceResponse(output_tensors=[*tensors, compute])
        return responses
