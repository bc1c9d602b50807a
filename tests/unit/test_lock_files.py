"""The dependency lock: every package pinned with hashes, urllib3 new enough (table H).

requirements.txt is what Azure's remote build installs and requirements-dev.txt what
``make deps`` installs (``--require-hashes``); both are compiled by ``make lock`` from the .in
files, and must agree on every package they share.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")
_TOP = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*([=<>!~]=?.*)?$")


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(path: Path) -> dict[str, tuple[str, int]]:
    """Each requirement of a compiled lock: its pinned version and how many hashes it has."""
    found: dict[str, tuple[str, int]] = {}
    current: str | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pin = _PIN.match(stripped)
        if pin:
            current = _name(pin[1])
            found[current] = (pin[2], 0)
        elif stripped.startswith("--hash=sha256:") and current is not None:
            version, hashes = found[current]
            found[current] = (version, hashes + 1)
        else:
            raise AssertionError(f"{path.name}: a line that is no pin or hash: {stripped}")
    return found


def top_level(path: Path) -> dict[str, str]:
    """Direct requirements of an .in file and their specifiers."""
    names: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.split("#", 1)[0].strip()
        if not stripped or stripped.startswith("-"):
            continue
        match = _TOP.match(stripped)
        assert match, stripped
        names[_name(match[1])] = (match[2] or "").strip()
    return names


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


@pytest.mark.parametrize("lock", ["requirements.txt", "requirements-dev.txt"])
def test_row_111_every_requirement_is_pinned_with_hashes(lock):
    found = requirements(ROOT / lock)
    assert found
    assert {name for name, (_, hashes) in found.items() if hashes == 0} == set()


@pytest.mark.parametrize("lock", ["requirements.txt", "requirements-dev.txt"])
def test_row_111_the_lock_pins_urllib3_2_6_or_later(lock):
    version, _ = requirements(ROOT / lock)["urllib3"]
    assert _version(version) >= (2, 6, 0)


def test_row_111_the_runtime_lock_has_exactly_the_declared_pins():
    locked = requirements(ROOT / "requirements.txt")
    for name, specifier in top_level(ROOT / "requirements.in").items():
        assert name in locked, name
        if specifier.startswith("=="):
            assert locked[name][0] == specifier[2:], name
    assert "azure-functions-worker" not in locked  # the platform provides it


def test_the_dev_lock_agrees_with_the_runtime_lock():
    runtime = requirements(ROOT / "requirements.txt")
    dev = requirements(ROOT / "requirements-dev.txt")
    assert {name: runtime[name][0] for name in runtime} == {
        name: dev[name][0] for name in runtime if name in dev
    }
    assert set(runtime) <= set(dev)


def test_make_deps_installs_in_hash_checking_mode():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "--require-hashes" in makefile
    assert re.search(r"^lock:", makefile, re.MULTILINE)
