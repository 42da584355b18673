"""Time-based hold-out: train on purchases before a cutoff day, test on what users bought after it.

The test set only asks a model what it can be asked in production: the *new* items that
customers it already knows go on to buy. Held-out lines of customers without a purchase before
the cutoff are dropped (cold start is the popularity fallback's job), and so are items a customer
had already bought before the cutoff (those are excluded from every ranking anyway).

The validation split is made the same way from the purchases before the test cutoff alone, with
its own cutoff ``validation_days`` earlier: hyper-parameters are chosen on it, and the test split
is scored once with models refitted on everything before the test cutoff (train + validation).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd


@dataclass(frozen=True)
class TimeSplit:
    cutoff: pd.Timestamp
    train: pd.DataFrame  # purchase lines with timestamp < cutoff
    test: pd.DataFrame  # distinct (user_id, item_id) pairs, see module docstring

    def summary(self) -> dict[str, int | str]:
        return {
            "cutoff": self.cutoff.isoformat(),
            "train_rows": len(self.train),
            "train_users": int(self.train["user_id"].nunique()),
            "train_items": int(self.train["item_id"].nunique()),
            "test_users": int(self.test["user_id"].nunique()),
            "test_pairs": len(self.test),
        }


def time_split(interactions: pd.DataFrame, cutoff: date) -> TimeSplit:
    cutoff_ts = pd.Timestamp(cutoff)
    before = interactions["timestamp"] < cutoff_ts
    train = interactions[before]
    later = interactions.loc[~before, ["user_id", "item_id"]].drop_duplicates()

    known_users = set(train["user_id"].unique())
    later = later[later["user_id"].isin(known_users)]
    seen_pairs = train[["user_id", "item_id"]].drop_duplicates()
    merged = later.merge(seen_pairs, on=["user_id", "item_id"], how="left", indicator=True)
    test = merged.loc[merged["_merge"] == "left_only", ["user_id", "item_id"]].reset_index(drop=True)
    return TimeSplit(cutoff=cutoff_ts, train=train.reset_index(drop=True), test=test)


def validation_split(interactions: pd.DataFrame, test_cutoff: date, validation_days: int) -> TimeSplit:
    """The test protocol applied to the purchases before ``test_cutoff``, cut ``validation_days`` earlier."""
    before_test = interactions[interactions["timestamp"] < pd.Timestamp(test_cutoff)]
    return time_split(before_test, test_cutoff - timedelta(days=validation_days))
