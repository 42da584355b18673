"""The served form of the chosen model and what it costs in quality: pruning and int8.

- item-item models: the matrix is pruned to each item's top-N weights (by magnitude), N tuned on
  the validation split like any hyper-parameter (the ``prune_top_n_grid`` value whose int8 form
  has the best validation NDCG@k; ties: the smaller N), then scored once on test as unpruned
  fp32, pruned fp32 and pruned int8 (served);
- factor models: the item table quantized to int8 (one scale per row), scored with the served
  kernel against fp32 on test.

Every variant is scored through the serving kernels (:mod:`pipeline.recommender.serving_forms`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pipeline.recommender.bpr import FactorModel
from pipeline.recommender.config import RecommenderPipelineSettings
from pipeline.recommender.encoding import UserItemMatrix
from pipeline.recommender.evaluate import HoldOut, RankingQuality, evaluate, mean_overlap
from pipeline.recommender.item_item import ItemItemModel
from pipeline.recommender.pruning import ItemNeighbours
from pipeline.recommender.serving_forms import factor_scorer, item_item_scorer, score_fn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variant:
    name: str
    quality: RankingQuality
    nbytes: int  # what the scorer holds: item-side table and user-side state
    scorer: object  # the serving kernel (recommender_scoring.UserScorer)


@dataclass(frozen=True)
class ServedVariants:
    reference: Variant  # the unquantized, unpruned model
    variants: list[Variant]  # the last one is served
    prune_top_n: int | None
    validation_sweep: list[dict]
    test_sweep: list[dict]

    @property
    def served(self) -> Variant:
        return self.variants[-1]

    def relative_loss(self, variant: Variant) -> dict[str, float]:
        ref, got = self.reference.quality, variant.quality
        return {
            "recall": round(1 - got.recall_at_k / ref.recall_at_k, 6) if ref.recall_at_k else 0.0,
            "ndcg": round(1 - got.ndcg_at_k / ref.ndcg_at_k, 6) if ref.ndcg_at_k else 0.0,
        }


KERNEL_BATCH_LINKS = 1 << 16  # users per evaluation batch x links per item: bounds the kernel's scratch memory


def kernel_batch(width: int) -> int:
    return max(1, KERNEL_BATCH_LINKS // width)


def dense_item_item_nbytes(model: ItemItemModel) -> int:
    """An unpruned item-item model as it would be held: the dense fp32 matrix, history and prior."""
    history = model.history
    history_bytes = history.indptr.nbytes + history.indices.nbytes + history.data.nbytes
    return model.weights.nbytes + history_bytes + model.prior.nbytes


def full_scorer(model: ItemItemModel):
    """The unpruned model in the serving kernel (every item keeps every link), for timing."""
    return item_item_scorer(model, ItemNeighbours.from_matrix(model.weights, model.weights.shape[1]), int8=False)


def _relative_ndcg_loss(got: RankingQuality, reference: RankingQuality) -> float:
    return 1 - got.ndcg_at_k / reference.ndcg_at_k if reference.ndcg_at_k else 0.0


def choose_prune_width(
    model: ItemItemModel, holdout: HoldOut, seen: UserItemMatrix, config: RecommenderPipelineSettings
) -> tuple[int, list[dict]]:
    """The top-N whose int8 form scores the best validation NDCG@k (ties: the smaller N), and the sweep."""
    k = config.top_k
    reference = evaluate(model.scores, holdout, seen, k)
    widest = ItemNeighbours.from_matrix(model.weights, max(config.prune_top_n_grid))
    sweep, best = [], None
    for n in sorted(config.prune_top_n_grid):
        scorer = item_item_scorer(model, widest.narrowed(n), int8=True)
        quality = evaluate(score_fn(scorer), holdout, seen, k, batch_size=kernel_batch(n))
        loss = _relative_ndcg_loss(quality, reference)
        sweep.append({"top_n": n, **quality.as_dict(k), "relative_ndcg_loss": round(loss, 6)})
        if best is None or quality.ndcg_at_k > best[1]:
            best = (n, quality.ndcg_at_k)
    chosen = best[0]
    log.info("validation: pruning to the top %d weights per item (sweep %s)", chosen, sweep)
    return chosen, sweep


def item_item_variants(
    model: ItemItemModel,
    holdout: HoldOut,
    seen: UserItemMatrix,
    prune_top_n: int,
    validation_sweep: list[dict],
    config: RecommenderPipelineSettings,
) -> ServedVariants:
    k = config.top_k
    widest = ItemNeighbours.from_matrix(model.weights, max(config.prune_top_n_grid))
    reference = Variant(
        "fp32, unpruned", evaluate(model.scores, holdout, seen, k), dense_item_item_nbytes(model), full_scorer(model)
    )
    test_sweep = []
    variants = []
    for n in sorted(config.prune_top_n_grid):
        for int8 in (False, True):
            scorer = item_item_scorer(model, widest.narrowed(n), int8=int8)
            quality = evaluate(score_fn(scorer), holdout, seen, k, batch_size=kernel_batch(n))
            name = f"{'int8' if int8 else 'fp32'} top-{n}"
            test_sweep.append({"top_n": n, "precision": "int8" if int8 else "fp32", **quality.as_dict(k),
                               "bytes": scorer.nbytes()})
            if n == prune_top_n:
                variants.append(Variant(name, quality, scorer.nbytes(), scorer))
    return ServedVariants(reference, variants, prune_top_n, validation_sweep, test_sweep)


def factor_variants(
    model: FactorModel, holdout: HoldOut, seen: UserItemMatrix, config: RecommenderPipelineSettings
) -> ServedVariants:
    k = config.top_k
    fp32 = factor_scorer(model)
    int8 = factor_scorer(model, config.cpu_int8_kernel)
    return ServedVariants(
        Variant("fp32", evaluate(score_fn(fp32), holdout, seen, k), fp32.nbytes(), fp32),
        [Variant(f"int8 ({int8.kernel})", evaluate(score_fn(int8), holdout, seen, k), int8.nbytes(), int8)],
        None,
        [],
        [],
    )


def overlap_with_reference(variants: ServedVariants, k: int) -> float:
    return mean_overlap(variants.served.quality, variants.reference.quality, k)
