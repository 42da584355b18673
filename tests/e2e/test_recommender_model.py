"""The recommender model in the real Triton server, called with tritonclient over gRPC."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aio_grpcclient
from tritonclient.utils import InferenceServerException

from deploy.local.triton import TritonServer
from tests.support import e2e_log_path

pytestmark = pytest.mark.e2e

MODEL = "recommender"
OUTPUTS = ("ITEM_IDS", "ITEM_TITLES", "SCORES", "COMPUTE_NS", "PERSONALIZED")


@dataclass(frozen=True)
class Answer:
    item_ids: list[str]
    titles: list[str]
    scores: list[float]
    compute_ns: int
    personalized: bool


def inputs(
    user_id: str, k: int, exclude: list[str] | None = None, client_module=grpcclient, recent: list[str] | None = None
) -> list:
    def tensor(name: str, array: np.ndarray, datatype: str):
        infer_input = client_module.InferInput(name, list(array.shape), datatype)
        infer_input.set_data_from_numpy(array)
        return infer_input

    tensors = [
        tensor("USER_ID", np.array([[user_id.encode()]], dtype=object), "BYTES"),
        tensor("K", np.array([[k]], dtype=np.int32), "INT32"),
    ]
    if exclude:  # the gateway omits the optional input when there is nothing to exclude
        tensors.append(tensor("EXCLUDE_ITEM_IDS", np.array([[i.encode() for i in exclude]], dtype=object), "BYTES"))
    if recent:
        tensors.append(tensor("RECENT_ITEM_IDS", np.array([[i.encode() for i in recent]], dtype=object), "BYTES"))
    return tensors


def answer(result) -> Answer:
    arrays = {name: result.as_numpy(name) for name in OUTPUTS}
    assert arrays["ITEM_IDS"].shape == arrays["ITEM_TITLES"].shape == arrays["SCORES"].shape
    assert arrays["ITEM_IDS"].shape[0] == 1
    return Answer(
        item_ids=[i.decode() for i in arrays["ITEM_IDS"][0]],
        titles=[t.decode() for t in arrays["ITEM_TITLES"][0]],
        scores=arrays["SCORES"][0].tolist(),
        compute_ns=int(arrays["COMPUTE_NS"].reshape(-1)[0]),
        personalized=bool(arrays["PERSONALIZED"].reshape(-1)[0]),
    )


@pytest.fixture(scope="module")
def client(triton_server):
    with grpcclient.InferenceServerClient(triton_server.grpc_url) as client:
        yield client


def recommend(
    client, user_id: str, k: int, exclude: list[str] | None = None, recent: list[str] | None = None
) -> Answer:
    return answer(client.infer(MODEL, inputs(user_id, k, exclude, recent=recent)))


def test_model_reports_the_build_it_serves(client, recommender_export) -> None:
    config = client.get_model_config(MODEL, as_json=True)["config"]
    assert config["parameters"]["build_id"]["string_value"] == recommender_export.build_id
    assert config["max_batch_size"] == 64


def test_returns_k_catalog_items_with_titles_and_descending_scores(client, buyers, catalog) -> None:
    result = recommend(client, buyers[0], k=10)
    assert len(result.item_ids) == 10 == len(set(result.item_ids))
    assert all(catalog[item] == title for item, title in zip(result.item_ids, result.titles))
    assert result.scores == sorted(result.scores, reverse=True)
    assert result.personalized
    assert result.compute_ns > 0


def test_never_returns_bought_or_excluded_items(client, buyers, bought_by) -> None:
    for user in buyers[:5]:
        first = recommend(client, user, k=30)
        excluded = first.item_ids[:7] + ["NO-SUCH-ITEM"]  # unknown ids are ignored
        second = recommend(client, user, k=30, exclude=excluded)
        assert len(second.item_ids) == 30
        assert not set(first.item_ids) & bought_by[user]
        assert not set(second.item_ids) & (bought_by[user] | set(excluded))
        assert second.item_ids[:10] == first.item_ids[7:17]  # exclusion only removes, never reorders


def test_unknown_user_gets_the_popular_items_minus_exclusions(client, recommender_export) -> None:
    popularity, ranking = recommender_export.popularity, recommender_export.popularity_ranking

    def assert_most_popular(result: Answer, candidates: list[str]) -> None:
        # Equally popular items may come in any order: compare the popularity of each rank.
        assert not result.personalized and result.compute_ns > 0
        assert result.scores == pytest.approx([popularity[item] for item in candidates[:10]])
        assert [popularity[item] for item in result.item_ids] == pytest.approx(result.scores)

    assert_most_popular(recommend(client, "no-such-customer", k=10), ranking)
    excluded = recommend(client, "no-such-customer", k=10, exclude=ranking[:3])
    assert not set(excluded.item_ids) & set(ranking[:3])
    assert_most_popular(excluded, ranking[3:])


def test_recent_purchases_count_without_retraining_and_are_not_recommended(
    client, buyers, bought_by, recommender_export
) -> None:
    user = buyers[0]
    before = recommend(client, user, k=20)
    recent = before.item_ids[:2]  # the user has just bought the two best suggestions
    after = recommend(client, user, k=20, recent=recent + ["NO-SUCH-ITEM"])
    assert after.personalized and not set(after.item_ids) & (set(recent) | bought_by[user])
    stranger = recommend(client, "no-such-customer", k=10, recent=recent)
    assert not set(stranger.item_ids) & set(recent)
    if recommender_export.evaluation["served"]["scorer_kind"] == "item-item":
        assert after.item_ids != before.item_ids[2:]  # the new purchases moved the ranking, not only removed items
        assert stranger.personalized  # an unknown visitor with purchases gets recommendations from them
    else:
        assert not stranger.personalized


def test_k_larger_than_the_catalogue_returns_what_is_left(client, catalog, buyers, bought_by) -> None:
    everything = recommend(client, "no-such-customer", k=100_000, exclude=["22423"])
    assert len(everything.item_ids) == len(catalog) - 1
    user = buyers[0]
    remaining = recommend(client, user, k=100_000)
    assert set(remaining.item_ids) == set(catalog) - bought_by[user]


def test_a_malformed_request_fails_alone(client, buyers) -> None:
    with pytest.raises(InferenceServerException, match="K must be a positive integer"):
        recommend(client, buyers[0], k=0)
    assert len(recommend(client, buyers[0], k=3).item_ids) == 3  # the model is still serving


async def test_concurrent_ragged_requests_are_batched_and_answered_individually(
    triton_server, buyers, bought_by, catalog
) -> None:
    item_ids = sorted(catalog)
    requests = []
    for n, user in enumerate(buyers[:24] + ["stranger-1", "stranger-2"]):
        exclude = item_ids[n * 3 : n * 3 + n % 6]  # 0..5 items, omitted when empty
        requests.append((user, 5 + n % 4, exclude))
    async with aio_grpcclient.InferenceServerClient(triton_server.grpc_url) as client:
        before = await client.get_inference_statistics(MODEL, as_json=True)
        good = [client.infer(MODEL, inputs(u, k, ex, aio_grpcclient)) for u, k, ex in requests]
        bad = [client.infer(MODEL, inputs(buyers[0], 0, None, aio_grpcclient))]
        results = await asyncio.gather(*good, *bad, return_exceptions=True)
        after = await client.get_inference_statistics(MODEL, as_json=True)

    assert isinstance(results[-1], InferenceServerException)
    for (user, k, exclude), result in zip(requests, results[:-1]):
        assert not isinstance(result, Exception), result
        got = answer(result)
        assert len(got.item_ids) == k
        assert got.personalized == (user in bought_by)
        assert not set(got.item_ids) & (set(exclude) | bought_by.get(user, frozenset()))
        assert got.compute_ns > 0

    def counts(stats: dict) -> tuple[int, int]:
        model = stats["model_stats"][0]
        return int(model.get("inference_count", 0)), int(model.get("execution_count", 0))

    inferences, executions = (a - b for a, b in zip(counts(after), counts(before)))
    assert inferences == len(requests) + 1  # the malformed request reached the model too
    assert executions < inferences  # dynamic batching put several requests into one execute()


def rows_inputs(rows: list[tuple[str, int, list[str]]]) -> list:
    """One request of several rows, EXCLUDE_ITEM_IDS padded with empty strings (padded_rows)."""
    width = max(len(exclude) for _, _, exclude in rows)
    users = np.array([[user.encode()] for user, _, _ in rows], dtype=object)
    ks = np.array([[k] for _, k, _ in rows], dtype=np.int32)
    tensors = [grpcclient.InferInput("USER_ID", list(users.shape), "BYTES"), grpcclient.InferInput("K", list(ks.shape), "INT32")]
    tensors[0].set_data_from_numpy(users)
    tensors[1].set_data_from_numpy(ks)
    if width:
        exclude = np.array([[i.encode() for i in ex] + [b""] * (width - len(ex)) for _, _, ex in rows], dtype=object)
        tensors.append(grpcclient.InferInput("EXCLUDE_ITEM_IDS", list(exclude.shape), "BYTES"))
        tensors[2].set_data_from_numpy(exclude)
    return tensors


def test_the_config_declares_the_several_rows_contract(client) -> None:
    config = client.get_model_config(MODEL, as_json=True)["config"]
    assert config["parameters"]["padded_rows"]["string_value"] == "true"
    assert int(config["max_batch_size"]) > 1


def test_each_row_of_a_request_is_answered_as_if_it_came_alone(client, buyers, bought_by, catalog) -> None:
    item_ids = sorted(catalog)
    rows = [
        (buyers[0], 3, []),
        (buyers[1], 7, item_ids[:4]),
        ("stranger-1", 5, item_ids[10:11]),
        (buyers[2], 10, []),
        (buyers[3], 1, item_ids[20:22] + ["not-an-item"]),
    ]
    result = client.infer(MODEL, rows_inputs(rows))
    ids, titles, scores = (result.as_numpy(name) for name in ("ITEM_IDS", "ITEM_TITLES", "SCORES"))
    compute_ns, personalized = result.as_numpy("COMPUTE_NS"), result.as_numpy("PERSONALIZED")
    assert ids.shape == titles.shape == scores.shape == (len(rows), 10)  # the widest row's k
    assert compute_ns.shape == personalized.shape == (len(rows), 1)
    for row, (user, k, exclude) in enumerate(rows):
        alone = recommend(client, user, k, exclude)
        assert [i.decode() for i in ids[row, :k]] == alone.item_ids
        assert [t.decode() for t in titles[row, :k]] == alone.titles
        assert scores[row, :k].tolist() == pytest.approx(alone.scores)
        assert ids[row, k:].tolist() == titles[row, k:].tolist() == [b""] * (10 - k)  # padding at the end
        assert scores[row, k:].tolist() == [0.0] * (10 - k)
        assert bool(personalized[row, 0]) == (user in bought_by)
    assert (compute_ns > 0).all()
    assert len(set(compute_ns.reshape(-1).tolist())) == 1  # the batch's compute shared equally by its rows


def test_a_malformed_row_fails_its_whole_request(client, buyers) -> None:
    with pytest.raises(InferenceServerException, match="K must be a positive integer"):
        client.infer(MODEL, rows_inputs([(buyers[0], 3, []), (buyers[1], 0, [])]))
    assert len(recommend(client, buyers[1], k=2).item_ids) == 2


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_stopping_the_server_ends_its_model_stubs_too(model_repository, how: str) -> None:
    server = TritonServer(model_repository, models=[MODEL], log_path=e2e_log_path(how))
    server.start()
    pgid = server.pid
    assert len(group_members(pgid)) >= 2  # the server and at least one Python-backend stub
    getattr(server, how)()
    assert not server.is_running()
    # SIGKILL is delivered to the whole group at once, but the stubs take a moment to die.
    deadline = time.monotonic() + 5.0
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert group_members(pgid) == []
