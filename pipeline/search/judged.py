"""The judged query set: real alternative product descriptions as queries, their stock code as the answer.

In the Online Retail file 650 stock codes carry more than one description. Many of the extra
ones are re-titlings of the same product on real sales ("LUNCH BAG RED RETROSPOT" vs
"RED RETROSPOT LUNCH BAG", "DOORKNOB CERAMIC IVORY" vs "DRAWER KNOB CERAMIC IVORY",
"SET 12 COLOUR PENCILS DOILEY"); the others are warehouse notes ("damaged", "check", "?").
A re-titling, lower-cased, is a query a shopper could type, and its product is known: that is
an honest relevance judgement that nobody wrote by hand. Rules, in order (each dropped candidate
is counted under the first rule it hits):

1. ``not_a_sale``: only descriptions seen on real sale lines are candidates (see
   ``catalogue.py``), and only for codes in the catalogue.
2. ``same_as_title``: equal to the code's canonical title after normalisation (lower case,
   every run of non-alphanumerics -> one space): "ELEPHANT, BIRTHDAY CARD," is no new query.
3. ``junk``: a warehouse note: it contains a junk marker at a word start, or has more lower-case
   than upper-case letters (titles in this file are upper case, notes are typed in lower case).
4. ``too_short``: fewer than ``min_query_words`` words of two or more letters.
5. ``other_items_title``: equal (normalised) to the canonical title of a *different* product:
   the query would then name that product exactly and the judgement would be ambiguous.
6. Duplicates (same normalised text under several codes) become one query whose relevant set
   holds all those codes.

Finally the relevant set of every query is widened to the products whose canonical title is
identical (normalised) to a relevant product's title: the index sees only titles, so no system
can tell such products apart. The query text is the description lower-cased with its
whitespace collapsed.

This set is small (about two hundred queries) and lexically close to the titles (re-orderings,
spelling variants, synonyms), which favours BM25; it measures "find this product by another of
its names", not open-ended intent search.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_WORD = re.compile(r"[A-Za-z]{2,}")
RULES = ("not_a_sale", "same_as_title", "junk", "too_short", "other_items_title")


@dataclass(frozen=True)
class JudgedQuery:
    text: str
    relevant: frozenset[str]  # stock codes
    source: str  # the description as it appears in the data


@dataclass(frozen=True)
class JudgedSet:
    queries: tuple[JudgedQuery, ...]
    candidates: int
    dropped: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "queries": len(self.queries),
            "candidate_descriptions": self.candidates,
            "dropped": dict(self.dropped),
            "codes_with_a_query": len({code for query in self.queries for code in query.relevant}),
            "queries_with_several_relevant": sum(len(query.relevant) > 1 for query in self.queries),
        }


def normalise(text: str) -> str:
    return " ".join(_NON_ALNUM.sub(" ", text.lower()).split())


def junk_pattern(markers: Iterable[str]) -> re.Pattern[str]:
    parts = [(r"(?<![a-z])" if marker[:1].isalnum() else "") + re.escape(marker.lower()) for marker in markers]
    return re.compile("|".join(parts)) if parts else re.compile(r"(?!)")


def is_junk(description: str, pattern: re.Pattern[str]) -> bool:
    lower = sum(char.islower() for char in description)
    upper = sum(char.isupper() for char in description)
    return bool(pattern.search(description.lower())) or lower > upper


def as_query(description: str) -> str:
    return " ".join(description.lower().split())


def derive_judged_set(
    descriptions: Mapping[str, Iterable[str]],
    titles: Mapping[str, str],
    junk_markers: Iterable[str],
    min_query_words: int = 2,
    all_descriptions: Mapping[str, Iterable[str]] | None = None,
) -> JudgedSet:
    """Applies the rules of this module to the sale-line ``descriptions`` of the catalogue ``titles``.

    Candidates are the (code, description) pairs of catalogue codes whose description is not
    literally the canonical title, taken from ``all_descriptions`` (e.g. every line of the raw
    file) when given, so that rule 1 is counted, else from ``descriptions``.
    """
    pattern = junk_pattern(junk_markers)
    sold = {(code, text) for code, texts in descriptions.items() for text in texts}
    source = all_descriptions if all_descriptions is not None else descriptions
    title_owners: dict[str, set[str]] = defaultdict(set)
    for code, title in titles.items():
        title_owners[normalise(title)].add(code)

    dropped: Counter[str] = Counter({rule: 0 for rule in RULES})
    candidates = 0
    by_text: dict[str, tuple[str, set[str]]] = {}
    for code in sorted(code for code in source if code in titles):
        for description in sorted(set(source[code]) - {titles[code]}):
            candidates += 1
            key = normalise(description)
            rule = _first_broken_rule(code, description, key, sold, titles, title_owners, pattern, min_query_words)
            if rule is not None:
                dropped[rule] += 1
            else:
                by_text.setdefault(key, (description, set()))[1].add(code)

    queries = []
    for key in sorted(by_text):
        description, codes = by_text[key]
        relevant = set(codes)
        for code in codes:
            relevant |= title_owners[normalise(titles[code])]
        queries.append(JudgedQuery(text=as_query(description), relevant=frozenset(relevant), source=description))
    return JudgedSet(queries=tuple(queries), candidates=candidates, dropped=dict(dropped))


def _first_broken_rule(
    code: str,
    description: str,
    key: str,
    sold: set[tuple[str, str]],
    titles: Mapping[str, str],
    title_owners: Mapping[str, set[str]],
    pattern: re.Pattern[str],
    min_query_words: int,
) -> str | None:
    if (code, description) not in sold:
        return "not_a_sale"
    if key == normalise(titles[code]):
        return "same_as_title"
    if is_junk(description, pattern):
        return "junk"
    if len(_WORD.findall(description)) < min_query_words:
        return "too_short"
    if title_owners.get(key, set()) - {code}:
        return "other_items_title"
    return None
