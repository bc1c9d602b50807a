"""Where the repository and its test data are, and a loud failure when a data file is missing.

Every data file the tests and the bench read is in the repository: ``tests/data/`` (see its
README), and the R4 Synthea bundles in ``tools/demo_data/``, which the demo loads too. Code that
reads data at import time goes through :func:`data_file` or :func:`data_files`, so a missing file
stops test collection with its name instead of a parametrised test quietly collecting zero cases.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
HL7_EXAMPLES = DATA / "hl7-examples"
SEARCH_PARAMETERS = DATA / "search-parameters"
HAPI_PAIRS = DATA / "hapi-converter-pairs"
# The R4 bundles are the demo's data first: one copy, where `make run` reads it.
SYNTHEA = {
    "dstu2": DATA / "synthea" / "dstu2",
    "stu3": DATA / "synthea" / "stu3",
    "r4": REPO / "tools" / "demo_data" / "synthea" / "r4",
}


class MissingTestData(FileNotFoundError):
    """A data file or folder a test needs is not in the checkout."""

    def __init__(self, path: Path, what: str) -> None:
        relative = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        super().__init__(
            f"test data missing: {relative} ({what}); it is part of the repository, "
            f"restore it with `git checkout -- {relative}`"
        )


def data_file(path: Path) -> Path:
    """``path`` itself, or :class:`MissingTestData` naming it."""
    if not path.is_file():
        raise MissingTestData(path, "no such file")
    return path


def data_files(folder: Path, pattern: str = "*.json") -> list[Path]:
    """The files in ``folder`` matching ``pattern``, sorted; never an empty list."""
    files = sorted(folder.glob(pattern)) if folder.is_dir() else []
    if not files:
        raise MissingTestData(folder, f"no {pattern} files")
    return files
