"""Triton Python model ``query_encoder``: search query text -> L2-normalised 384-dim embedding.

Inputs (batch dimension implicit): ``QUERY`` [1] string (UTF-8).
Outputs: ``EMBEDDING`` [384] fp32, unit norm; ``COMPUTE_NS`` [1] int64.

The instance kind picks the engine: a CPU instance runs the int8 per-channel ONNX graph in
ONNX Runtime (``intra_op_threads`` from the config parameters); a GPU instance runs the
fp32 Hugging Face weights cast to ``gpu_dtype`` (fp16 by default) with torch on its device.
Tokenisation (truncation at ``max_length``) happens here, and every dynamic batch is encoded
in one call.

``COMPUTE_NS`` is each row's (query's) share of the batch's compute, measured over all of
``execute()`` (from its first line to the last output tensor): process CPU time on a CPU
instance (all threads: the vCPU-ns a CPU pool is billed for; wall time would also charge the
time the instance waits for a core), wall time with a device synchronisation on a GPU instance
(the GPU is the instance's alone while it executes, so its wall time is the device time); split
equally among the rows served in the batch, whichever request carried them (the gateway sends
concurrent calls as one request of several rows), never 0.
"""

from __future__ import annotations

import os

# Nothing may reach for a hub at run time; set before anything imports transformers.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

from query_encoding import OnnxQueryEncoder, TorchQueryEncoder, load_tokenizer  # noqa: E402


def _parameter(config: dict, key: str, default: str | None = None) -> str:
    value = config.get("parameters", {}).get(key, {}).get("string_value", default)
    if value is None:
        raise ValueError(f"config.pbtxt lacks the parameter {key!r}")
    return value


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        artifacts = Path(args["model_repository"]) / args["model_version"] / _parameter(config, "artifacts_dir")
        tokenizer = load_tokenizer(artifacts / "tokenizer.json", int(_parameter(config, "max_length")))
        self.on_gpu = args["model_instance_kind"] == "GPU"
        self.logger = pb_utils.Logger
        if self.on_gpu:
            import torch

            device = f"cuda:{args['model_instance_device_id']}"
            self.synchronize = lambda: torch.cuda.synchronize(device)
            self.encoder = TorchQueryEncoder(
                artifacts / "hf_model", tokenizer, device=device, dtype=_parameter(config, "gpu_dtype", "float16")
            )
        else:
            threads = int(_parameter(config, "intra_op_threads", "1"))
            if threads == 1:
                # A one-thread instance stays one thread: the tokenizer's thread pool would spend ~20 %
                # more CPU time on a batch of 32 to save ~0.2 ms of wall time.
                os.environ["TOKENIZERS_PARALLELISM"] = "false"
            self.synchronize = lambda: None
            self.encoder = OnnxQueryEncoder(artifacts / _parameter(config, "onnx_file"), tokenizer, threads)
        self.logger.log_info(
            f"query_encoder build {_parameter(config, 'build_id', '?')} on {args['model_instance_kind']}"
            f" ({'torch ' + _parameter(config, 'gpu_dtype', 'float16') if self.on_gpu else 'onnxruntime int8'})"
        )

    def _clock_ns(self) -> int:
        if self.on_gpu:
            self.synchronize()
            return time.perf_counter_ns()
        return time.process_time_ns()

    def execute(self, requests: list) -> list:
        started = self._clock_ns()
        responses: list = [None] * len(requests)
        texts: list[str] = []
        spans: list[tuple[int, int, int]] = []  # (request index, first row, row count)
        for index, request in enumerate(requests):
            try:
                values = pb_utils.get_input_tensor_by_name(request, "QUERY").as_numpy().reshape(-1)
                queries = [value.decode("utf-8") if isinstance(value, bytes) else str(value) for value in values]
            except Exception as error:  # noqa: BLE001 - one bad request must not fail the batch
                responses[index] = pb_utils.InferenceResponse(error=pb_utils.TritonError(f"bad QUERY: {error}"))
                continue
            spans.append((index, len(texts), len(queries)))
            texts.extend(queries)
        if not spans:
            return responses
        try:
            embeddings = self.encoder.encode(texts)
        except Exception as error:  # noqa: BLE001 - reported per request, the instance stays up
            for index, _, _ in spans:
                responses[index] = pb_utils.InferenceResponse(error=pb_utils.TritonError(f"encoding failed: {error}"))
            return responses
        outputs = [(index, rows, pb_utils.Tensor("EMBEDDING", embeddings[first : first + rows])) for index, first, rows in spans]
        # Read last, after every output tensor is built: COMPUTE_NS covers all of execute().
        share = max(1, (self._clock_ns() - started) // max(1, len(texts)))  # per row (query)
        for index, rows, embedding in outputs:
            compute = np.full((rows, 1), share, dtype=np.int64)
            responses[index] = pb_utils.InferenceResponse(output_tensors=[embedding, pb_utils.Tensor("COMPUTE_NS", compute)])
        return responses

    def finalize(self) -> None:
        self.encoder = None
