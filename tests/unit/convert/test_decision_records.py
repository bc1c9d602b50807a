"""Every module, converter function and test that the decision records in docs/conversion name
exists where they say, so moving code cannot leave them pointing nowhere."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs" / "conversion"
PACKAGE = ROOT / "shared" / "fhir" / "convert"
MODULES = sorted(path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__")

_CODE = re.compile(r"`([^`\s]+)`")
_TEST = re.compile(r"^\s*def (test_\w+)", re.MULTILINE)


def _named() -> list[tuple[str, str]]:
    """(where, name) of every code span in the decision records."""
    return [
        (f"{path.name}:{number}", name)
        for path in sorted(DOCS.glob("*.md"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        for name in _CODE.findall(line)
    ]


def _defined() -> dict[str, set[str]]:
    """The public functions and classes each converter module defines (not imports)."""
    found: dict[str, set[str]] = {}
    for name in MODULES:
        module = importlib.import_module(f"shared.fhir.convert.{name}")
        found[name] = {
            attribute
            for attribute, value in vars(module).items()
            if not attribute.startswith("_")
            and getattr(value, "__module__", None) == module.__name__
        }
    return found


def test_every_named_python_file_exists() -> None:
    places = (ROOT, PACKAGE, ROOT / "tests" / "unit" / "convert")
    missing = [
        f"{where}: {name}"
        for where, name in _named()
        # A name with a <placeholder> is a pattern (the checklist's `test_<type>.py`), not a file.
        if name.endswith(".py")
        and "<" not in name
        and not any((place / name).is_file() for place in places)
    ]
    assert missing == []


def test_every_named_converter_function_is_defined_in_the_named_module() -> None:
    defined = _defined()
    everywhere = set().union(*defined.values())
    # "module.name" where name is some converter function: an element path such as
    # location.physicalType names no function and is not checked.
    missing = [
        f"{where}: {name}"
        for where, name in _named()
        if (parts := name.split("."))
        and len(parts) == 2
        and parts[0] in defined
        and parts[1] in everywhere
        and parts[1] not in defined[parts[0]]
    ]
    assert missing == []


def test_every_named_test_exists() -> None:
    tests = {
        name
        for path in (ROOT / "tests").rglob("test_*.py")
        for name in _TEST.findall(path.read_text())
    }
    missing = [
        f"{where}: {name}"
        for where, name in _named()
        if re.fullmatch(r"test_\w+", name) and name not in tests
    ]
    assert missing == []


def test_a_function_named_in_the_wrong_module_is_found() -> None:
    defined = _defined()
    assert "narrow_reference" in defined["common"]
    assert "narrow_reference" not in defined["patient"]  # imported there, not defined
