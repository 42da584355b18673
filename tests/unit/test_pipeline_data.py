"""Cleaning rules of the Online Retail transactions."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.data import canonical_titles, clean_transactions, is_product_code


def transactions(*rows: tuple) -> pd.DataFrame:
    columns = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["CustomerID"] = frame["CustomerID"].astype("Int64")
    return frame


RAW = transactions(
    ("536365", "85123A", "WHITE HANGING HEART", 6, "2010-12-01 08:26:00", 2.55, 17850),
    ("C536379", "85123A", "WHITE HANGING HEART", 1, "2010-12-01 09:41:00", 2.55, 17850),  # cancellation
    ("536366", "22633", "HAND WARMER", -2, "2010-12-01 08:28:00", 1.85, 17850),  # return
    ("536367", "22633", "HAND WARMER", 2, "2010-12-01 08:28:00", 0.0, 13047),  # free sample
    ("536368", "22960", "JAM MAKING SET", 3, "2010-12-01 08:34:00", 4.25, None),  # no customer
    ("536369", "POST", "POSTAGE", 1, "2010-12-01 08:45:00", 18.0, 12583),  # fee line
    ("536370", "BANK CHARGES", "Bank Charges", 1, "2010-12-01 08:45:00", 15.0, 12583),
    ("536371", "15056bl", "EDWARDIAN PARASOL BLACK", 2, "2010-12-02 10:00:00", 5.95, 12583),
)


def test_each_rule_removes_its_rows_and_counts_them_once() -> None:
    kept, removed = clean_transactions(RAW)
    assert removed == {
        "cancellation": 1,
        "non_positive_quantity": 1,
        "non_positive_price": 1,
        "missing_customer": 1,
        "non_product_code": 2,
    }
    assert sorted(zip(kept["user_id"], kept["item_id"])) == [("12583", "15056BL"), ("17850", "85123A")]


def test_ids_are_normalised_strings_and_dates_parsed() -> None:
    kept, _ = clean_transactions(RAW)
    assert kept["user_id"].tolist() == ["17850", "12583"]
    assert kept["item_id"].tolist() == ["85123A", "15056BL"]  # upper-cased
    assert str(kept["timestamp"].dtype).startswith("datetime64")


@pytest.mark.parametrize(
    ("code", "is_product"),
    [("85123A", True), ("22633", True), ("15056bl", True), ("POST", False), ("M", False), ("C2", False),
     ("DCGS0003", False), ("gift_0001_10", False), ("AMAZONFEE", False), ("1234", False)],
)
def test_product_codes_start_with_five_digits(code: str, is_product: bool) -> None:
    assert is_product_code(code) is is_product


def test_canonical_title_is_the_most_frequent_then_alphabetical() -> None:
    lines = pd.DataFrame(
        {
            "item_id": ["A", "A", "A", "B", "B", "C"],
            "description": ["RED MUG ", "RED MUG", "MUG RED", "ZEBRA", "APPLE", None],
        }
    )
    assert canonical_titles(lines) == {"A": "RED MUG", "B": "APPLE", "C": "C"}
