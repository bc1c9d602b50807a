"""Medication across R4, STU3 and DSTU2: fixtures, the code the app shows, round trips and every
decision in docs/conversion/medication.md.

The step functions are called directly (``run`` mimics the framework: comments stripped,
systems rewritten around each step, R4 meta dropped for older targets); ``convert`` is
checked once the type is registered in shared/fhir/convert/__init__.py.
Section numbers (§) refer to docs/conversion/mapping.md.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.fhir.convert import convert
from tests.support.dstu2 import REFERENCE, Shape
from tests.support.fixtures import (
    VERSIONS,
    XVER_R4,
    XVER_STU3,
    fixtures_of,
    hapi_files,
    hl7_example_files,
)
from tests.unit.convert.checks import assert_valid

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"


# DSTU2 (1.0.2) Medication: code, isBrand, manufacturer, product, package.
RATIO = Shape(frozenset({"numerator", "denominator"}))
MEDICATION = Shape(
    allowed=frozenset({"code", "isBrand", "manufacturer", "product", "package"}),
    nested={
        "manufacturer": REFERENCE,
        "product": Shape(
            frozenset({"form", "ingredient", "batch"}),
            nested={
                "ingredient": Shape(
                    frozenset({"item", "amount"}),
                    required=frozenset({"item"}),
                    nested={"item": REFERENCE, "amount": RATIO},
                ),
                "batch": Shape(frozenset({"lotNumber", "expirationDate"})),
            },
            lists=frozenset({"ingredient", "batch"}),
        ),
        "package": Shape(
            frozenset({"container", "content"}),
            nested={
                "content": Shape(
                    frozenset({"item", "amount"}),
                    required=frozenset({"item"}),
                    nested={"item": REFERENCE},
                )
            },
            lists=frozenset({"content"}),
        ),
    },
)


def _nested(node: Any, top: bool = True) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if not top and node.get("resourceType") == "Medication":
            yield node
        for value in node.values():
            yield from _nested(value, top=False)
    elif isinstance(node, list):
        for item in node:
            yield from _nested(item, top=False)


def _embedded_medications() -> list[Any]:
    """Medications inside HL7 examples and HAPI inputs (contained or bundle entries)."""
    found = []
    sources = [(v, p) for v in VERSIONS for p in hl7_example_files(v)]
    sources += hapi_files(expected=False)
    for version, path in sources:
        for index, resource in enumerate(_nested(json.loads(path.read_text()))):
            found += [
                pytest.param(version, target, resource, id=f"{path.name}#{index}->{target}")
                for target in VERSIONS
                if target != version
            ]
    return found


MEDICATION_FIXTURES = fixtures_of("Medication") + _embedded_medications()

# Hand-written, one per version, using every element of that version's definition.
RICH: dict[str, dict[str, Any]] = {
    "r4": {
        "resourceType": "Medication",
        "id": "m1",
        "identifier": [{"use": "old", "system": "urn:oid:1.2", "value": "7"}],
        "code": {"coding": [{"system": RXNORM, "code": "197361", "display": "Amlodipine 5 MG"}]},
        "status": "active",
        "manufacturer": {"reference": "Organization/mmanu"},
        "form": {"coding": [{"system": SNOMED, "code": "385055001", "display": "Tablet"}]},
        "amount": {
            "numerator": {"value": 100, "unit": "tablet"},
            "denominator": {"value": 1, "unit": "bottle"},
        },
        "ingredient": [
            {
                "itemCodeableConcept": {"text": "Amlodipine besylate"},
                "isActive": True,
                "strength": {"numerator": {"value": 5, "unit": "mg"}, "denominator": {"value": 1}},
            },
            {"itemReference": {"reference": "Substance/lactose"}, "isActive": False},
        ],
        "batch": {"lotNumber": "9494788", "expirationDate": "2027-05-22"},
    },
    "stu3": {
        "resourceType": "Medication",
        "id": "m2",
        "code": {"text": "Amoxicillin 250 mg"},
        "status": "inactive",
        "isBrand": True,
        "isOverTheCounter": False,
        "manufacturer": {"reference": "Organization/1"},
        "form": {"text": "capsule"},
        "ingredient": [
            {
                "itemReference": {"reference": "Medication/base"},
                "amount": {"numerator": {"value": 1}},
            },
            {"itemCodeableConcept": {"text": "gelatin"}, "isActive": False},
        ],
        "package": {
            "container": {"text": "bottle"},
            "content": [
                {"itemCodeableConcept": {"text": "capsule"}, "amount": {"value": 30}},
                {"itemReference": {"reference": "Medication/caps"}},
            ],
            "batch": [{"lotNumber": "A1"}, {"lotNumber": "B2", "expirationDate": "2026-01-01"}],
        },
        "image": [{"contentType": "image/png", "url": "https://x.example/amox.png"}],
    },
    "dstu2": {
        "resourceType": "Medication",
        "id": "m3",
        "fhir_comments": ["a comment"],
        "code": {"coding": [{"system": RXNORM, "code": "308182"}], "text": "Amoxicillin"},
        "isBrand": False,
        "manufacturer": {"reference": "Organization/1"},
        "product": {
            "form": {"text": "capsule"},
            "ingredient": [
                {"item": {"reference": "Substance/amox"}, "amount": {"numerator": {"value": 250}}}
            ],
            "batch": [{"lotNumber": "A1", "expirationDate": "2026-01-01"}],
        },
        "package": {
            "container": {"text": "bottle"},
            "content": [{"item": {"reference": "Medication/caps"}, "amount": {"value": 30}}],
        },
    },
}
RICH_PAIRS = [(s, t) for s in VERSIONS for t in VERSIONS if s != t]


def test_medication_fixtures_exist() -> None:
    # 18 Synthea STU3 Medications; contained ones in HL7 examples of all three versions.
    assert {param.values[0] for param in MEDICATION_FIXTURES} == set(VERSIONS)
    assert len(fixtures_of("Medication")) == 2 * 18


@pytest.mark.parametrize(("source", "target", "resource"), MEDICATION_FIXTURES)
def test_fixture_converts_into_a_valid_medication_of_every_other_version(
    source: str, target: str, resource: dict[str, Any]
) -> None:
    assert_valid(convert(resource, source, target), target, "Medication", MEDICATION)


@pytest.mark.parametrize(("source", "target"), RICH_PAIRS)
def test_medication_with_every_element_converts_into_a_valid_one(source: str, target: str) -> None:
    assert_valid(convert(RICH[source], source, target), target, "Medication", MEDICATION)


@pytest.mark.parametrize(("source", "target"), RICH_PAIRS)
def test_medication_with_every_element_survives_a_round_trip(source: str, target: str) -> None:
    expected = convert(RICH[source], source, source)  # DSTU2: without fhir_comments
    assert convert(convert(RICH[source], source, target), target, source) == expected


# -- what the app reads ------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["stu3", "dstu2"])
def test_code_reaches_the_app_unchanged(target: str) -> None:
    out = convert(RICH["r4"], "r4", target)
    assert out["code"] == RICH["r4"]["code"]
    assert out["id"] == "m1"


# -- round trips over generated R4 Medications -------------------------------------------------

_text = st.text(alphabet=string.ascii_letters + "éü' ", min_size=1, max_size=12)
_id = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=8)
_concept = st.one_of(
    st.fixed_dictionaries({"text": _text}),
    st.fixed_dictionaries(
        {
            "coding": st.lists(
                st.fixed_dictionaries(
                    {"system": st.just(RXNORM), "code": _id}, optional={"display": _text}
                ),
                min_size=1,
                max_size=1,
            )
        },
        optional={"text": _text},
    ),
)
_quantity = st.fixed_dictionaries({"value": st.integers(1, 500)}, optional={"unit": st.just("mg")})
_ratio = st.fixed_dictionaries({"numerator": _quantity}, optional={"denominator": _quantity})
_ingredient = st.one_of(
    st.fixed_dictionaries({"itemCodeableConcept": _concept}),
    st.fixed_dictionaries(
        {"itemReference": st.fixed_dictionaries({"reference": _id.map("Substance/{}".format)})}
    ),
).flatmap(
    lambda item: st.fixed_dictionaries(
        {k: st.just(v) for k, v in item.items()},
        optional={"isActive": st.booleans(), "strength": _ratio},
    )
)
r4_medications = st.fixed_dictionaries(
    {"resourceType": st.just("Medication"), "id": _id, "code": _concept},
    optional={
        "identifier": st.lists(
            st.fixed_dictionaries(
                {"system": st.just("urn:oid:1.2"), "value": _id},
                optional={"use": st.sampled_from(["official", "old"])},
            ),
            min_size=1,
            max_size=2,
        ),
        "status": st.sampled_from(["active", "inactive", "entered-in-error"]),
        "manufacturer": st.fixed_dictionaries(
            {"reference": _id.map("Organization/{}".format)}, optional={"display": _text}
        ),
        "form": _concept,
        "amount": _ratio,
        "ingredient": st.lists(_ingredient, min_size=1, max_size=3),
        "batch": st.fixed_dictionaries(
            {}, optional={"lotNumber": _id, "expirationDate": st.just("2027-01-31")}
        ).filter(bool),
    },
)


@pytest.mark.parametrize("middle", ["stu3", "dstu2"])
@settings(max_examples=50, deadline=None)
@given(resource=r4_medications)
def test_r4_medication_survives_a_round_trip_through_an_older_version(
    middle: str, resource: dict[str, Any]
) -> None:
    older = convert(resource, "r4", middle)
    assert_valid(older, middle, "Medication", MEDICATION)
    assert convert(older, middle, "r4") == resource


# -- decisions (docs/conversion/medication.md) -------------------------------------------------

R4_BASE = {"resourceType": "Medication", "code": {"text": "X"}}
STU3_BASE = {"resourceType": "Medication", "code": {"text": "X"}}


def test_r4_identifiers_ride_in_extensions_before_r4() -> None:
    r4 = {**R4_BASE, "identifier": [{"system": "urn:oid:1.2", "value": "7"}]}
    stu3 = convert(r4, "r4", "stu3")
    assert "identifier" not in stu3
    assert stu3["extension"] == [
        {
            "url": XVER_R4 + "Medication.identifier",
            "valueIdentifier": {"system": "urn:oid:1.2", "value": "7"},
        }
    ]


def test_r4_amount_rides_in_an_extension_before_r4() -> None:
    ratio = {"numerator": {"value": 100}, "denominator": {"value": 1}}
    stu3 = convert({**R4_BASE, "amount": ratio}, "r4", "stu3")
    assert stu3["extension"] == [{"url": XVER_R4 + "Medication.amount", "valueRatio": ratio}]


def test_ingredient_strength_is_stu3_ingredient_amount() -> None:
    ratio = {"numerator": {"value": 5, "unit": "mg"}}
    r4 = {**R4_BASE, "ingredient": [{"itemCodeableConcept": {"text": "A"}, "strength": ratio}]}
    [ingredient] = convert(r4, "r4", "stu3")["ingredient"]
    assert ingredient == {"itemCodeableConcept": {"text": "A"}, "amount": ratio}


def test_r4_batch_is_stu3_package_batch() -> None:
    batch = {"lotNumber": "L1", "expirationDate": "2027-01-31"}
    assert convert({**R4_BASE, "batch": batch}, "r4", "stu3")["package"] == {"batch": [batch]}


def test_stu3_brand_and_otc_flags_ride_in_extensions_in_r4() -> None:
    stu3 = {**STU3_BASE, "isBrand": True, "isOverTheCounter": False}
    r4 = convert(stu3, "stu3", "r4")
    assert r4["extension"] == [
        {"url": XVER_STU3 + "Medication.isBrand", "valueBoolean": True},
        {"url": XVER_STU3 + "Medication.isOverTheCounter", "valueBoolean": False},
    ]
    assert convert(r4, "r4", "stu3") == stu3


def test_stu3_package_beyond_the_first_batch_rides_in_complex_extensions_in_r4() -> None:
    stu3 = {
        **STU3_BASE,
        "package": {
            "container": {"text": "bottle"},
            "content": [{"itemReference": {"reference": "Medication/c"}, "amount": {"value": 30}}],
            "batch": [{"lotNumber": "A1"}, {"lotNumber": "B2", "expirationDate": "2026-01-01"}],
        },
    }
    r4 = convert(stu3, "stu3", "r4")
    assert r4["batch"] == {"lotNumber": "A1"}
    assert r4["extension"] == [
        {
            "url": XVER_STU3 + "Medication.package.batch",
            "extension": [
                {"url": "lotNumber", "valueString": "B2"},
                {"url": "expirationDate", "valueDateTime": "2026-01-01"},
            ],
        },
        {
            "url": XVER_STU3 + "Medication.package.container",
            "valueCodeableConcept": {"text": "bottle"},
        },
        {
            "url": XVER_STU3 + "Medication.package.content",
            "extension": [
                {"url": "item", "valueReference": {"reference": "Medication/c"}},
                {"url": "amount", "valueQuantity": {"value": 30}},
            ],
        },
    ]
    assert convert(r4, "r4", "stu3") == stu3


def test_stu3_images_ride_in_extensions_outside_stu3() -> None:
    image = {"contentType": "image/png", "url": "https://x.example/a.png"}
    stu3 = {**STU3_BASE, "image": [image]}
    for target in ("r4", "dstu2"):
        out = convert(stu3, "stu3", target)
        assert out["extension"] == [
            {"url": XVER_STU3 + "Medication.image", "valueAttachment": image}
        ]
        assert convert(out, target, "stu3") == stu3


def test_status_and_otc_flag_ride_in_extensions_in_dstu2() -> None:
    stu3 = {**STU3_BASE, "status": "inactive", "isBrand": True, "isOverTheCounter": True}
    dstu2 = convert(stu3, "stu3", "dstu2")
    assert dstu2["isBrand"] is True
    assert dstu2["extension"] == [
        {"url": XVER_STU3 + "Medication.status", "valueCode": "inactive"},
        {"url": XVER_STU3 + "Medication.isOverTheCounter", "valueBoolean": True},
    ]
    assert convert(dstu2, "dstu2", "stu3") == stu3


def test_form_ingredients_and_batches_move_into_dstu2_product() -> None:
    stu3 = {
        **STU3_BASE,
        "form": {"text": "tablet"},
        "ingredient": [
            {"itemReference": {"reference": "Substance/s"}, "amount": {"numerator": {"value": 5}}}
        ],
        "package": {"container": {"text": "box"}, "batch": [{"lotNumber": "L"}]},
    }
    dstu2 = convert(stu3, "stu3", "dstu2")
    assert dstu2["product"] == {
        "form": {"text": "tablet"},
        "ingredient": [
            {"item": {"reference": "Substance/s"}, "amount": {"numerator": {"value": 5}}}
        ],
        "batch": [{"lotNumber": "L"}],
    }
    assert dstu2["package"] == {"container": {"text": "box"}}
    assert convert(dstu2, "dstu2", "stu3") == stu3


def test_coded_ingredient_becomes_a_display_reference_in_dstu2() -> None:
    concept = {"coding": [{"system": RXNORM, "code": "1", "display": "Amox"}]}
    stu3 = {**STU3_BASE, "ingredient": [{"itemCodeableConcept": concept, "isActive": True}]}
    dstu2 = convert(stu3, "stu3", "dstu2")
    assert dstu2["product"]["ingredient"] == [
        {
            "item": {
                "display": "Amox",
                "extension": [
                    {
                        "url": XVER_STU3 + "Medication.ingredient.item",
                        "valueCodeableConcept": concept,
                    }
                ],
            },
            "extension": [
                {"url": XVER_STU3 + "Medication.ingredient.isActive", "valueBoolean": True}
            ],
        }
    ]
    assert convert(dstu2, "dstu2", "stu3") == stu3


def test_coded_package_content_becomes_a_display_reference_in_dstu2() -> None:
    stu3 = {**STU3_BASE, "package": {"content": [{"itemCodeableConcept": {"text": "capsule"}}]}}
    [content] = convert(stu3, "stu3", "dstu2")["package"]["content"]
    assert content["item"]["display"] == "capsule"
    assert convert(convert(stu3, "stu3", "dstu2"), "dstu2", "stu3") == stu3


def test_dstu2_product_unfolds_into_stu3_elements() -> None:
    dstu2 = RICH["dstu2"]
    stu3 = convert(dstu2, "dstu2", "stu3")
    assert stu3["form"] == {"text": "capsule"}
    assert stu3["ingredient"] == [
        {"itemReference": {"reference": "Substance/amox"}, "amount": {"numerator": {"value": 250}}}
    ]
    assert stu3["package"] == {
        "container": {"text": "bottle"},
        "content": [{"itemReference": {"reference": "Medication/caps"}, "amount": {"value": 30}}],
        "batch": [{"lotNumber": "A1", "expirationDate": "2026-01-01"}],
    }
    assert "product" not in stu3


def test_manufacturer_reference_loses_r4_type_and_dstu2_identifier() -> None:
    r4 = {**R4_BASE, "manufacturer": {"reference": "Organization/m", "type": "Organization"}}
    assert convert(r4, "r4", "stu3")["manufacturer"] == {"reference": "Organization/m"}
    stu3 = {**STU3_BASE, "manufacturer": {"identifier": {"value": "ACME"}}}
    # §2.3 proxy decision: DSTU2 has no Reference.identifier; its value becomes display, and
    # the identifier rides in 3.0/extension-Reference.identifier (issue 15 item 8).
    dstu2 = convert(stu3, "stu3", "dstu2")
    assert dstu2["manufacturer"] == {
        "display": "ACME",
        "extension": [{"url": XVER_IDENTIFIER, "valueIdentifier": {"value": "ACME"}}],
    }
    assert convert(dstu2, "dstu2", "stu3")["manufacturer"] == stu3["manufacturer"]


XVER_IDENTIFIER = "http://hl7.org/fhir/3.0/StructureDefinition/extension-Reference.identifier"
