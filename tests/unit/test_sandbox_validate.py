"""Sandbox write validation: R4 resources per the fhir.resources R4B models, errors by element."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shared.sandbox.errors import InvalidResource, UnsupportedType
from shared.sandbox.validate import validate_resource
from tests.support.sandbox import (
    allergy,
    condition,
    coverage,
    encounter,
    location,
    medication_request,
    observation,
    organization,
    patient,
    practitioner,
)

BUILDERS: list[Callable[[], dict[str, Any]]] = [
    lambda: patient("p1"),
    lambda: observation("p1", "o1"),
    lambda: condition("p1", "c1"),
    lambda: encounter("p1", "e1"),
    lambda: allergy("p1", "a1"),
    lambda: medication_request("p1", "m1"),
    lambda: coverage("p1", "v1"),
    lambda: location("l1"),
    lambda: practitioner("pr1"),
    lambda: organization("org1"),
]


def invalid(resource: dict[str, Any]) -> InvalidResource:
    with pytest.raises(InvalidResource) as raised:
        validate_resource(resource)
    return raised.value


@pytest.mark.parametrize("build", BUILDERS)
def test_valid_resource_of_each_supported_type_passes(build: Callable[[], dict[str, Any]]) -> None:
    validate_resource(build())


def test_unsupported_type_is_refused() -> None:
    with pytest.raises(UnsupportedType):
        validate_resource({"resourceType": "Medication"})


def test_missing_resource_type_names_resource_type() -> None:
    assert invalid({"id": "x"}).element == "resourceType"


def test_malformed_primitive_names_the_element() -> None:
    error = invalid(patient("p1", birth_date="12/03/1970"))
    assert error.element == "Patient.birthDate"


def test_element_inside_a_list_is_named_with_its_index() -> None:
    error = invalid(patient("p1", name=[{"family": "Black"}, {"given": ["Ruth", 5]}]))
    assert error.element == "Patient.name[1].given[1]"


def test_missing_required_element_is_named() -> None:
    vital = observation("p1", "o1")
    del vital["status"]
    assert invalid(vital).element == "Observation.status"


def test_unknown_element_is_named() -> None:
    assert invalid(patient("p1", nickname="Ruthie")).element == "Patient.nickname"


def test_two_values_of_a_choice_type_name_the_choice() -> None:
    error = invalid(observation("p1", "o1", valueString="fast"))
    assert error.element == "Observation.value[x]"


def test_gender_must_be_a_code_of_its_value_set() -> None:
    assert invalid(patient("p1", gender="f")).element == "Patient.gender"


def test_message_never_echoes_the_offending_value() -> None:
    secret_looking = "s3cr3t-" + "x" * 50
    error = invalid(patient("p1", birth_date=secret_looking))
    assert secret_looking not in error.message
    assert secret_looking not in str(error)


def test_message_is_short() -> None:
    error = invalid(observation("p1", "o1", valueString="fast"))
    assert 0 < len(error.message) <= 200
