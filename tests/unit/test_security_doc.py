"""docs/security.md: the checklist keeps its numbering, and every row is proved or says why not.

Code and tests cite the document by section ("§3"), table ("table A") and row ("row 47"), so
those numbers are pinned here. Each row names the tests that prove it as
``tests/<path>.py::test_name``; a name that no longer resolves (renamed, deleted, misspelt)
would leave the row claiming a proof that does not exist, so every name is resolved against the
test file's syntax tree. A row nobody can test here carries ``not here:`` or
``not implemented:`` and a reason instead.

architecture.md and patients-app.md, read together with it, are held to the same standard: their
links lead to files and headings inside the repository, and the tests they name exist.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "security.md"
# The project documents that link to each other; their links must land somewhere real.
LINKED_DOCS = ("architecture.md", "security.md", "patients-app.md")

SECTIONS = ("1", "2", "3", "4")
# The tables and rows as first published. Later tables (G, H, ...) continue the numbering: each
# holds consecutive rows starting after the previous table's last, possibly leaving a gap (G from
# 74, H from 100), so tables added in parallel merge without renumbering either.
ORIGINAL_ROWS = {
    "A": range(1, 28),
    "B": range(28, 44),
    "C": range(44, 54),
    "D": range(54, 63),
    "E": range(63, 68),
    "F": range(68, 74),
}
COLUMNS = ("#", "Input", "Expected", "Rule", "Tested by")

_SECTION = re.compile(r"^## (\d+)\. ", re.MULTILINE)
_TABLE = re.compile(r"^### ([A-Z])\. ")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(?:(\w+)::)?(\w+)`")
# The reason must say something: a bare marker would excuse any row.
MARKER = re.compile(r"\b(?:not here|not implemented):\s*\S.{9,}")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@dataclass(frozen=True)
class Row:
    """One checklist row: its table letter, number and cells."""

    table: str
    number: int
    cells: tuple[str, ...]


def _cells(line: str) -> tuple[str, ...]:
    return tuple(cell.strip() for cell in _CELL_SPLIT.split(line.strip().strip("|")))


def checklist(text: str) -> tuple[list[Row], list[str]]:
    """The rows of §4's tables in document order, and the problems met reading them."""
    start = re.search(r"^## 4\. ", text, re.MULTILINE)
    if start is None:
        return [], ["no section 4 (the test checklist)"]
    rows: list[Row] = []
    problems: list[str] = []
    table: str | None = None
    for line in text[start.end() :].splitlines():
        heading = _TABLE.match(line)
        if heading:
            table = heading[1]
            continue
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = _cells(line)
        if cells[0] == "#":
            if cells != COLUMNS:
                problems.append(f"table {table}: columns are {cells}, expected {COLUMNS}")
            continue
        if table is None or not cells[0].isdigit():
            problems.append(f"a table line outside a lettered table: {line[:60]}")
            continue
        if len(cells) != len(COLUMNS):
            problems.append(f"row {cells[0]}: {len(cells)} cells, expected {len(COLUMNS)}")
            continue
        rows.append(Row(table, int(cells[0]), cells))
    return rows, problems


@functools.cache
def _definitions(path: Path) -> frozenset[tuple[str | None, str]]:
    """(class or None, name) of every function in a test file, nested in classes or not."""
    found: set[tuple[str | None, str]] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.add((None, node.name))
        elif isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef):
                    found.add((node.name, member.name))
    return frozenset(found)


def unresolved(root: Path, path: str, cls: str | None, name: str) -> str | None:
    """Why ``path::[cls::]name`` names no test under ``root``; None when it does."""
    ref = f"{path}::{cls + '::' if cls else ''}{name}"
    file = root / path
    if not file.is_file():
        return f"{ref}: no such file"
    if not name.startswith("test"):
        return f"{ref}: not a test function name"
    definitions = _definitions(file)
    if cls is not None:
        return None if (cls, name) in definitions else f"{ref}: no such test"
    return None if any(n == name for _, n in definitions) else f"{ref}: no such test"


