"""The searchable catalogue and the descriptions each product was actually sold under.

The catalogue is every cleaned stock code with its canonical title, exactly as
:func:`pipeline.data.load_clean_data` defines them (so search and the recommender agree on ids
and titles). The judged set (``judged.py``) needs more: every description a code carried on a
real sale line of the raw file, i.e. a line that survives the first three cleaning rules of
``pipeline.data`` (no cancellation, quantity > 0, price > 0). Lines without a customer count:
they are sales all the same. Zero-price stock adjustments, where the warehouse notes
("damaged", "check", "?") live, do not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.data import CleanedData, load_clean_data, read_transactions, removal_masks

SALE_RULES = ("cancellation", "non_positive_quantity", "non_positive_price")


@dataclass(frozen=True)
class Catalogue:
    """Products in a fixed order (sorted by stock code): row i of the index is ``item_ids[i]``."""

    item_ids: tuple[str, ...]
    titles: tuple[str, ...]

    @classmethod
    def from_titles(cls, titles: dict[str, str]) -> Catalogue:
        ordered = sorted(titles)
        return cls(item_ids=tuple(ordered), titles=tuple(titles[item] for item in ordered))

    def __len__(self) -> int:
        return len(self.item_ids)

    def titles_by_id(self) -> dict[str, str]:
        return dict(zip(self.item_ids, self.titles))


@dataclass(frozen=True)
class SearchData:
    catalogue: Catalogue
    sale_descriptions: dict[str, tuple[str, ...]]  # stock code -> distinct descriptions on sale lines
    all_descriptions: dict[str, tuple[str, ...]]  # stock code -> distinct descriptions on any line
    cleaned: CleanedData


def sale_lines(raw: pd.DataFrame) -> pd.Series:
    """True for a line that passes the first three cleaning rules of ``pipeline.data``."""
    masks = removal_masks(raw)
    sale = pd.Series(True, index=raw.index)
    for rule in SALE_RULES:
        sale &= ~masks[rule].fillna(False).astype(bool)
    return sale


def descriptions_by_code(raw: pd.DataFrame, lines: pd.Series | None = None) -> dict[str, tuple[str, ...]]:
    """Distinct stripped descriptions per upper-cased stock code, over the selected ``lines``."""
    chosen = raw if lines is None else raw[lines]
    frame = pd.DataFrame(
        {
            "item_id": chosen["StockCode"].astype(str).str.strip().str.upper(),
            "description": chosen["Description"].astype("string").str.strip(),
        }
    ).dropna()
    frame = frame[frame["description"] != ""].drop_duplicates()
    return {item: tuple(sorted(group)) for item, group in frame.groupby("item_id")["description"]}


def load_search_data(data_file: Path) -> SearchData:
    cleaned = load_clean_data(Path(data_file))
    raw = read_transactions(Path(data_file))
    return SearchData(
        catalogue=Catalogue.from_titles(cleaned.titles),
        sale_descriptions=descriptions_by_code(raw, sale_lines(raw)),
        all_descriptions=descriptions_by_code(raw),
        cleaned=cleaned,
    )
