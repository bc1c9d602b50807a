"""The converter contract: what a resource module must define, and the loader that holds it to it.

A resource module converts one type one step at a time between adjacent releases, with one
function per step (``ResourceSteps``). A type that holds other resources (Bundle) also
converts them over the whole chain of steps at once (``EntrySteps.convert_through``), so each
entry is converted once, not once per step. ``load`` imports the module the catalogue names
on first use and refuses one that breaks the contract, naming what is missing;
tests/unit/test_catalog.py loads every module the catalogue names, so a broken one fails the
tests rather than a request.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Final, Protocol

from shared.fhir.convert.common import Resource, Step
from shared.fhir.versions import FhirVersion

Chain = Sequence[tuple[str, str]]
"""(source, target) of each step, e.g. r4→stu3, stu3→dstu2."""

STEPS: Final[tuple[tuple[FhirVersion, FhirVersion], ...]] = (
    (FhirVersion.R4, FhirVersion.STU3),
    (FhirVersion.STU3, FhirVersion.R4),
    (FhirVersion.STU3, FhirVersion.DSTU2),
    (FhirVersion.DSTU2, FhirVersion.STU3),
)
"""Every step a module implements: between adjacent releases, both ways (as HL7's maps go)."""

THROUGH: Final = "convert_through"


def step_name(source: str, target: str) -> str:
    """The name of the module function for one step: ``r4_to_stu3``."""
    return f"{source}_to_{target}"


_STEP_NAMES: Final = {(s.value, t.value): step_name(s, t) for s, t in STEPS}


class ResourceSteps(Protocol):
    """A resource module: each step takes a private copy it may change, returns the result."""

    def r4_to_stu3(self, resource: Resource, /) -> Resource:
        """R4 → STU3."""
        ...

    def stu3_to_r4(self, resource: Resource, /) -> Resource:
        """STU3 → R4."""
        ...

    def stu3_to_dstu2(self, resource: Resource, /) -> Resource:
        """STU3 → DSTU2."""
        ...

    def dstu2_to_stu3(self, resource: Resource, /) -> Resource:
        """DSTU2 → STU3."""
        ...


class EntrySteps(ResourceSteps, Protocol):
    """A module for a type holding resources, which converts them over the whole chain."""

    def convert_through(self, resource: Resource, steps: Chain, /) -> Resource:
        """``resource`` through every step of ``steps``, each held resource once."""
        ...


class ContractBroken(TypeError):
    """A converter module lacks what the contract asks of it: a bug, never bad input."""


@dataclass(frozen=True)
class Converter:
    """One type's converter module, checked against the contract when it was loaded.

    Its functions are looked up on the module at each call, as a call through a module
    attribute would be, so a function replaced on the module (a test's stub) takes effect.
    """

    module: ModuleType
    converts_entries: bool = False

    def step(self, source: str, target: str) -> Step:
        """The module's function for the step ``source`` → ``target``."""
        function: Step = getattr(self.module, _STEP_NAMES[(source, target)])
        return function

    def through(self, resource: Resource, steps: Chain) -> Resource:
        """``resource`` over the whole chain at once (``convert_through``)."""
        result: Resource = getattr(self.module, THROUGH)(resource, steps)
        return result


def required_functions(converts_entries: bool) -> tuple[str, ...]:
    """The function names a module must define: every step, and ``convert_through`` for a
    type that converts its entries over the whole chain."""
    steps = tuple(step_name(source, target) for source, target in STEPS)
    return (*steps, THROUGH) if converts_entries else steps


def load(module_name: str, *, converts_entries: bool = False) -> Converter:
    """Import ``shared.fhir.convert.<module_name>``; ``ContractBroken`` names every function
    the contract asks for that it lacks or that is not callable."""
    module = importlib.import_module(f"shared.fhir.convert.{module_name}")
    missing = [
        name
        for name in required_functions(converts_entries)
        if not callable(getattr(module, name, None))
    ]
    if missing:
        raise ContractBroken(f"{module.__name__} does not define {', '.join(missing)}")
    return Converter(module, converts_entries)
