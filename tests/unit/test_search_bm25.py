"""The BM25 baseline on a tiny hand case."""

from __future__ import annotations

import numpy as np

from pipeline.search.bm25 import Bm25Baseline

TITLES = [
    "LUNCH BAG RED RETROSPOT",
    "WHITE HANGING HEART T-LIGHT HOLDER",
    "JUMBO BAG RED RETROSPOT",
    "CAKE TIN PANTRY DESIGN",
]


def test_the_title_sharing_the_rarest_words_ranks_first():
    bm25 = Bm25Baseline(TITLES)
    rows, scores = bm25.search(["red retrospot lunch bag", "heart holder", "jumbo bag"], k=2)
    assert rows[:, 0].tolist() == [0, 1, 2]
    assert rows.shape == scores.shape == (3, 2)
    assert np.all(scores[:, 0] >= scores[:, 1])
    assert scores[0, 0] > scores[0, 1] > 0  # "jumbo bag red retrospot" shares three words of four


def test_no_known_word_scores_zero_and_k_is_capped_by_the_catalogue():
    rows, scores = Bm25Baseline(TITLES).search(["zebra umbrella"], k=10)
    assert rows.shape == (1, len(TITLES))
    assert np.all(scores == 0)
