"""The documentation holds together: every relative link in README.md, the folder READMEs and
benchmarks/RESULTS.md points at a file that exists and, with a ``#anchor``, at a heading that
exists in that file (GitHub's slugs); README.md stays a ten-minute read.

Only the standard library: links are found with a regex outside code blocks and code spans;
http(s) and mailto links are not followed.
"""

from __future__ import annotations

import re
import sys
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# An entry point, not a manual; the Performance section's goals table is generated (~15 lines).
README_MAX_LINES = 350

FENCE = re.compile(r"^\s{0,3}(```|~~~)")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target) and ![alt](target), with an optional "title"; text may hold `code` but no brackets.
LINK = re.compile(r"!?\[([^\[\]]*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)


def documents() -> list[Path]:
    """README.md, every folder's README.md (not hidden folders such as .venv or .pytest_cache)
    and the generated benchmarks/RESULTS.md."""
    folders = sorted(p for p in REPO.glob("*/README.md") if not p.parent.name.startswith("."))
    docs = [REPO / "README.md", *folders, REPO / "benchmarks" / "RESULTS.md"]
    return [path for path in docs if path.is_file()]


def _prose_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of every line outside fenced code blocks."""
    lines, fenced, marker = [], False, ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fence = FENCE.match(line)
        if fence and (not fenced or fence.group(1) == marker):
            fenced, marker = (not fenced), fence.group(1)
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: links and emphasis reduced to their text, lower case,
    every character but letters, digits, '_', '-' and spaces dropped, spaces turned into '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # [text](url) -> text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """Every heading anchor of a Markdown file, with GitHub's -1, -2 … for repeated headings,
    plus explicit ``<a id="…">`` / ``<a name="…">`` anchors."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in _prose_lines(path):
        if match := HEADING.match(line):
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        found.update(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", line))
    return frozenset(found)


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every link outside code, in order."""
    found = []
    for number, line in _prose_lines(path):
        for match in LINK.finditer(CODE_SPAN.sub("", line)):
            found.append((number, match.group(2)))
    return found


def broken_links(path: Path) -> list[str]:
    """One message per relative link of ``path`` whose file or heading does not exist."""
    problems = []
    where = path.relative_to(REPO)
    for number, target in links(path):
        if not target or EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / file_part).resolve() if file_part else path
        if not destination.exists():
            problems.append(f"{where}:{number}: link ({target}) points at {file_part}, which does not exist")
            continue
        if not anchor:
            continue
        if destination.is_dir() or destination.suffix.lower() != ".md":
            problems.append(f"{where}:{number}: link ({target}) has an anchor into {file_part}, which is not Markdown")
        elif anchor not in anchors(destination):
            shown = destination.relative_to(REPO) if destination.is_relative_to(REPO) else destination
            problems.append(f"{where}:{number}: link ({target}): no heading #{anchor} in {shown}")
    return problems


# --- the rules themselves -----------------------------------------------------------------------


def test_slugs_follow_githubs_rules():
    assert slug("What a request costs") == "what-a-request-costs"
    assert slug("Reports for finance") == "reports-for-finance"
    assert slug("Triton on these machines") == "triton-on-these-machines"
    assert slug("`make cluster`: several replicas") == "make-cluster-several-replicas"
    assert slug("Gateway vs direct Triton (1.)") == "gateway-vs-direct-triton-1"
    assert slug("The cache & TOLLGATE_CACHE_TTL_S") == "the-cache--tollgate_cache_ttl_s"
    assert slug("See [costing](costing/README.md)") == "see-costing"


def test_a_broken_link_names_the_file_the_link_and_the_missing_target(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "README.md").write_text("# Sub\n\n## Real heading\n")
    doc = tmp_path / "README.md"
    doc.write_text(
        "# Top\n\n"
        "[ok](sub/README.md#real-heading) [here](#top) [web](https://example.com/x#y)\n"
        "```bash\n# not a heading\n[not a link](nowhere.md)\n```\n"
        "`[code](nowhere.md)` [gone](missing/README.md) [bad anchor](sub/README.md#no-such)\n"
    )
    anchors.cache_clear()
    assert broken_links(doc) == [
        "README.md:8: link (missing/README.md) points at missing/README.md, which does not exist",
        "README.md:8: link (sub/README.md#no-such): no heading #no-such in sub/README.md",
    ]
    assert "not-a-heading" not in anchors(doc)
    anchors.cache_clear()


# --- the repository's documents -----------------------------------------------------------------


def test_the_documents_exist():
    names = {str(path.relative_to(REPO)) for path in documents()}
    assert "README.md" in names and len(names) > 1, names


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_and_anchor_resolves(path):
    problems = broken_links(path)
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_readme_stays_a_ten_minute_read():
    lines = len((REPO / "README.md").read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): move detail into the README of "
        "the folder it describes and link to it"
    )
