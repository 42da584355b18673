"""Reads a built recommender back from its model directory as plain Python data (for tests, demos and reports)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.recommender.export import RecommenderDir
from pipeline.version_store import serving_dir


@dataclass(frozen=True)
class ExportedRecommender:
    build_id: str
    titles: dict[str, str]  # item id -> canonical title, the whole catalogue
    seen: dict[str, frozenset[str]]  # user id -> every item the user bought (all cleaned data)
    popularity_ranking: list[str]  # item ids, most bought first (ties by item index)
    popularity: dict[str, float]  # item id -> share of customers who bought it (the fallback's score)
    evaluation: dict

    @property
    def item_ids(self) -> list[str]:
        return list(self.titles)

    @property
    def user_ids(self) -> list[str]:
        return list(self.seen)


def load_exported(repository: Path, model_name: str = "recommender", version: int | None = None) -> ExportedRecommender:
    """The serving version, or ``version``."""
    model = RecommenderDir(repository=Path(repository), name=model_name)
    paths = serving_dir(model) if version is None else model.at_version(version)
    manifest = json.loads(paths.manifest_file.read_text())
    with np.load(paths.weights_file) as data:
        item_ids = data["item_ids"].tolist()
        titles = dict(zip(item_ids, data["item_titles"].tolist()))
        indptr, indices = data["seen_indptr"], data["seen_indices"]
        seen = {
            user: frozenset(item_ids[i] for i in indices[indptr[row] : indptr[row + 1]])
            for row, user in enumerate(data["user_ids"].tolist())
        }
        ranking = [item_ids[i] for i in data["popularity_ranking"]]
        popularity = dict(zip(item_ids, data["popularity_scores"].tolist()))
    return ExportedRecommender(
        build_id=manifest["build_id"],
        titles=titles,
        seen=seen,
        popularity_ranking=ranking,
        popularity=popularity,
        evaluation=json.loads(paths.eval_file.read_text()),
    )
