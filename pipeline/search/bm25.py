"""The lexical baseline: BM25 (bm25s, default Lucene variant, k1=1.5, b=0.75) over the same titles.

Tokens are lower-cased words of two or more word characters, English stop words removed, no
stemming (PyStemmer is not installed); the same tokenizer and vocabulary serve titles and
queries. A query without a single known token scores every title 0; it still gets a ranking
(by row order), which simply counts as a miss.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import bm25s
import numpy as np
from bm25s.tokenization import Tokenizer

logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG


class Bm25Baseline:
    def __init__(self, titles: Sequence[str]) -> None:
        self.n_documents = len(titles)
        self.tokenizer = Tokenizer(stopwords="english")
        corpus = self.tokenizer.tokenize(list(titles), return_as="tuple", show_progress=False)
        self.retriever = bm25s.BM25()
        self.retriever.index(corpus, show_progress=False)

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Row numbers int64 ``[len(queries), min(k, n)]`` and BM25 scores, best first."""
        k = min(k, self.n_documents)
        ids = self.tokenizer.tokenize(list(queries), update_vocab=False, return_as="ids", show_progress=False)
        vocabulary = {index: token for token, index in self.tokenizer.get_vocab_dict().items()}
        tokens = [[vocabulary[i] for i in query] for query in ids]
        rows, scores = self.retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        return np.asarray(rows, dtype=np.int64), np.asarray(scores, dtype=np.float32)