def problems(text: str, root: Path = ROOT) -> list[str]:
    """Everything wrong with a security document's numbering and proof, one line each."""
    found: list[str] = []
    sections = _SECTION.findall(text)
    if tuple(sections[: len(SECTIONS)]) != SECTIONS:
        found.append(f"sections are {sections}, expected to start with {list(SECTIONS)}")
    rows, reading = checklist(text)
    found += reading

    letters = list(dict.fromkeys(row.table for row in rows))
    original, later = letters[: len(ORIGINAL_ROWS)], letters[len(ORIGINAL_ROWS) :]
    if original != list(ORIGINAL_ROWS) or later != sorted(later) or set(later) & set(original):
        found.append(f"tables are {letters}, expected {list(ORIGINAL_ROWS)} then later letters")
    numbers = [row.number for row in rows]
    for number in sorted({n for n in numbers if numbers.count(n) > 1}):
        found.append(f"row {number} appears {numbers.count(number)} times")
    last_original = max(wanted.stop - 1 for wanted in ORIGINAL_ROWS.values())
    for number in range(1, last_original + 1):
        if number not in numbers:
            found.append(f"row {number} is missing")
    if numbers != sorted(numbers):
        found.append("rows are not in ascending order")
    for table, wanted in ORIGINAL_ROWS.items():
        have = [row.number for row in rows if row.table == table]
        if have != list(wanted):
            span = f"{wanted.start}-{wanted.stop - 1}"
            found.append(f"table {table} holds rows {have}, expected {span}")
    previous = last_original
    for table in later:
        have = [row.number for row in rows if row.table == table]
        if have[0] <= previous:
            found.append(f"table {table} starts at row {have[0]}, expected after row {previous}")
        for number in range(have[0], have[-1] + 1):
            if number not in have:
                found.append(f"row {number} is missing")
        previous = max(previous, have[-1])

    for row in rows:
        proof = row.cells[-1]
        refs = TEST_REF.findall(proof)
        for path, cls, name in refs:
            problem = unresolved(root, path, cls or None, name)
            if problem:
                found.append(f"row {row.number}: {problem}")
        if not refs and not MARKER.search(proof):
            found.append(
                f"row {row.number}: names no test and gives no 'not here:' or "
                "'not implemented:' reason"
            )
    return found


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(document: Path) -> set[str]:
    return {
        _slug(line.lstrip("#"))
        for line in document.read_text(encoding="utf-8").splitlines()
        if re.match(r"#{1,6} ", line)
    }


def broken_links(document: Path, text: str | None = None) -> list[str]:
    """Relative links of ``document`` (or of ``text`` as if it were there) that lead nowhere."""
    broken: list[str] = []
    body = document.read_text(encoding="utf-8") if text is None else text
    for target in _LINK.findall(body):
        if re.match(r"[a-z]+:", target):
            continue  # an absolute URL: not ours to check here
        path, _, anchor = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        if not linked.exists() or ROOT not in linked.parents:
            broken.append(f"{document.name}: {target} (no such file in the repository)")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{document.name}: {target} (no such heading)")
    return broken


# ---- the document ------------------------------------------------------------------------------


def test_rows_1_to_73_keep_their_tables_and_every_row_is_proved_or_excused() -> None:
    assert problems(DOC.read_text(encoding="utf-8")) == []


def test_later_tables_are_checked_like_the_first_ones() -> None:
    rows, _ = checklist(DOC.read_text(encoding="utf-8"))
    later = [row for row in rows if row.table not in ORIGINAL_ROWS]
    assert later and later[0].table == "G" and later[0].number == 74


@pytest.mark.parametrize("name", LINKED_DOCS)
def test_links_between_the_project_documents_resolve(name: str) -> None:
    assert broken_links(ROOT / "docs" / name) == []


@pytest.mark.parametrize("name", LINKED_DOCS)
def test_every_test_a_project_document_names_exists(name: str) -> None:
    text = (ROOT / "docs" / name).read_text(encoding="utf-8")
    refs = TEST_REF.findall(text)
    missing = [unresolved(ROOT, path, cls or None, test) for path, cls, test in refs]
    assert [problem for problem in missing if problem] == []


# ---- the checker itself: each of these would let a stale document pass -----------------------


def test_a_misspelt_test_name_is_reported() -> None:
    text = DOC.read_text(encoding="utf-8")
    first = TEST_REF.search(text)
    assert first is not None
    misspelt = first[0].replace(first[3], first[3][:-1])
    found = problems(text.replace(first[0], misspelt, 1))
    assert any("no such test" in line and first[3][:-1] in line for line in found), found


def test_a_test_file_that_does_not_exist_is_reported() -> None:
    text = DOC.read_text(encoding="utf-8")
    first = TEST_REF.search(text)
    assert first is not None
    moved = first[0].replace(first[1], first[1].replace("tests/", "tests/nowhere/"))
    assert any("no such file" in line for line in problems(text.replace(first[0], moved, 1)))


