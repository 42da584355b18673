"""Triton Python-backend model ``recommender``: the top-k catalogue items for a customer.

The contract (inputs, outputs, parameters) is rendered into ``config.pbtxt`` by
``pipeline/recommender/triton_config.py``; the artifacts beside this file come from
``python -m pipeline build recommender``. Every kept version (``<N>/``) runs a copy of this
file and loads its own ``<N>/artifacts``; its build_id is the one its manifest names, which must
be the one the config declares for that version (``build_id.<N>``).

The artifacts name the model's shape (``scorer_kind``, see recommender_scoring.py):

- ``item-item`` (EASE and its blends): the user's weighted purchase history, plus the items of
  the optional RECENT_ITEM_IDS input (purchases the caller knows of and the build does not; they
  count as made just now), times the pruned int8 item-item matrix, max-normalised, plus the
  trending prior. The same int8 kernel runs on a CPU and on a GPU instance.
- ``factors`` (BPR, ALS): user vector x item table; on a CPU instance the int8 table (one
  symmetric scale per item row) with the kernel named by the ``cpu_int8_kernel`` parameter, on
  a GPU instance an fp16 table. RECENT_ITEM_IDS are only excluded.

``torch.set_num_threads(num_threads)``. COMPUTE_NS on a CPU instance measures process CPU time
(``time.process_time_ns``: vCPU-nanoseconds used by all threads of this stub process); on a GPU
instance wall time, with ``torch.cuda.synchronize`` at both ends.

COMPUTE_NS of a request = the batch's measured compute divided equally among the requests of
the batch that get an answer (a request rejected as malformed gets its own error and no share),
at least 1. The clock covers all of ``execute()``: parsing, scoring, exclusion, top-k and
building every response object. Each response is built around a one-element COMPUTE_NS array
that is filled in place as the very last step, once the clock has stopped (the Python backend
copies output tensors into shared memory only after ``execute()`` returns). Triton's own
queueing and (de)serialisation are outside ``execute()`` and not in it.

Behaviour: unknown users without recent items get the popularity ranking; the user's purchases
(all cleaned data), RECENT_ITEM_IDS and EXCLUDE_ITEM_IDS are never returned (unknown ids in
either list are ignored); a k beyond the remaining candidates returns what is left. A malformed
request is answered with its own TritonError; an unexpected failure while scoring fails that
batch's requests, never the model.
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
    recent: np.ndarray  # int64 item indices the caller says the user bought since the build


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

        self.version = args["model_version"]
        artifacts = Path(args["model_repository"]) / self.version / params.get("artifacts_dir", "artifacts")
        manifest = json.loads((artifacts / MANIFEST_FILE).read_text())
        self.build_id = str(manifest.get("build_id", ""))
        # The config names each kept version's build (build_id.<N>); a single-version config only build_id.
        declared = params.get(f"build_id.{self.version}", params.get("build_id", ""))
        if declared != self.build_id:
            raise pb_utils.TritonModelException(
                f"config.pbtxt names build {declared!r} for version {self.version} but {artifacts} holds "
                f"{self.build_id!r}"
            )
        with np.load(artifacts / WEIGHTS_FILE) as data:
            arrays = {name: data[name] for name in data.files}

        self.kind = args.get("model_instance_kind", "CPU")
        if self.kind == "GPU":
            if not torch.cuda.is_available():
                raise pb_utils.TritonModelException("KIND_GPU instance but torch sees no CUDA device")
            self.device = torch.device(f"cuda:{args.get('model_instance_device_id', '0')}")
            self._clock_ns = self._gpu_wall_ns
        else:
            self.device = torch.device("cpu")
            self._clock_ns = time.process_time_ns
        self.scorer = scoring.user_scorer(arrays, self.device, params.get("cpu_int8_kernel", DEFAULT_INT8_KERNEL))

        self.user_rows = {user.encode(): row for row, user in enumerate(arrays["user_ids"].tolist())}
        self.item_index = {item.encode(): index for index, item in enumerate(arrays["item_ids"].tolist())}
        self.item_ids = np.array([item.encode() for item in arrays["item_ids"].tolist()], dtype=object)
        self.item_titles = np.array([title.encode() for title in arrays["item_titles"].tolist()], dtype=object)
        self.seen_indptr = arrays["seen_indptr"]
        self.seen_indices = arrays["seen_indices"].astype(np.int64)
        no_items = np.empty(0, dtype=np.int64)
        score_dtype = self.scorer.scores([0], [no_items]).dtype  # also warms the kernel up
        self.popularity = torch.from_numpy(arrays["popularity_scores"]).to(self.device, score_dtype)
        pb_utils.Logger.log_info(
            f"recommender version {self.version} build {self.build_id}: {scoring.scorer_kind(arrays)} model, "
            f"{len(self.item_ids)} items, "
            f"{len(self.user_rows)} users, {self.kind} instance on {self.device}, kernel {self.scorer.kernel}, "
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
        compute_ns = [np.zeros((1, 1), dtype=np.int64) for _ in parsed]
        for (position, _), recommendation, slot in zip(parsed, recommendations, compute_ns):
            responses[position] = self._response(recommendation, slot)
        share_ns = max(1, (self._clock_ns() - started) // len(parsed))
        for slot in compute_ns:
            slot[0, 0] = share_ns
        return responses

    def finalize(self) -> None:
        pb_utils.Logger.log_info(f"recommender version {self.version} build {self.build_id} unloaded")

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
        return ParsedRequest(
            user_row=self.user_rows.get(user, -1),
            k=int(k_value),
            exclude=self._known_items(request, "EXCLUDE_ITEM_IDS"),
            recent=self._known_items(request, "RECENT_ITEM_IDS"),
        )

    def _known_items(self, request, name: str) -> np.ndarray:
        """Catalogue indices of an optional list of item ids, unknown ids dropped, first occurrences kept."""
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        if tensor is None:
            return np.empty(0, dtype=np.int64)
        known = (self.item_index.get(item) for item in dict.fromkeys(tensor.as_numpy().reshape(-1).tolist()))
        return np.array([index for index in known if index is not None], dtype=np.int64)

    def _recommend(self, batch: list[ParsedRequest]) -> list[Recommendation]:
        personal = [
            row for row, request in enumerate(batch) if self.scorer.personalizes(request.user_row, request.recent)
        ]
        if len(personal) == len(batch):
            scores = self.scorer.scores([r.user_row for r in batch], [r.recent for r in batch])
        else:
            scores = self.popularity.expand(len(batch), -1).clone()
            if personal:
                scores[torch.tensor(personal, device=self.device)] = self.scorer.scores(
                    [batch[row].user_row for row in personal], [batch[row].recent for row in personal]
                )
        personalized = np.zeros(len(batch), dtype=bool)
        personalized[personal] = True

        exclusions = [
            np.concatenate([self._seen(request.user_row), request.recent, request.exclude]) for request in batch
        ]
        exclude_rows, exclude_cols = scoring.exclusion_coordinates(exclusions, self.device)
        ranked = scoring.top_k_excluding(scores, exclude_rows, exclude_cols, [request.k for request in batch])
        return [
            Recommendation(
                item_ids=self.item_ids[items],
                titles=self.item_titles[items],
                scores=item_scores.astype(np.float32, copy=False),
                personalized=bool(is_personal),
            )
            for (items, item_scores), is_personal in zip(ranked, personalized)
        ]

    def _seen(self, user_row: int) -> np.ndarray:
        if user_row < 0:
            return np.empty(0, dtype=np.int64)
        return self.seen_indices[self.seen_indptr[user_row] : self.seen_indptr[user_row + 1]]

    @staticmethod
    def _response(recommendation: Recommendation, compute_ns: np.ndarray):
        """``compute_ns``: the [1, 1] int64 array execute() fills in once its clock has stopped."""
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor("ITEM_IDS", recommendation.item_ids.reshape(1, -1)),
                pb_utils.Tensor("ITEM_TITLES", recommendation.titles.reshape(1, -1)),
                pb_utils.Tensor("SCORES", recommendation.scores.reshape(1, -1)),
                pb_utils.Tensor("COMPUTE_NS", compute_ns),
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
