"""The served models' own kernels, set up for in-process timing on real or synthetic catalogues.

Recommender: ``recommender_scoring`` (loaded from ``model_repo/recommender/1/`` by
``pipeline.recommender.serving_kernels``, the file ``model.py`` serves with): one call = score
a batch of real users against the catalogue, drop their purchases, take the top 10 —
``execute()`` minus Triton's (de)serialisation. Product index:
``index_search.top_k_inner_product`` (loaded from ``model_repo/product_index/1/``), one call =
exact top 10 for a batch of query embeddings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.recommender.config import RecommenderPipelineSettings
from pipeline.recommender.quantize import quantize_rows
from pipeline.recommender.serving_kernels import scoring_module
from pipeline.search.serving_sources import index_module

TOP_K = 10
RECOMMENDER_NPZ = Path("recommender") / "1" / "artifacts" / "recommender.npz"
INDEX_NPZ = Path("product_index") / "1" / "artifacts" / "index.npz"
FP32 = "fp32"


@dataclass(frozen=True)
class RecommenderTables:
    item_vectors: np.ndarray  # fp32 [n, d]
    item_bias: np.ndarray  # fp32 [n]
    user_vectors: np.ndarray  # fp32 [users, d]
    seen_indptr: np.ndarray
    seen_indices: np.ndarray

    @classmethod
    def load(cls, model_repository: Path) -> RecommenderTables:
        with np.load(model_repository / RECOMMENDER_NPZ) as data:
            return cls(
                item_vectors=data["item_vectors_fp32"],
                item_bias=data["item_bias"],
                user_vectors=data["user_vectors"],
                seen_indptr=data["seen_indptr"],
                seen_indices=data["seen_indices"].astype(np.int64),
            )

    def seen(self, user_row: int) -> np.ndarray:
        return self.seen_indices[self.seen_indptr[user_row] : self.seen_indptr[user_row + 1]]


def serves_factor_model(model_repository: Path) -> bool:
    """Whether the served recommender is a factor model (user vector x item table), the shape timed here.

    An item-item recommender (EASE) has no item vectors; its compute per request is measured by
    the pipeline and through Triton (the recommender's eval.json) instead.
    """
    with np.load(model_repository / RECOMMENDER_NPZ) as data:
        return "scorer_kind" not in data.files or str(data["scorer_kind"]) == "factors"


def served_int8_kernel() -> str:
    return RecommenderPipelineSettings().cpu_int8_kernel


def recommender_calls(
    tables: RecommenderTables,
    item_vectors: np.ndarray,
    item_bias: np.ndarray,
    batch: int,
    seed: int,
    extra_int8_kernels: tuple[str, ...] = (),
) -> tuple[dict[str, Callable[[], object]], dict[str, int]]:
    """fp32 ("fp32"), the served int8 kernel ("int8") and any ``extra_int8_kernels`` (by kernel
    name, e.g. "int8-gemm") on this catalogue: {name: call} and {name: table bytes}."""
    kernels = scoring_module()
    vectors, bias = (
        torch.from_numpy(np.ascontiguousarray(item_vectors)),
        torch.from_numpy(np.ascontiguousarray(item_bias)),
    )
    quantized = quantize_rows(item_vectors)
    tables_by_name = {
        FP32: kernels.FloatItemTable.build(vectors, bias, torch.float32, "cpu"),
        "int8": kernels.int8_item_table(
            torch.from_numpy(quantized.values), torch.from_numpy(quantized.scales), bias, served_int8_kernel()
        ),
    }
    for kernel in extra_int8_kernels:
        table = kernels.int8_item_table(
            torch.from_numpy(quantized.values), torch.from_numpy(quantized.scales), bias, kernel
        )
        tables_by_name[table.kernel] = table  # keyed by what really runs (int8-gemm falls back without FBGEMM)
    users = np.random.default_rng(seed).choice(
        len(tables.user_vectors), size=batch, replace=batch > len(tables.user_vectors)
    )
    rows, cols = kernels.exclusion_coordinates([tables.seen(int(user)) for user in users])
    index = torch.from_numpy(users)
    user_vectors = torch.from_numpy(tables.user_vectors)
    ks = [TOP_K] * batch

    def call(table) -> Callable[[], object]:
        prepared = table.prepare_users(user_vectors)
        return lambda: kernels.top_k_excluding(table.scores(prepared[index]), rows, cols, ks)

    return {name: call(table) for name, table in tables_by_name.items()}, {
        name: int(table.nbytes()) for name, table in tables_by_name.items()
    }


def load_index(model_repository: Path) -> np.ndarray:
    with np.load(model_repository / INDEX_NPZ) as data:
        return np.ascontiguousarray(data["embeddings"], dtype=np.float32)


def index_call(index: np.ndarray, queries: np.ndarray) -> Callable[[], object]:
    top_k = index_module().top_k_inner_product
    return lambda: top_k(queries, index, TOP_K)
