"""The time hold-out never leaks the future into training, and tests only new items of known users."""

from __future__ import annotations

from datetime import date

import pandas as pd

from pipeline.recommender.split import time_split, validation_split


def purchases(*rows: tuple[str, str, str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    frame["invoice"] = "1"
    return frame


LINES = purchases(
    ("u1", "a", "2011-11-01 10:00"),
    ("u1", "b", "2011-11-10 23:59"),
    ("u1", "a", "2011-11-11 00:00"),  # repeat of a training item: not a test target
    ("u1", "c", "2011-11-20 12:00"),
    ("u1", "c", "2011-11-25 12:00"),  # same new item twice: one test pair
    ("u2", "b", "2011-10-01 09:00"),
    ("u2", "d", "2011-12-01 09:00"),
    ("u3", "a", "2011-11-15 09:00"),  # no purchase before the cutoff: cold start, not tested
)


def test_train_holds_only_purchases_before_the_cutoff() -> None:
    split = time_split(LINES, date(2011, 11, 11))
    assert (split.train["timestamp"] < pd.Timestamp("2011-11-11")).all()
    assert len(split.train) == 3


def test_test_pairs_are_new_items_of_users_seen_in_training() -> None:
    split = time_split(LINES, date(2011, 11, 11))
    assert sorted(map(tuple, split.test[["user_id", "item_id"]].to_numpy().tolist())) == [("u1", "c"), ("u2", "d")]


def test_no_test_pair_was_already_bought_in_training() -> None:
    split = time_split(LINES, date(2011, 11, 11))
    trained = set(zip(split.train["user_id"], split.train["item_id"]))
    assert not trained & set(zip(split.test["user_id"], split.test["item_id"]))
    assert split.summary()["test_users"] == 2


# --- the validation split: the test protocol applied to the purchases before the test cutoff ---

WINDOW = purchases(
    ("u1", "a", "2011-10-01 10:00"),
    ("u1", "b", "2011-10-20 10:00"),  # inside the validation window: a validation target
    ("u1", "c", "2011-11-12 10:00"),  # after the test cutoff: in neither validation part
    ("u2", "a", "2011-10-13 23:59"),
    ("u2", "a", "2011-10-15 09:00"),  # repeat of a pre-validation item: not a target
    ("u2", "d", "2011-11-10 23:59"),  # last minute before the test cutoff: a target
    ("u3", "b", "2011-10-25 09:00"),  # first purchase inside the window: cold start, not tested
)


def test_validation_cutoff_lies_validation_days_before_the_test_cutoff() -> None:
    split = validation_split(WINDOW, date(2011, 11, 11), validation_days=28)
    assert split.cutoff == pd.Timestamp("2011-10-14")


def test_validation_split_never_sees_the_test_period() -> None:
    split = validation_split(WINDOW, date(2011, 11, 11), validation_days=28)
    assert (split.train["timestamp"] < pd.Timestamp("2011-10-14")).all()
    assert sorted(map(tuple, split.test[["user_id", "item_id"]].to_numpy().tolist())) == [("u1", "b"), ("u2", "d")]
    assert "c" not in set(split.train["item_id"]) | set(split.test["item_id"])


def test_validation_split_is_the_test_split_of_the_earlier_purchases() -> None:
    before_test = WINDOW[WINDOW["timestamp"] < pd.Timestamp("2011-11-11")]
    direct = time_split(before_test, date(2011, 10, 14))
    split = validation_split(WINDOW, date(2011, 11, 11), validation_days=28)
    pd.testing.assert_frame_equal(split.train, direct.train)
    pd.testing.assert_frame_equal(split.test, direct.test)