def test_a_missing_or_repeated_row_is_reported() -> None:
    lines = DOC.read_text(encoding="utf-8").splitlines()
    row_47 = next(i for i, line in enumerate(lines) if line.startswith("| 47 |"))
    row_12 = next(line for line in lines if line.startswith("| 12 |"))
    without = lines[:row_47] + lines[row_47 + 1 :]
    assert "row 47 is missing" in problems("\n".join(without))
    repeated = [*lines[: row_47 + 1], row_12, *lines[row_47 + 1 :]]
    assert "row 12 appears 2 times" in problems("\n".join(repeated))


def _later_table(letter: str, first: int, count: int) -> str:
    proof = "`tests/unit/test_security_doc.py::test_a_misspelt_test_name_is_reported`"
    lines = [f"### {letter}. A later table", "", "| # | Input | Expected | Rule | Tested by |"]
    lines.append("|---|---|---|---|---|")
    lines += [f"| {n} | input | expected | rule | {proof} |" for n in range(first, first + count)]
    return "\n" + "\n".join(lines) + "\n"


def test_a_later_table_may_start_a_new_range_of_rows() -> None:
    # A table may start well past the previous one's last row: tables added in parallel keep
    # their numbers (G ends at 83, H starts at 100).
    text = DOC.read_text(encoding="utf-8") + _later_table("Y", 900, 3)
    assert problems(text) == []


def test_a_row_missing_inside_a_later_table_is_reported() -> None:
    table = _later_table("Y", 900, 3)
    without_901 = "\n".join(line for line in table.split("\n") if not line.startswith("| 901 "))
    assert "row 901 is missing" in problems(DOC.read_text(encoding="utf-8") + without_901)


def test_a_later_table_overlapping_the_previous_one_is_reported() -> None:
    text = DOC.read_text(encoding="utf-8") + _later_table("Y", 80, 2)
    found = problems(text)
    assert any(line.startswith("table Y starts at row 80") for line in found), found


def test_a_row_moved_to_another_table_is_reported() -> None:
    lines = DOC.read_text(encoding="utf-8").splitlines()
    row_43 = lines.pop(next(i for i, line in enumerate(lines) if line.startswith("| 43 |")))
    lines.insert(next(i for i, line in enumerate(lines) if line.startswith("| 44 |")), row_43)
    found = problems("\n".join(lines))
    assert any(line.startswith("table B holds rows") for line in found), found
    assert any(line.startswith("table C holds rows") for line in found), found


def test_a_row_without_a_test_or_a_reason_is_reported() -> None:
    lines = DOC.read_text(encoding="utf-8").splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("| 24 |"))
    cells = _cells(lines[index])
    for proof in ("", "not implemented:", "later"):
        lines[index] = "| " + " | ".join((*cells[:-1], proof)) + " |"
        found = problems("\n".join(lines))
        assert any(line.startswith("row 24: names no test") for line in found), proof


def test_a_renumbered_section_is_reported() -> None:
    text = DOC.read_text(encoding="utf-8").replace("## 3. Secret handling", "## Secret handling")
    assert any(line.startswith("sections are") for line in problems(text))


def test_tests_in_classes_and_parametrised_tests_resolve(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.parametrize('v', [1, 2])\n"
        "def test_param(v):\n    assert v\n\n"
        "class TestGroup:\n    def test_member(self):\n        pass\n\n"
        "def helper():\n    pass\n",
        encoding="utf-8",
    )
    assert unresolved(tmp_path, "tests/test_x.py", None, "test_param") is None
    assert unresolved(tmp_path, "tests/test_x.py", None, "test_member") is None
    assert unresolved(tmp_path, "tests/test_x.py", "TestGroup", "test_member") is None
    assert unresolved(tmp_path, "tests/test_x.py", "TestOther", "test_member") is not None
    assert unresolved(tmp_path, "tests/test_x.py", None, "helper") is not None


def test_a_link_to_a_missing_file_or_heading_is_reported() -> None:
    text = (
        "[ok](architecture.md#3-tokens) [bad](architecture.md#9-nowhere) [gone](nowhere.md) "
        "[out](../../) [web](https://example.org/x)"
    )
    found = broken_links(ROOT / "docs" / "probe.md", text)
    assert len(found) == 3, found
    assert "9-nowhere" in found[0] and "nowhere.md" in found[1] and "../../" in found[2]
