"""Dense integer ids for users and items, and the user x item purchase matrix in CSR form."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Vocabulary:
    """Sorted distinct string ids; position in ``ids`` is the dense index."""

    ids: np.ndarray  # dtype object (str)

    @classmethod
    def from_values(cls, values: Iterable[str]) -> "Vocabulary":
        return cls(np.array(sorted(set(values)), dtype=object))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def index(self) -> dict[str, int]:
        return {value: i for i, value in enumerate(self.ids)}

    def lookup(self, values: Iterable[str]) -> np.ndarray:
        """Dense index of each value; -1 where the value is not in the vocabulary."""
        index = self.index
        return np.fromiter((index.get(v, -1) for v in values), dtype=np.int64)


@dataclass(frozen=True)
class UserItemMatrix:
    """Distinct (user, item) pairs as CSR: the items of user ``u`` are ``indices[indptr[u]:indptr[u+1]]``, sorted."""

    indptr: np.ndarray  # int64, n_users + 1
    indices: np.ndarray  # int32
    n_items: int

    @classmethod
    def from_pairs(cls, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> "UserItemMatrix":
        keys = np.unique(users.astype(np.int64) * n_items + items.astype(np.int64))
        user_of_pair = keys // n_items
        counts = np.bincount(user_of_pair, minlength=n_users)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(indptr=indptr, indices=(keys % n_items).astype(np.int32), n_items=n_items)

    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    @property
    def nnz(self) -> int:
        return len(self.indices)

    def row(self, user: int) -> np.ndarray:
        return self.indices[self.indptr[user] : self.indptr[user + 1]]

    def users_of_pairs(self) -> np.ndarray:
        """User index of every stored pair (the row expansion of ``indptr``)."""
        return np.repeat(np.arange(self.n_users, dtype=np.int64), np.diff(self.indptr))

    def pair_keys(self) -> np.ndarray:
        """Sorted ``user * n_items + item`` keys, for fast membership tests."""
        return self.users_of_pairs() * self.n_items + self.indices

    def item_user_counts(self) -> np.ndarray:
        """How many distinct users hold each item."""
        return np.bincount(self.indices, minlength=self.n_items)
