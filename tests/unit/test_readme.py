"""The README stays true: every setting with its default, and the two commands."""

from __future__ import annotations

import re

from shared.settings import SETTINGS
from tools.testkit.data import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def _configuration_rows() -> dict[str, str]:
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \|", section, flags=re.MULTILINE)
    return {name: default.strip() for name, default in rows}


def test_readme_lists_every_setting_the_code_reads_with_its_default():
    rows = _configuration_rows()
    assert set(rows) == {s.name for s in SETTINGS}
    for setting in SETTINGS:
        expected = f"`{setting.default}`" if setting.default else "(empty)"
        assert rows[setting.name] == expected, setting.name


def test_readme_gives_the_two_commands_first():
    commands = README.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    assert "make run" in commands and "make test" in commands


def test_ci_runs_the_readme_test_command():
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in script
