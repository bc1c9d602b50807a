"""function_app.py registers every blueprint under functions/ (what azure-functions-doctor's
blueprint check looks for, by module attribute rather than by bare name)."""

from __future__ import annotations

import importlib
import pkgutil

import azure.functions as func
import pytest

import functions
from tests.support.app import registered_functions

BLUEPRINT_MODULES = sorted(
    info.name
    for info in pkgutil.iter_modules(functions.__path__)
    if isinstance(
        getattr(importlib.import_module(f"functions.{info.name}"), "bp", None), func.Blueprint
    )
)


def test_there_are_blueprint_modules_to_check():
    assert len(BLUEPRINT_MODULES) >= 6


@pytest.mark.parametrize("module", BLUEPRINT_MODULES)
def test_every_function_of_each_blueprint_is_registered_on_the_app(module: str):
    blueprint = importlib.import_module(f"functions.{module}").bp
    names = {builder._function.get_function_name() for builder in blueprint._function_builders}
    assert names and names <= set(registered_functions())
