"""The demo's rollout table takes each version's offline quality from the built repository's
versions.json (the pipeline's record), and says when the candidate is the demo's copy."""

import json

from deploy.local.demo_rollout import version_quality


def write_versions(repository, record):
    (repository / "recommender").mkdir(parents=True)
    (repository / "recommender" / "versions.json").write_text(json.dumps(record))


def record(serving, candidate, figures):
    return {
        "serving": serving,
        "candidate": candidate,
        "versions": {
            version: {"build_id": f"b{version}", "eval": {"test_served_form": {"recall_at_10": r, "ndcg_at_10": n, "kernel": "int8"}}}
            for version, (r, n) in figures.items()
        },
    }


def test_each_built_version_shows_its_test_figures(tmp_path):
    write_versions(tmp_path, record("1", "2", {"1": (0.069369, 0.111096), "2": (0.07, 0.1)}))
    assert version_quality(tmp_path, demo_copy=False) == {
        "1": "recall@10 0.0694, NDCG@10 0.1111",
        "2": "recall@10 0.0700, NDCG@10 0.1000",
    }


def test_the_demos_copy_shows_the_serving_versions_figures_and_says_so(tmp_path):
    write_versions(tmp_path, record("3", None, {"3": (0.069369, 0.111096)}))
    assert version_quality(tmp_path, demo_copy=True) == {
        "1": "recall@10 0.0694, NDCG@10 0.1111",
        "2": "recall@10 0.0694, NDCG@10 0.1111 (a copy of 1)",
    }


def test_without_a_record_or_figures_there_is_no_quality(tmp_path):
    assert version_quality(tmp_path, demo_copy=True) == {}
    write_versions(tmp_path, {"serving": "1", "versions": {"1": {"eval": {"gate": {}}}}})
    assert version_quality(tmp_path, demo_copy=False) == {}
