"""The judged-set rules of pipeline/search/judged.py, on hand-made descriptions."""

from __future__ import annotations

import pandas as pd

from pipeline.search.catalogue import descriptions_by_code, sale_lines
from pipeline.search.config import DEFAULT_JUNK_MARKERS
from pipeline.search.judged import derive_judged_set, is_junk, junk_pattern, normalise

TITLES = {
    "20725": "LUNCH BAG RED RETROSPOT",
    "23035": "DRAWER KNOB CERAMIC IVORY",
    "21507": "ELEPHANT, BIRTHDAY CARD,",
    "35817P": "ACRYLIC JEWEL SNOWFLAKE,PINK",
    "35815P": "ACRYLIC JEWEL SNOWFLAKE,PINK",
    "23235": "STORAGE TIN VINTAGE LEAF",
    "23244": "ROUND STORAGE TIN VINTAGE LEAF",
    "84997B": "CHILDRENS CUTLERY RETROSPOT RED",
}
PATTERN = junk_pattern(DEFAULT_JUNK_MARKERS)


def judged(sales: dict[str, list[str]], everything: dict[str, list[str]] | None = None):
    return derive_judged_set(sales, TITLES, DEFAULT_JUNK_MARKERS, 2, everything)


def test_normalise_ignores_case_punctuation_and_spacing():
    assert normalise("ELEPHANT, BIRTHDAY CARD,") == normalise("elephant birthday   card") == "elephant birthday card"


def test_warehouse_notes_are_junk_and_titles_are_not():
    notes = ("?", "damaged", "Damages?", "check", "wet pallet-thrown away", "sold as set on dotcom", "had been put aside")
    for note in notes:
        assert is_junk(note, PATTERN), note
    titles = ("RED RETROSPOT LUNCH BAG", "3 TRADITIONAl BISCUIT CUTTERS  SET", "CHRISTMAS STOCKING", "SET OF 36 DOILIES")
    for title in titles:
        assert not is_junk(title, PATTERN), title


def test_a_retitling_becomes_a_lowercase_query_for_its_code():
    result = judged({"20725": ["LUNCH BAG RED RETROSPOT", "RED RETROSPOT  LUNCH BAG"]})
    assert [(q.text, q.relevant) for q in result.queries] == [("red retrospot lunch bag", frozenset({"20725"}))]
    assert result.candidates == 1  # the canonical title itself is no candidate


def test_each_rule_drops_and_counts_its_candidates():
    result = judged(
        {
            "21507": ["ELEPHANT BIRTHDAY CARD"],  # same as the title once normalised
            "23035": ["DOORKNOB CERAMIC IVORY", "damaged", "?"],  # one query, two notes
            "84997B": ["CUTLERY"],  # too short
            "23244": ["STORAGE TIN VINTAGE LEAF"],  # another product's exact title
            "99999": ["NOT IN THE CATALOGUE"],  # no catalogue code: no candidate
        }
    )
    assert [q.text for q in result.queries] == ["doorknob ceramic ivory"]
    assert result.candidates == 6
    assert result.dropped == {"not_a_sale": 0, "same_as_title": 1, "junk": 2, "too_short": 1, "other_items_title": 1}


def test_descriptions_seen_only_off_sale_lines_are_counted_and_dropped():
    sales = {"23035": ["DOORKNOB CERAMIC IVORY"]}
    everything = {"23035": ["DRAWER KNOB CERAMIC IVORY", "DOORKNOB CERAMIC IVORY", "Thrown away.", "KNOB IVORY SECOND"]}
    result = judged(sales, everything)
    assert [q.text for q in result.queries] == ["doorknob ceramic ivory"]
    assert result.candidates == 3
    assert result.dropped["not_a_sale"] == 2


def test_duplicates_merge_and_identical_titles_are_all_relevant():
    result = judged({"35817P": ["PINK ACRYLIC JEWEL SNOWFLAKE"], "35815P": ["PINK  ACRYLIC JEWEL SNOWFLAKE"]})
    assert len(result.queries) == 1
    assert result.queries[0].relevant == frozenset({"35817P", "35815P"})
    widened = judged({"35817P": ["PINK ACRYLIC JEWEL SNOWFLAKE"]})
    assert widened.queries[0].relevant == frozenset({"35817P", "35815P"})  # same canonical title: indistinguishable


def test_only_real_sale_lines_supply_descriptions():
    raw = pd.DataFrame(
        {
            "InvoiceNo": ["536365", "C536379", "536380", "536381", "536382"],
            "StockCode": ["20725", "20725", "20725", "20725", "20725 "],
            "Description": [
                "RED RETROSPOT LUNCH BAG",
                "CANCELLED NAME",
                "damaged",
                "RETURNED NAME",
                "LUNCH BAG RED RETROSPOT",
            ],
            "Quantity": [1, -1, 5, -2, 3],
            "UnitPrice": [1.65, 1.65, 0.0, 1.65, 1.65],
            "CustomerID": pd.array([17850, 17850, None, None, None], dtype="Int64"),
        }
    )
    sales = descriptions_by_code(raw, sale_lines(raw))
    assert sales == {"20725": ("LUNCH BAG RED RETROSPOT", "RED RETROSPOT LUNCH BAG")}  # no-customer sales count
    assert len(descriptions_by_code(raw)["20725"]) == 5
