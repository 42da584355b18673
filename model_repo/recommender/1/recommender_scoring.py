"""Scoring kernels of the recommender, free of Triton so that the pipeline can time them and tests can run them.

``model.py`` serves with these; ``pipeline.recommender.compute_probe`` and ``pipeline.recommender.build``
time and evaluate these same classes. Only numpy and torch are needed.

Two model shapes, named by ``scorer_kind`` in the artifacts:

- ``factors`` (BPR, ALS): score(u, i) = <user_u, item_i> + bias_i over the whole catalogue, as
  one matmul per batch (``ItemTable`` below, wrapped by ``FactorUserScorer``).
- ``item-item`` (EASE, item-kNN, and their blend with recency and trending items): the user's
  purchase history times a pruned item-item matrix, s = sum over (item i, weight w) of w * row_i,
  then score = s / max|s| + prior (``ItemItemTable``, wrapped by ``HistoryUserScorer``). History
  items the request carries (RECENT_ITEM_IDS) count with weight 1, so new purchases change the
  answer without retraining.

int8 item tables hold one symmetric scale per item row (item_i ~= scale_i * q_i). Two kernels:

- ``Int8DequantItemTable`` (served on CPU by default): converts the int8 table to float inside
  each call, one fp32 matmul, then applies the per-item scales to the [B, n] scores
  (scale_i * <u, q_i>); the scales are never multiplied into the table, and the float copy of
  the table lives only during the call.
- ``Int8GemmItemTable``: int8 x int8 GEMM via FBGEMM's dynamic quantized linear
  with the table as a per-channel (per-item) qint8 weight. FBGEMM quantizes its input with one
  range per *call*, which would make a user's scores depend on which other requests share the
  dynamic batch. To keep results batch-invariant, each user vector is divided by its max |value|
  once at load time (then every row spans at most [-1, 1]) and an anchor row holding +1 and -1
  is appended in each call, so the input range is exactly [-1, 1] every time; scores are
  multiplied back by the norms.

Both are measured against fp32 in eval.json ("speed", "model_int8", top-k overlap). Quantized
tensors are deprecated in torch (still present in the pinned 2.13); the dequantize kernel is
the fallback when the FBGEMM op is missing.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch


class ItemTable:
    """Scores users against every catalogue item.

    ``prepare_users`` turns the user table into the form this kernel consumes (done once, at
    load time); ``scores`` takes rows of that prepared table, [B, ...], and returns a new
    [B, n_items] tensor.
    """

    kernel: str

    @property
    def n_items(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def prepare_users(self, user_vectors: torch.Tensor) -> torch.Tensor:
        return user_vectors.float().contiguous()

    def scores(self, users: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def nbytes(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class FloatItemTable(ItemTable):
    """fp32 on CPU, or fp16 on a GPU (user vectors are cast to the table's dtype and device)."""

    vectors_t: torch.Tensor  # [dim, n_items]
    bias: torch.Tensor  # [n_items]

    @classmethod
    def build(
        cls, vectors: torch.Tensor, bias: torch.Tensor, dtype: torch.dtype, device: str | torch.device
    ) -> "FloatItemTable":
        return cls(
            vectors_t=vectors.t().contiguous().to(device=device, dtype=dtype),
            bias=bias.to(device=device, dtype=dtype),
        )

    @property
    def kernel(self) -> str:  # type: ignore[override]
        return str(self.vectors_t.dtype).removeprefix("torch.")

    @property
    def n_items(self) -> int:
        return self.vectors_t.shape[1]

    def prepare_users(self, user_vectors: torch.Tensor) -> torch.Tensor:
        return user_vectors.to(device=self.vectors_t.device, dtype=self.vectors_t.dtype).contiguous()

    def scores(self, users: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, users, self.vectors_t)

    def nbytes(self) -> int:
        return self.vectors_t.nbytes + self.bias.nbytes


@dataclass
class Int8DequantItemTable(ItemTable):
    values_t: torch.Tensor  # int8 [dim, n_items]
    scales: torch.Tensor  # float32 [n_items]
    bias: torch.Tensor  # float32 [n_items]
    kernel: str = "int8-dequantize"

    @classmethod
    def build(cls, values: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor) -> "Int8DequantItemTable":
        return cls(values_t=values.t().contiguous(), scales=scales.float(), bias=bias.float())

    @property
    def n_items(self) -> int:
        return self.values_t.shape[1]

    def scores(self, users: torch.Tensor) -> torch.Tensor:
        raw = users @ self.values_t.float()
        return torch.addcmul(self.bias, raw, self.scales)

    def nbytes(self) -> int:
        return self.values_t.nbytes + self.scales.nbytes + self.bias.nbytes


@dataclass
class Int8GemmItemTable(ItemTable):
    packed: object  # FBGEMM packed per-channel qint8 weight [n_items, dim]
    bias: torch.Tensor  # float32 [n_items]
    anchor: torch.Tensor  # [1, dim]: +1, -1, zeros
    table_bytes: int
    n: int
    kernel: str = "int8-gemm"

    @staticmethod
    def available() -> bool:
        return hasattr(torch.ops.quantized, "linear_dynamic") and "fbgemm" in torch.backends.quantized.supported_engines

    @classmethod
    def build(cls, values: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor) -> "Int8GemmItemTable":
        n_items, dim = values.shape
        if dim < 2:
            raise ValueError("the anchor row needs at least 2 dimensions")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*deprecated")
            weight = torch.quantize_per_channel(
                values.float() * scales.float()[:, None],
                scales.double(),
                torch.zeros(n_items, dtype=torch.int64),
                axis=0,
                dtype=torch.qint8,
            )
        if not torch.equal(weight.int_repr(), values):
            raise ValueError("int8 table did not survive re-quantization with its own scales")
        anchor = torch.zeros(1, dim)
        anchor[0, 0], anchor[0, 1] = 1.0, -1.0
        return cls(
            packed=torch.ops.quantized.linear_prepack(weight, None),
            bias=bias.float(),
            anchor=anchor,
            table_bytes=values.nbytes + scales.nbytes,
            n=n_items,
        )

    @property
    def n_items(self) -> int:
        return self.n

    def prepare_users(self, user_vectors: torch.Tensor) -> torch.Tensor:
        """[n_users, dim + 1]: each vector divided by its max |value|, that norm in the last column."""
        users = user_vectors.float()
        norms = users.abs().amax(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
        return torch.cat([users / norms, norms], dim=1).contiguous()

    def scores(self, users: torch.Tensor) -> torch.Tensor:
        # reduce_range (7-bit activations), as torch's own dynamic quantization does for FBGEMM:
        # without VNNI, FBGEMM's u8 x s8 multiply-add saturates in int16 (seen on an AVX2-only
        # CPU: 22 % max score error with full range, 1.5 % with reduce_range).
        raw = torch.ops.quantized.linear_dynamic(torch.cat([users[:, :-1], self.anchor]), self.packed, True)
        return torch.addcmul(self.bias, raw[:-1], users[:, -1:])

    def nbytes(self) -> int:
        return self.table_bytes + self.bias.nbytes


@dataclass
class ItemItemTable:
    """A pruned item-item matrix in fixed-width form: row i holds item i's ``width`` strongest links.

    ``values`` are int8 with one scale per row (or float32 with scales 1); the matrix is never
    made dense. A batch's history entries, (batch row, item, weight) triples, are expanded to
    their rows' links and summed into the [B, n_items] scores with one ``index_add_``.
    """

    columns: torch.Tensor  # int16 or int32 [n_items, width]
    values: torch.Tensor  # int8 or float32 [n_items, width]
    scales: torch.Tensor  # float32 [n_items]
    prior: torch.Tensor  # float32 [n_items], added after the max-normalisation
    kernel: str

    @classmethod
    def build(
        cls,
        columns: torch.Tensor,
        values: torch.Tensor,
        scales: torch.Tensor,
        prior: torch.Tensor,
        device: torch.device | str = "cpu",
    ) -> "ItemItemTable":
        kernel = "item-item-int8" if values.dtype == torch.int8 else "item-item-fp32"
        return cls(
            columns=columns.to(device).contiguous(),
            values=values.to(device).contiguous(),
            scales=scales.to(device=device, dtype=torch.float32),
            prior=prior.to(device=device, dtype=torch.float32),
            kernel=kernel,
        )

    @property
    def n_items(self) -> int:
        return self.prior.shape[0]

    def scores(self, rows: torch.Tensor, items: torch.Tensor, weights: torch.Tensor, n_rows: int) -> torch.Tensor:
        """[n_rows, n_items] float32 from history triples (int64 rows, int64 items, float32 weights)."""
        n_items = self.n_items
        links = self.values[items].float() * (self.scales[items] * weights).unsqueeze(1)  # [M, width]
        targets = rows.unsqueeze(1) * n_items + self.columns[items].long()
        summed = torch.zeros(n_rows * n_items, dtype=torch.float32, device=self.prior.device)
        summed.index_add_(0, targets.reshape(-1), links.reshape(-1))
        summed = summed.view(n_rows, n_items)
        peak = summed.abs().amax(dim=1, keepdim=True)
        peak = torch.where(peak > 0, peak, torch.ones_like(peak))
        return summed.div_(peak).add_(self.prior)

    def nbytes(self) -> int:
        return self.columns.nbytes + self.values.nbytes + self.scales.nbytes + self.prior.nbytes


class UserScorer:
    """Scores the personalised requests of a batch: a user row (-1: unknown) and recent item indices each."""

    kernel: str

    def personalizes(self, user_row: int, recent: np.ndarray) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def scores(self, user_rows: Sequence[int], recent: Sequence[np.ndarray]) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def nbytes(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class FactorUserScorer(UserScorer):
    """User vector x item table; a factor model cannot use recent items (they are only excluded)."""

    table: ItemTable
    users: torch.Tensor  # prepared user table

    @property
    def kernel(self) -> str:  # type: ignore[override]
        return self.table.kernel

    def personalizes(self, user_row: int, recent: np.ndarray) -> bool:
        return user_row >= 0

    def scores(self, user_rows: Sequence[int], recent: Sequence[np.ndarray]) -> torch.Tensor:
        index = torch.as_tensor(np.asarray(user_rows, dtype=np.int64)).to(self.users.device)
        return self.table.scores(self.users[index])

    def nbytes(self) -> int:
        return self.table.nbytes() + self.users.nbytes


@dataclass
class HistoryUserScorer(UserScorer):
    """The user's weighted purchase history (CSR) plus the request's recent items, x an item-item table."""

    table: ItemItemTable
    history_indptr: np.ndarray  # int64 [n_users + 1]
    history_items: np.ndarray  # int32 [n_pairs]
    history_weights: np.ndarray  # float32 [n_pairs]
    recent_weight: float = 1.0  # a purchase the caller reports counts as one made just now

    @property
    def kernel(self) -> str:  # type: ignore[override]
        return self.table.kernel

    def personalizes(self, user_row: int, recent: np.ndarray) -> bool:
        return user_row >= 0 or len(recent) > 0

    def scores(self, user_rows: Sequence[int], recent: Sequence[np.ndarray]) -> torch.Tensor:
        items, weights = [], []
        for row, extra in zip(user_rows, recent):
            start, end = (self.history_indptr[row], self.history_indptr[row + 1]) if row >= 0 else (0, 0)
            items += [self.history_items[start:end], extra]
            weights += [self.history_weights[start:end], np.full(len(extra), self.recent_weight, np.float32)]
        lengths = [len(a) + len(b) for a, b in zip(items[::2], items[1::2])]
        device = self.table.prior.device
        rows = torch.from_numpy(np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)).to(device)
        return self.table.scores(
            rows,
            torch.from_numpy(np.concatenate(items).astype(np.int64)).to(device),
            torch.from_numpy(np.concatenate(weights)).to(device),
            len(lengths),
        )

    def nbytes(self) -> int:
        return (
            self.table.nbytes()
            + self.history_indptr.nbytes
            + self.history_items.nbytes
            + self.history_weights.nbytes
        )


def int8_item_table(values: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor, kernel: str) -> ItemTable:
    """``kernel``: "int8-gemm" (falls back to dequantize when FBGEMM is missing) or "int8-dequantize"."""
    if kernel == "int8-gemm" and Int8GemmItemTable.available():
        return Int8GemmItemTable.build(values, scales, bias)
    if kernel not in ("int8-gemm", "int8-dequantize"):
        raise ValueError(f"unknown int8 kernel {kernel!r}")
    return Int8DequantItemTable.build(values, scales, bias)


FACTORS, ITEM_ITEM = "factors", "item-item"


def scorer_kind(arrays: Mapping[str, np.ndarray]) -> str:
    """The artifacts' model shape (builds before the item-item shape hold only factors)."""
    return str(arrays["scorer_kind"]) if "scorer_kind" in arrays else FACTORS


def user_scorer(arrays: Mapping[str, np.ndarray], device: torch.device, cpu_int8_kernel: str) -> UserScorer:
    """The scorer a model instance serves with, from the arrays of ``recommender.npz``.

    factors: the int8 item table with ``cpu_int8_kernel`` on a CPU, fp16 on a GPU; item-item: the
    int8 pruned matrix on either.
    """
    if scorer_kind(arrays) == ITEM_ITEM:
        table = ItemItemTable.build(
            torch.from_numpy(arrays["neighbour_columns"]),
            torch.from_numpy(arrays["neighbour_weights_int8"]),
            torch.from_numpy(arrays["neighbour_scales"]),
            torch.from_numpy(arrays["item_prior"]),
            device,
        )
        return HistoryUserScorer(
            table=table,
            history_indptr=arrays["seen_indptr"].astype(np.int64),
            history_items=arrays["seen_indices"].astype(np.int32),
            history_weights=arrays["history_weights"].astype(np.float32),
        )
    bias = torch.from_numpy(arrays["item_bias"])
    if device.type == "cuda":
        table: ItemTable = FloatItemTable.build(
            torch.from_numpy(arrays["item_vectors_fp32"]), bias, torch.float16, device
        )
    else:
        table = int8_item_table(
            torch.from_numpy(arrays["item_vectors_int8"]),
            torch.from_numpy(arrays["item_scales"]),
            bias,
            cpu_int8_kernel,
        )
    return FactorUserScorer(table=table, users=table.prepare_users(torch.from_numpy(arrays["user_vectors"])))


def exclusion_coordinates(
    rows_items: Sequence[np.ndarray], device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, column) index tensors that mark, for batch row r, the item indices ``rows_items[r]``."""
    lengths = np.fromiter((len(items) for items in rows_items), dtype=np.int64, count=len(rows_items))
    rows = np.repeat(np.arange(len(rows_items), dtype=np.int64), lengths)
    cols = np.concatenate(rows_items).astype(np.int64) if len(rows_items) else np.empty(0, dtype=np.int64)
    return torch.from_numpy(rows).to(device), torch.from_numpy(cols).to(device)


def top_k_excluding(
    scores: torch.Tensor, exclude_rows: torch.Tensor, exclude_cols: torch.Tensor, ks: Sequence[int]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per row r: the ``ks[r]`` best items not excluded, as (item indices int64, scores float32), best first.

    Excluded cells are set to -inf in place (pass a scores tensor you own); a row with fewer
    than ``ks[r]`` candidates left returns all of them. Equal scores rank by item index, at the
    cut too, so a row's answer does not depend on the batch it was scored in (``torch.topk``
    orders ties by how the batch was laid out).
    """
    n_items = scores.shape[1]
    if exclude_rows.numel():
        minus_inf = torch.tensor(float("-inf"), dtype=scores.dtype, device=scores.device)
        scores.index_put_((exclude_rows, exclude_cols), minus_inf)
    k_max = min(max(ks, default=0), n_items)
    if k_max == 0:
        return [(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)) for _ in ks]
    best_scores, best_items = torch.topk(scores, k_max, dim=1, largest=True, sorted=True)
    # Rows where topk had to choose among items tied at its cut: which ones it kept is arbitrary.
    cut = best_scores[:, -1:]
    undecided = ((scores == cut).sum(dim=1) != (best_scores == cut).sum(dim=1)).nonzero().flatten().tolist()
    best_scores = best_scores.float().cpu().numpy()
    best_items = best_items.cpu().numpy()
    for row in undecided:
        best_items[row], best_scores[row] = _best_by_score_then_index(scores[row], best_scores[row, -1], k_max)
    # Excluded cells are -inf, so they sort last: the finite entries of a row are a prefix.
    available = np.isfinite(best_scores).sum(axis=1)
    results = []
    for row, k in enumerate(ks):
        n = min(k, int(available[row]))
        items, row_scores = best_items[row, :n], best_scores[row, :n]
        if n > 1 and (row_scores[1:] == row_scores[:-1]).any():
            order = np.lexsort((items, -row_scores))
            items, row_scores = items[order], row_scores[order]
        results.append((items, row_scores))
    return results


def _best_by_score_then_index(row_scores: torch.Tensor, cut: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best items of one row, equal scores by item index: every item scored at least
    ``cut`` (the k-th best score), ordered."""
    candidates = torch.nonzero(row_scores >= cut).flatten()
    values = row_scores[candidates].float().cpu().numpy()
    items = candidates.cpu().numpy().astype(np.int64)
    order = np.lexsort((items, -values))[:k]
    return items[order], values[order]
