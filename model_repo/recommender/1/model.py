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

Rows: a request may carry several rows (its batch dimension, up to ``max_batch_size``), one
user each: the gateway sends the cache misses of one event-loop iteration as one request. A
ragged input (EXCLUDE_ITEM_IDS, RECENT_ITEM_IDS) is then padded with empty strings, which are
ignored like unknown ids; the outputs are [rows, width], a row with fewer items than the widest
one padded at its end with empty ITEM_IDS and ITEM_TITLES and 0.0 SCORES. A single-row request
is answered [1, k], unpadded. A malformed row fails its whole request.

COMPUTE_NS of a row = the batch's measured compute divided equally among the rows of the batch
that get an answer (a request rejected as malformed gets its own error and no share), at least 1. The clock covers all of ``execute()``: parsing, scoring, exclusion, top-k and
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
        parsed: list[tuple[int, list[ParsedRequest]]] = []
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
        rows = [row for _, request_rows in parsed for row in request_rows]
        try:
            recommendations = self._recommend(rows)
        except Exception as error:  # noqa: BLE001 - answer the batch, keep the instance alive
            pb_utils.Logger.log_error(f"recommender batch of {len(rows)} rows failed: {error!r}")
            for position, _ in parsed:
                responses[position] = pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(f"recommender failed: {error}")
                )
            return responses
        compute_ns = [np.zeros((len(request_rows), 1), dtype=np.int64) for _, request_rows in parsed]
        first = 0
        for (position, request_rows), slot in zip(parsed, compute_ns):
            responses[position] = self._response(recommendations[first : first + len(request_rows)], slot)
            first += len(request_rows)
        share_ns = max(1, (self._clock_ns() - started) // len(rows))
        for slot in compute_ns:
            slot[:, 0] = share_ns
        return responses

    def finalize(self) -> None:
        pb_utils.Logger.log_info(f"recommender version {self.version} build {self.build_id} unloaded")

    # --- helpers ----------------------------------------------------------------------------

    def _gpu_wall_ns(self) -> int:
        torch.cuda.synchronize(self.device)
        return time.perf_counter_ns()

    def _parse(self, request) -> list[ParsedRequest]:
        """The request's rows (one per entry of its batch dimension)."""
        users = _one_per_row(_required(request, "USER_ID"), "USER_ID")
        ks = _one_per_row(_required(request, "K"), "K")
        if len(ks) != len(users):
            raise RequestError(f"K has {len(ks)} rows but USER_ID has {len(users)}")
        excluded = self._known_items(request, "EXCLUDE_ITEM_IDS", len(users))
        recent = self._known_items(request, "RECENT_ITEM_IDS", len(users))
        rows = []
        for user, k_value, row_excluded, row_recent in zip(users, ks, excluded, recent):
            if not isinstance(user, bytes) or not user:
                raise RequestError("USER_ID must be a non-empty string")
            if not isinstance(k_value, np.integer) or k_value < 1:
                raise RequestError(f"K must be a positive integer, got {k_value!r}")
            rows.append(
                ParsedRequest(
                    user_row=self.user_rows.get(user, -1), k=int(k_value), exclude=row_excluded, recent=row_recent
                )
            )
        return rows

    def _known_items(self, request, name: str, rows: int) -> list[np.ndarray]:
        """Per row, the catalogue indices of an optional list of item ids: unknown ids and the
        empty strings that pad a row dropped, first occurrences kept."""
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        if tensor is None:
            return [np.empty(0, dtype=np.int64)] * rows
        values = tensor.as_numpy()
        if values.ndim < 2:
            values = values.reshape(1, -1)
        if values.shape[0] != rows:
            raise RequestError(f"{name} has {values.shape[0]} rows but USER_ID has {rows}")
        index = self.item_index
        per_row = []
        for row in values.reshape(rows, -1).tolist():
            known = (index.get(item) for item in dict.fromkeys(row))
            per_row.append(np.array([position for position in known if position is not None], dtype=np.int64))
        return per_row

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
    def _response(recommendations: list[Recommendation], compute_ns: np.ndarray):
        """One response for a request's rows, [rows, width], shorter rows padded at their end;
        ``compute_ns``: the [rows, 1] int64 array execute() fills in once its clock has stopped."""
        if len(recommendations) == 1:
            (only,) = recommendations
            item_ids, titles, scores = only.item_ids.reshape(1, -1), only.titles.reshape(1, -1), only.scores.reshape(1, -1)
        else:
            width = max(len(recommendation.item_ids) for recommendation in recommendations)
            item_ids = np.full((len(recommendations), width), b"", dtype=object)
            titles = np.full((len(recommendations), width), b"", dtype=object)
            scores = np.zeros((len(recommendations), width), dtype=np.float32)
            for row, recommendation in enumerate(recommendations):
                count = len(recommendation.item_ids)
                item_ids[row, :count] = recommendation.item_ids
                titles[row, :count] = recommendation.titles
                scores[row, :count] = recommendation.scores
        personalized = np.array([[recommendation.personalized] for recommendation in recommendations], dtype=bool)
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor("ITEM_IDS", item_ids),
                pb_utils.Tensor("ITEM_TITLES", titles),
                pb_utils.Tensor("SCORES", scores),
                pb_utils.Tensor("COMPUTE_NS", compute_ns),
                pb_utils.Tensor("PERSONALIZED", personalized),
            ]
        )


def _required(request, name: str) -> np.ndarray:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        raise RequestError(f"missing input {name}")
    return tensor.as_numpy()


def _one_per_row(values: np.ndarray, name: str) -> list:
    """The one value of each row: [rows, 1] (or a single value of any shape: one row)."""
    if values.ndim >= 2 and values.shape[0] > 1:
        if values.size != values.shape[0]:
            raise RequestError(f"{name} must hold exactly one value per row, got shape {list(values.shape)}")
        return list(values.reshape(-1))
    if values.size != 1:
        raise RequestError(f"{name} must hold exactly one value, got shape {list(values.shape)}")
    return [values.reshape(-1)[0]]
