"""The parsed Bicep templates, for tests/infra.

pycep (the Bicep parser checkov uses) lives in the checkov virtualenv ``.venv-infra``, not in
``.venv``: ``tools/infra_check.py`` parses every ``infra/**/*.bicep`` there and writes
``.local/infra-model.json``, keyed by each file's SHA-256. ``load()`` returns that model,
rebuilding it first when a template changed since (``make test`` runs ``make infra-check``
before pytest, so it is normally fresh).

In pycep's model an identifier (a parameter, variable or resource name) and a string literal are
both plain ``str``: ``reference()`` tells them apart by the file's declared names.
"""

from __future__ import annotations

import json
import subprocess
from functools import cache
from typing import Any

import pytest

from tools import infra_check
from tools.testkit.data import REPO

INFRA_PYTHON = REPO / ".venv-infra" / "bin" / "python"


def _fresh(document: Any) -> bool:
    return (
        isinstance(document, dict)
        and document.get("version") == infra_check.MODEL_VERSION
        and document.get("sources") == infra_check.source_digests()
    )


def _read() -> Any:
    try:
        return json.loads(infra_check.MODEL.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@cache
def load() -> dict[str, Any]:
    """``{"infra/x.bicep": pycep model}`` of every template, rebuilt when stale."""
    document = _read()
    if not _fresh(document):
        if not INFRA_PYTHON.exists():
            pytest.fail("the Bicep model is missing or stale: run `make infra-check` first")
        result = subprocess.run(
            [str(INFRA_PYTHON), str(REPO / "tools" / "infra_check.py"), "--model-only"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        document = _read()
        if result.returncode != 0 or not _fresh(document):
            pytest.fail(f"tools/infra_check.py --model-only failed:\n{result.stdout}")
    templates: dict[str, Any] = document["templates"]
    return templates


def template(name: str) -> dict[str, Any]:
    """One template's model, by path relative to the repository (``infra/main.bicep``)."""
    return load()[name]


def body(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource's own configuration, looking through ``= if (condition) {...}``."""
    config: dict[str, Any] = resource["config"]
    if "condition" in config and isinstance(config.get("config"), dict):
        inner: dict[str, Any] = config["config"]
        return inner
    return config


def loop_array(resource: dict[str, Any]) -> str | None:
    """The array a ``[for x in array: ...]`` resource loops over, else None."""
    loop = resource["config"].get("loop_type") or {}
    detail = loop.get("detail") or {}
    name = detail.get("array_name")
    return name if isinstance(name, str) else None


def indexed(value: Any) -> str | None:
    """The resource named by ``name[index]``, else None."""
    operator = value.get("operator") if isinstance(value, dict) else None
    if not operator or operator.get("type") != "index_accessor":
        return None
    target = operator["operands"]["operand_1"]
    return target if isinstance(target, str) else None


def condition(resource: dict[str, Any]) -> Any:
    """The ``if (...)`` condition of a conditional resource, else None."""
    return resource["config"].get("condition")


def resources(model: dict[str, Any], kind: str, *, existing: bool = False) -> dict[str, Any]:
    """The resources of type ``kind`` declared in a template (``existing`` ones on request)."""
    return {
        name: resource
        for name, resource in (model.get("resources") or {}).items()
        if resource["type"] == kind and bool(resource.get("existing")) == existing
    }


def all_resources(kind: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Every declared (not ``existing``) resource of type ``kind``, by (file, symbolic name)."""
    return {
        (file, name): resource
        for file, model in load().items()
        for name, resource in resources(model, kind).items()
    }


def declared_names(model: dict[str, Any]) -> set[str]:
    """Parameter, variable, resource and module names of a template."""
    return {
        name
        for section in ("parameters", "variables", "resources", "modules")
        for name in (model.get(section) or {})
    }


def reference(model: dict[str, Any], value: Any) -> str | None:
    """The declared name ``value`` refers to, or None for a literal or an expression."""
    if isinstance(value, str) and value in declared_names(model):
        return value
    return None


def converted(value: Any) -> Any:
    """The argument of ``string(x)``, else ``value`` itself."""
    if isinstance(value, dict):
        function = value.get("function") or {}
        if function.get("type") == "string":
            return function["parameters"]["value_to_convert"]
    return value


def accessor(value: Any) -> list[str]:
    """``a.b.c`` as ``["a", "b", "c"]``; ``[]`` when ``value`` is not a property access."""
    if isinstance(value, str):
        return [value]
    operator = value.get("operator") if isinstance(value, dict) else None
    if not operator or operator.get("type") != "property_accessor":
        return []
    operands = operator["operands"]
    return [*accessor(operands["operand_1"]), *accessor(operands["operand_2"])]
