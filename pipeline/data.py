"""Loading and cleaning the Online Retail transactions (UCI, CC BY 4.0; see data/online-retail/SOURCE.md).

Cleaning rules, applied in this order (each row removed is counted under the first rule it hits):

1. ``cancellation``: ``InvoiceNo`` starts with ``C``.
2. ``non_positive_quantity``: ``Quantity <= 0`` (returns and stock adjustments).
3. ``non_positive_price``: ``UnitPrice <= 0`` (samples, write-offs).
4. ``missing_customer``: no ``CustomerID`` (nothing to personalise).
5. ``non_product_code``: the stock code does not start with a 5-digit number. Every product code
   in the file is 5 digits plus an optional letter suffix (``85123A``); what does not match is a
   fee, postage or adjustment line (``POST``, ``DOT``, ``M``, ``BANK CHARGES``, ``AMAZONFEE``,
   ``C2``, ``D``, ``S``, ``PADS``, ``CRUK``, ``B``, ``DCGS…``, ``gift_…``).

Rules 1-4 are the "usual cleaning" of SOURCE.md and give its figures exactly (397,884 rows,
4,338 customers, 3,665 stock codes, 18,532 invoices, 266,792 customer-item pairs). Rule 5 then
removes 1,547 more rows (POST 1,099, M 284, C2 133, DOT 16, BANK CHARGES 12, PADS 3; the other
non-product codes only occur on rows already removed), 6 codes, 130 invoices that held nothing
else, and 4 customers whose only purchases were such lines: 396,337 rows, 4,334 customers,
3,659 stock codes, 18,402 invoices, 266,221 pairs.

Stock codes are upper-cased (``15056bl`` and ``15056BL`` are the same product; after cleaning no
two codes collide, so the figures are unchanged). Each code gets one canonical title: its most
frequent description among the cleaned rows (ties: alphabetically first).
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

PRODUCT_CODE = re.compile(r"^\d{5}")
CANCELLATION_PREFIX = "C"
READ_DTYPES = {"InvoiceNo": str, "StockCode": str, "CustomerID": "Int64", "Description": str}


@dataclass(frozen=True)
class DatasetStats:
    raw_rows: int
    rows: int
    customers: int
    items: int
    invoices: int
    distinct_pairs: int
    first_purchase: str
    last_purchase: str
    removed_rows: dict[str, int]

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CleanedData:
    """One row per purchase line: ``user_id``, ``item_id`` (str), ``timestamp`` (datetime64), ``invoice``."""

    interactions: pd.DataFrame
    titles: dict[str, str]
    stats: DatasetStats


def read_transactions(path: Path) -> pd.DataFrame:
    """The raw file, every row and column, with the dtypes SOURCE.md prescribes."""
    return pd.read_csv(path, dtype=READ_DTYPES)


def is_product_code(code: str) -> bool:
    return bool(PRODUCT_CODE.match(code))


def removal_masks(raw: pd.DataFrame) -> dict[str, pd.Series]:
    """One boolean mask per cleaning rule (True = rule says drop), in application order."""
    codes = raw["StockCode"].fillna("").astype(str).str.strip()
    return {
        "cancellation": raw["InvoiceNo"].astype(str).str.startswith(CANCELLATION_PREFIX),
        "non_positive_quantity": raw["Quantity"] <= 0,
        "non_positive_price": raw["UnitPrice"] <= 0,
        "missing_customer": raw["CustomerID"].isna(),
        "non_product_code": ~codes.str.match(PRODUCT_CODE.pattern),
    }


def clean_transactions(raw: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Applies the cleaning rules; returns the kept rows and how many rows each rule removed."""
    keep = pd.Series(True, index=raw.index)
    removed: dict[str, int] = {}
    for rule, drop in removal_masks(raw).items():
        drop = drop.fillna(False).astype(bool)
        removed[rule] = int((keep & drop).sum())
        keep &= ~drop
    kept = raw[keep]
    interactions = pd.DataFrame(
        {
            "user_id": kept["CustomerID"].astype("int64").astype(str),
            "item_id": kept["StockCode"].astype(str).str.strip().str.upper(),
            "timestamp": pd.to_datetime(kept["InvoiceDate"]),
            "invoice": kept["InvoiceNo"].astype(str),
            "description": kept["Description"],
        }
    ).reset_index(drop=True)
    return interactions, removed


def canonical_titles(interactions: pd.DataFrame) -> dict[str, str]:
    """Most frequent (stripped) description per item; ties go to the alphabetically first one."""
    described = interactions.assign(title=interactions["description"].astype("string").str.strip())
    counts = (
        described.dropna(subset=["title"])
        .groupby(["item_id", "title"], sort=False)
        .size()
        .reset_index(name="n")
        .sort_values(["item_id", "n", "title"], ascending=[True, False, True])
        .drop_duplicates("item_id")
    )
    titles = dict(zip(counts["item_id"], counts["title"]))
    # An item whose every line lacks a description is still sellable: its code stands in.
    for item in interactions["item_id"].unique():
        titles.setdefault(item, item)
    return titles


def load_clean_data(path: Path) -> CleanedData:
    raw = read_transactions(path)
    interactions, removed = clean_transactions(raw)
    titles = canonical_titles(interactions)
    interactions = interactions.drop(columns="description")
    stats = DatasetStats(
        raw_rows=len(raw),
        rows=len(interactions),
        customers=interactions["user_id"].nunique(),
        items=interactions["item_id"].nunique(),
        invoices=interactions["invoice"].nunique(),
        distinct_pairs=len(interactions.drop_duplicates(["user_id", "item_id"])),
        first_purchase=str(interactions["timestamp"].min()),
        last_purchase=str(interactions["timestamp"].max()),
        removed_rows=removed,
    )
    log.info(
        "cleaned %s: %d of %d rows kept, %d customers, %d items (removed %s)",
        path.name, stats.rows, stats.raw_rows, stats.customers, stats.items, removed,
    )
    return CleanedData(interactions=interactions, titles=titles, stats=stats)
