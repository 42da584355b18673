"""Search end to end through a real Triton: query_encoder, product_index and the product_search ensemble."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.grpc.aio as grpcclient
from tritonclient.grpc import InferInput
from tritonclient.utils import InferenceServerException

from deploy.local.settings import get_local_settings
from deploy.local.triton import TritonServer
from pipeline.search import triton_io
from pipeline.search.build import build_search
from pipeline.search.config import SearchPipelineSettings
from pipeline.search.layout import SearchPaths
from pipeline.search.serving_sources import encoding_module
from tests.support import e2e_log_path

pytestmark = pytest.mark.e2e

CONFIG = SearchPipelineSettings()
MODELS = (CONFIG.encoder_model_name, CONFIG.index_model_name, CONFIG.ensemble_model_name)


@pytest.fixture(scope="module")
def built() -> SearchPaths:
    return build_search(config=CONFIG).paths


@pytest.fixture(scope="module")
def catalogue(built: SearchPaths) -> dict[str, str]:
    with np.load(built.index_file) as stored:
        return dict(zip(stored["item_ids"].tolist(), stored["titles"].tolist()))


@pytest.fixture(scope="module")
def triton(built: SearchPaths) -> Iterator[TritonServer]:
    """Its own server, loading only the three search models (explicit model control)."""
    server = TritonServer(
        get_local_settings().model_repository,
        models=MODELS,
        log_path=e2e_log_path("search-triton"),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def client(triton: TritonServer):
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    yield client
    await client.close()


async def search(client, query: str, k: int):
    result = await client.infer(CONFIG.ensemble_model_name, **triton_io.ensemble_request(query, k))
    return (
        triton_io.decoded(result.as_numpy("ITEM_IDS")),
        triton_io.decoded(result.as_numpy("ITEM_TITLES")),
        result.as_numpy("SCORES").reshape(-1),
        result,
    )


async def test_a_real_query_returns_k_ranked_catalogue_products(client, catalogue):
    ids, titles, scores, result = await search(client, "red retrospot lunch bag", 10)
    assert len(ids) == len(titles) == len(scores) == 10
    assert len(set(ids)) == 10
    assert all(catalogue[item] == title for item, title in zip(ids, titles))
    assert np.all(np.diff(scores) <= 0)
    assert "LUNCH BAG" in titles[0] and "RETROSPOT" in titles[0]
    assert int(result.as_numpy("ENCODER_COMPUTE_NS")[0, 0]) > 0
    assert int(result.as_numpy("INDEX_COMPUTE_NS")[0, 0]) > 0


async def test_a_query_without_lexical_match_still_returns_k_products(client, catalogue):
    query = "timepiece"
    words = {word for title in catalogue.values() for word in re.findall(r"[a-z0-9]+", title.lower())}
    assert query not in words  # nothing for a keyword engine to match
    ids, titles, scores, _ = await search(client, query, 10)
    assert len(ids) == 10 and all(item in catalogue for item in ids)
    assert np.all(np.isfinite(scores)) and np.all(np.diff(scores) <= 0)
    assert any("CLOCK" in title for title in titles)


async def test_k_beyond_the_catalogue_returns_the_catalogue(client, catalogue):
    ids, _, _, _ = await search(client, "candle", len(catalogue) + 50)
    assert sorted(ids) == sorted(catalogue)


async def test_compute_ns_of_each_model_is_positive(client):
    encoded = await client.infer(CONFIG.encoder_model_name, **triton_io.encoder_request("jumbo bag"))
    assert int(encoded.as_numpy("COMPUTE_NS")[0, 0]) > 0
    found = await client.infer(CONFIG.index_model_name, **triton_io.index_request(encoded.as_numpy("EMBEDDING"), 3))
    assert int(found.as_numpy("COMPUTE_NS")[0, 0]) > 0
    assert found.as_numpy("ITEM_IDS").shape == (1, 3)


async def test_embeddings_are_unit_norm_and_match_the_built_int8_encoder(client, built):
    queries = ["red retrospot lunch bag", "a", "set of 3 cake tins pantry design " * 20]  # the last one is truncated
    tensor = InferInput("QUERY", [len(queries), 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[q.encode()] for q in queries], dtype=np.object_))
    result = await client.infer(CONFIG.encoder_model_name, [tensor], outputs=triton_io.requested(triton_io.ENCODER_OUTPUTS))
    served = result.as_numpy("EMBEDDING")
    assert served.shape == (3, 384) and served.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)
    encoding = encoding_module()
    tokenizer = encoding.load_tokenizer(built.encoder.artifacts_dir / "tokenizer.json", CONFIG.max_length)
    local = encoding.OnnxQueryEncoder(built.onnx_file, tokenizer, 1).encode(queries)
    np.testing.assert_allclose(served, local, atol=1e-4)


def batch_counts(stats) -> dict[int, int]:
    return {b.batch_size: b.compute_infer.count for b in stats.model_stats[0].batch_stats}


async def test_concurrent_queries_of_different_lengths_are_batched_and_answered(client, catalogue):
    words = "white hanging heart t-light holder vintage doily jumbo bag pantry design".split()
    queries = [" ".join(words[: 1 + i % len(words)] * (1 + i // 8)) for i in range(32)]  # 1 to 44 words
    ks = [1 + i % 12 for i in range(32)]
    before = await client.get_inference_statistics(CONFIG.encoder_model_name)
    answers = await asyncio.gather(*(search(client, q, k) for q, k in zip(queries, ks)))
    after = await client.get_inference_statistics(CONFIG.encoder_model_name)
    for (ids, titles, scores, result), k in zip(answers, ks):
        assert len(ids) == len(titles) == len(scores) == k
        assert all(catalogue[item] == title for item, title in zip(ids, titles))
        assert np.all(np.diff(scores) <= 0)
        assert int(result.as_numpy("ENCODER_COMPUTE_NS")[0, 0]) > 0
    grown = {size: count - batch_counts(before).get(size, 0) for size, count in batch_counts(after).items()}
    assert any(size > 1 and count > 0 for size, count in grown.items()), grown


async def test_a_batched_embedding_stays_close_to_the_one_computed_alone(client):
    """Dynamic int8 quantises activations with one scale per batch, so equality is not expected:
    the build measured a mean cosine of ~0.991 (min ~0.98) between alone and batch-of-32 embeddings."""
    queries = [f"{'vintage ' * (i % 9)}heart t-light holder {i}" for i in range(24)]
    alone = [await client.infer(CONFIG.encoder_model_name, **triton_io.encoder_request(q)) for q in queries]
    batched = await asyncio.gather(
        *(client.infer(CONFIG.encoder_model_name, **triton_io.encoder_request(q)) for q in queries)
    )
    a = np.concatenate([r.as_numpy("EMBEDDING") for r in alone])
    b = np.concatenate([r.as_numpy("EMBEDDING") for r in batched])
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert np.min(np.sum(a * b, axis=1)) > 0.97


async def test_a_bad_request_fails_alone(client):
    good = search(client, "doormat", 5)
    bad_k = client.infer(CONFIG.ensemble_model_name, **triton_io.ensemble_request("doormat", 0))
    bad_text = InferInput("QUERY", [1, 1], "BYTES")
    bad_text.set_data_from_numpy(np.array([[b"\xff\xfe broken utf-8"]], dtype=np.object_))
    bad_utf8 = client.infer(CONFIG.encoder_model_name, [bad_text], outputs=triton_io.requested(triton_io.ENCODER_OUTPUTS))
    ok, k_error, utf8_error = await asyncio.gather(good, bad_k, bad_utf8, return_exceptions=True)
    assert len(ok[0]) == 5
    assert isinstance(k_error, InferenceServerException) and "K must be at least 1" in str(k_error)
    assert isinstance(utf8_error, InferenceServerException) and "QUERY" in str(utf8_error)


async def test_a_request_of_several_rows_answers_each_row_with_its_own_k(client, catalogue):
    """padded_rows: one request, one query and one k per row; shorter rows padded at their end."""
    queries = ["red retrospot lunch bag", "doormat", "jumbo bag", "white hanging heart t-light holder"]
    ks = [3, 10, 1, 6]
    text = InferInput("QUERY", [len(queries), 1], "BYTES")
    text.set_data_from_numpy(np.array([[q.encode()] for q in queries], dtype=np.object_))
    k = InferInput("K", [len(ks), 1], "INT32")
    k.set_data_from_numpy(np.array([[value] for value in ks], dtype=np.int32))
    config = await client.get_model_config(CONFIG.ensemble_model_name, as_json=True)
    assert config["config"]["parameters"]["padded_rows"]["string_value"] == "true"
    result = await client.infer(CONFIG.ensemble_model_name, [text, k])
    ids, titles, scores = (result.as_numpy(name) for name in ("ITEM_IDS", "ITEM_TITLES", "SCORES"))
    assert ids.shape == titles.shape == scores.shape == (len(queries), max(ks))
    for row, (query, row_k) in enumerate(zip(queries, ks)):
        assert all(catalogue[i.decode()] == t.decode() for i, t in zip(ids[row, :row_k], titles[row, :row_k]))
        assert np.all(np.diff(scores[row, :row_k]) <= 0)
        assert ids[row, row_k:].tolist() == titles[row, row_k:].tolist() == [b""] * (max(ks) - row_k)
        assert scores[row, row_k:].tolist() == [0.0] * (max(ks) - row_k)
        alone, _, _, _ = await search(client, query, row_k)
        assert ids[row, 0].decode() in alone  # the same query's best match (int8 scales per batch: not bit-equal)
    for name in ("ENCODER_COMPUTE_NS", "INDEX_COMPUTE_NS"):
        compute = result.as_numpy(name)
        assert compute.shape == (len(queries), 1) and (compute > 0).all()
        assert len(set(compute.reshape(-1).tolist())) == 1  # the batch's compute shared equally by its rows
