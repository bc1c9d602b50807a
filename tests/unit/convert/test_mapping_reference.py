"""Every "§N" / "§N.M" that the converters, their decision records and their tests cite names a
section heading of docs/conversion/mapping.md, so a reader of a clone can follow it.

A "§" that belongs to another document ("RFC 6749 §4.4", "other-document.md §3") is
not a mapping citation and is not checked.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
MAPPING = ROOT / "docs" / "conversion" / "mapping.md"
CITING = (
    ROOT / "shared" / "fhir" / "convert",
    ROOT / "docs" / "conversion",
    ROOT / "tests" / "unit" / "convert",
)

_HEADING = re.compile(r"^#{2,3} (\d+(?:\.\d+)?)[.\s]", re.MULTILINE)
_CITATION = re.compile(r"§\s?(\d+(?:\.\d+)*)")
# A run of sections introduced by another specification's name, including the ones that follow
# it in a list ("RFC 9700 §4.9 and §4.13"): those numbers are that specification's.
_FOREIGN = re.compile(
    r"(?:\b(?:RFC|BCP|STD)\s?\d+|\b(?!mapping\.md)[\w-]+\.md)"
    r"\s?§\s?[\d.]+(?:-[\d.]+)?(?:(?:\s?,\s?|\s+(?:and|or)\s+)§\s?[\d.]+(?:-[\d.]+)?)*"
)


def sections(markdown: str) -> set[str]:
    """The section numbers of a document's level-2 and level-3 headings."""
    return set(_HEADING.findall(markdown))


def cited(text: str) -> list[str]:
    """The mapping-section numbers a text cites, in order."""
    return _CITATION.findall(_FOREIGN.sub("", text))


def _citations() -> list[tuple[str, int, str]]:
    found = []
    for folder in CITING:
        for path in sorted([*folder.rglob("*.py"), *folder.rglob("*.md")]):
            lines = path.read_text(encoding="utf-8").splitlines()
            for number, line in enumerate(lines, start=1):
                found += [(str(path.relative_to(ROOT)), number, s) for s in cited(line)]
    return found


def test_every_cited_section_is_a_heading_of_the_mapping_reference() -> None:
    headings = sections(MAPPING.read_text(encoding="utf-8"))
    citations = _citations()
    # Guards against a scan that finds nothing (a moved folder) passing vacuously.
    assert {Path(path).parts[0] for path, _, _ in citations} == {"shared", "docs", "tests"}
    missing = [f"{path}:{line}: §{s}" for path, line, s in citations if s not in headings]
    assert missing == []


def test_a_citation_of_a_section_the_reference_lacks_is_found() -> None:
    headings = sections("## 7. AllergyIntolerance\n\n### 7.1 Elements\n")
    assert [s for s in cited("see §7, §7.1 and §7.2.") if s not in headings] == ["7.2"]


def test_sections_of_other_specifications_are_not_mapping_citations() -> None:
    text = (
        "RFC 6749 §4.4; RFC 9700 §4.9 and §4.13; RFC 8725 §3.1-3.2, RFC 7519 §4.1.4; "
        "other-document.md §3; docs/conversion/mapping.md §14.2; mapping §2.1"
    )
    assert cited(text) == ["14.2", "2.1"]
