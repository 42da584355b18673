"""Triton Python-backend model ``recommender``: the top-k catalogue items for a customer.

The contract (inputs, outputs, parameters) is rendered into ``config.pbtxt`` by
``pipeline/recommender/triton_config.py``; the artifacts beside this file come from
``python -m pipeline build recommender``.

Per instance kind (``args["model_instance_kind"]``):

- CPU: the int8 item table (one symmetric scale per item row), scored with the kernel named by
  the ``cpu_int8_kernel`` parameter; ``torch.set_num_threads(num_threads)``.
  COMPUTE_NS measures process CPU time (``time.process_time_ns``: vCPU-nanoseconds used by all
  threads of this stub process) over ``execute()``.
- GPU: an fp16 item table on ``cuda:<device id>``; COMPUTE_NS measures wall time, with
  ``torch.cuda.synchronize`` at both ends.

COMPUTE_NS of a request = the batch's measured compute divided equally among the requests of
the batch that get an answer (a request rejected as malformed gets its own error and no share),
at least 1. The measurement covers parsing, scoring, exclusion, top-k and building the output
arrays; Triton's own queueing and (de)serialisation are outside ``execute()`` and not in it.

Behaviour: one matmul scores every known user of the dynamic batch; unknown users get the
popularity ranking; the user's purchases (all cleaned data) and EXCLUDE_ITEM_IDS are never
returned (unknown ids in the exclude list are ignored); a k beyond the remaining candidates
returns what is left. A malformed request is answered with its own TritonError; an unexpected
failure while scoring fails that batch's requests, never the model.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import triton_python_backend_utils as pb_utils

sys.path.insert(0, str(Path(__file__).resolve().parent))
import recommender_scoring as scoring  # noqa: E402  (lives beside this file)

WEIGHTS_FILE = "recommender.npz"
MANIFEST_FILE = "manifest.json"
DEFAULT_INT8_KERNEL = "int8-dequantize"


class RequestError(ValueError):
    """A malformed request: it gets its own error response, the rest of the batch is served."""


@dataclass(frozen=True)
class ParsedRequest:
    user_row: int  # -1 when the user is unknown
    k: int
    exclude: np.ndarray  # int64 item indices


@dataclass(frozen=True)
class Recommendation:
    item_ids: np.ndarray  # object array of bytes
    titles: np.ndarray  # object array of bytes
    scores: np.ndarray  # float32
    personalized: bool


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        torch.set_num_threads(int(params.get("num_threads", "1")))

        artifacts = Path(args["model_repository"]) / args["model_version"] / params.get("artifacts_dir", "artifacts")
        manifest = json.loads((artifacts / MANIFEST_FILE).read_text())
        self.build_id = params.get("build_id", "")
        if manifest.get("build_id") != self.build_id:
            raise pb_utils.TritonModelException(
                f"config.pbtxt names build {self.build_id!r} but {artifacts} holds {manifest.get('build_id')!r}"
            )
        with np.load(artifacts / WEIGHTS_FILE) as data:
            arrays = {name: data[name] for name in data.files}

        self.kind = args.get("model_instance_kind", "CPU")
        bias = torch.from_numpy(arrays["item_bias"])
        if self.kind == "GPU":
            if not torch.cuda.is_available():
                raise pb_utils.TritonModelException("KIND_GPU instance but torch sees no CUDA device")
            self.device = torch.device(f"cuda:{args.get('model_instance_device_id', '0')}")
            self.table = scoring.FloatItemTable.build(
                torch.from_numpy(arrays["item_vectors_fp32"]), bias, torch.float16, self.device
            )
            self._clock_ns = self._gpu_wall_ns
        else:
            self.device = torch.device("cpu")
            self.table = scoring.int8_item_table(
                torch.from_numpy(arrays["item_vectors_int8"]),
                torch.from_numpy(arrays["item_scales"]),
                bias,
                params.get("cpu_int8_kernel", DEFAULT_INT8_KERNEL),
            )
            self._clock_ns = time.process_time_ns

        self.users = self.table.prepare_users(torch.from_numpy(arrays["user_vectors"]))
        self.user_rows = {user.encode(): row for row, user in enumerate(arrays["user_ids"].tolist())}
        self.item_index = {item.encode(): index for index, item in enumerate(arrays["item_ids"].tolist())}
        self.item_ids = np.array([item.encode() for item in arrays["item_ids"].tolist()], dtype=object)
        self.item_titles = np.array([title.encode() for title in arrays["item_titles"].tolist()], dtype=object)
        self.seen_indptr = arrays["seen_indptr"]
        self.seen_indices = arrays["seen_indices"].astype(np.int64)
        score_dtype = self.table.scores(self.users[:1]).dtype  # also warms the kernel up
        self.popularity = torch.from_numpy(arrays["popularity_scores"]).to(self.device, score_dtype)
        pb_utils.Logger.log_info(
            f"recommender build {self.build_id}: {len(self.item_ids)} items, {len(self.user_rows)} users, "
            f"{self.kind} instance on {self.device}, kernel {self.table.kernel}, "
            f"{torch.get_num_threads()} threads"
        )

    def execute(self, requests: list) -> list:
        started = self._clock_ns()
        responses: list = [None] * len(requests)
        parsed: list[tuple[int, ParsedRequest]] = []
        for position, request in enumerate(requests):
            try:
                parsed.append((position, self._parse(request)))
            except RequestError as error:
                responses[position] = pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error)))
            except Exception as error:  # noqa: BLE001 - an input we did not foresee: still only this request
                pb_utils.Logger.log_warn(f"recommender: unreadable request: {error!r}")
                responses[position] = pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(f"malformed request: {error}")
                )
        if not parsed:
            return responses
        try:
            recommendations = self._recommend([request for _, request in parsed])
        except Exception as error:  # noqa: BLE001 - answer the batch, keep the instance alive
            pb_utils.Logger.log_error(f"recommender batch of {len(parsed)} failed: {error!r}")
            for position, _ in parsed:
                responses[position] = pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(f"recommender failed: {error}")
                )
            return responses
        share_ns = max(1, (self._clock_ns() - started) // len(parsed))
        for (position, _), recommendation in zip(parsed, recommendations):
            responses[position] = self._response(recommendation, share_ns)
        return responses

    def finalize(self) -> None:
        pb_utils.Logger.log_info(f"recommender build {self.build_id} unloaded")

    # --- helpers ----------------------------------------------------------------------------

    def _gpu_wall_ns(self) -> int:
        torch.cuda.synchronize(self.device)
        return time.perf_counter_ns()

    def _parse(self, request) -> ParsedRequest:
        user = _single_value(_required(request, "USER_ID"), "USER_ID")
        if not isinstance(user, bytes) or not user:
            raise RequestError("USER_ID must be a non-empty string")
        k_value = _single_value(_required(request, "K"), "K")
        if not isinstance(k_value, np.integer) or k_value < 1:
            raise RequestError(f"K must be a positive integer, got {k_value!r}")
        exclude_tensor = pb_utils.get_input_tensor_by_name(request, "EXCLUDE_ITEM_IDS")
        exclude = np.empty(0, dtype=np.int64)
        if exclude_tensor is not None:
            known = [self.item_index.get(item) for item in exclude_tensor.as_numpy().reshape(-1).tolist()]
            exclude = np.array([index for index in known if index is not None], dtype=np.int64)
        return ParsedRequest(user_row=self.user_rows.get(user, -1), k=int(k_value), exclude=exclude)

    def _recommend(self, batch: list[ParsedRequest]) -> list[Recommendation]:
        user_rows = np.array([request.user_row for request in batch], dtype=np.int64)
        known = np.flatnonzero(user_rows >= 0)
        if len(known) == len(batch):
            scores = self.table.scores(self.users[torch.from_numpy(user_rows).to(self.device)])
        else:
            scores = self.popularity.expand(len(batch), -1).clone()
            if len(known):
                rows = torch.from_numpy(known).to(self.device)
                scores[rows] = self.table.scores(self.users[torch.from_numpy(user_rows[known]).to(self.device)])

        exclusions = [
            np.concatenate([self._seen(request.user_row), request.exclude]) for request in batch
        ]
        exclude_rows, exclude_cols = scoring.exclusion_coordinates(exclusions, self.device)
        ranked = scoring.top_k_excluding(scores, exclude_rows, exclude_cols, [request.k for request in batch])
        return [
            Recommendation(
                item_ids=self.item_ids[items],
                titles=self.item_titles[items],
                scores=item_scores.astype(np.float32, copy=False),
                personalized=request.user_row >= 0,
            )
            for request, (items, item_scores) in zip(batch, ranked)
        ]

    def _seen(self, user_row: int) -> np.ndarray:
        if user_row < 0:
            return np.empty(0, dtype=np.int64)
        return self.seen_indices[self.seen_indptr[user_row] : self.seen_indptr[user_row + 1]]

    @staticmethod
    def _response(recommendation: Recommendation, compute_ns: int):
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor("ITEM_IDS", recommendation.item_ids.reshape(1, -1)),
                pb_utils.Tensor("ITEM_TITLES", recommendation.titles.reshape(1, -1)),
                pb_utils.Tensor("SCORES", recommendation.scores.reshape(1, -1)),
                pb_utils.Tensor("COMPUTE_NS", np.array([[compute_ns]], dtype=np.int64)),
                pb_utils.Tensor("PERSONALIZED", np.array([[recommendation.personalized]], dtype=bool)),
            ]
        )


def _required(request, name: str) -> np.ndarray:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        raise RequestError(f"missing input {name}")
    return tensor.as_numpy()


def _single_value(values: np.ndarray, name: str):
    if values.size != 1:
        raise RequestError(f"{name} must hold exactly one value, got shape {list(values.shape)}")
    return values.reshape(-1)[0]
