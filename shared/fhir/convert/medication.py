"""Medication between R4, STU3 and DSTU2: ``_include``d by MedicationRequest searches and
contained in MedicationRequests; the app shows its ``code`` (as medicationReference.display).
docs/conversion/mapping.md has no Medication section; docs/conversion/medication.md is the
reference.

Structure per release (DSTU2 1.0.2, STU3 3.0, R4 4.0.1 definitions):
  DSTU2: code, isBrand, manufacturer, product{form, ingredient{item Ref, amount}, batch[]},
         package{container, content{item Ref, amount}}
  STU3:  code, status, isBrand, isOverTheCounter, manufacturer, form,
         ingredient{item[x], isActive, amount}, package{container, content{item[x], amount},
         batch[]}, image[]
  R4:    identifier[], code, status, manufacturer, form, amount (Ratio),
         ingredient{item[x], isActive, strength}, batch (0..1)
"""

from __future__ import annotations

from typing import Any

from shared.fhir.convert.common import (
    Resource,
    add_xver,
    codeable_text,
    items,
    prune_empty_twins,
    rename,
    take_all_xver,
    take_complex_xver,
    take_xver,
)
from shared.fhir.convert.datatypes import convert_datatype, convert_elements

_FIELDS = {"manufacturer": "Reference"}
_ITEM_FIELDS = {"itemReference": "Reference"}
# STU3 backbones R4 has no home for, carried as complex extensions (HL7's convention, as in
# location.py): element → (sub-extension url, value key) for each child.
_BATCH = {
    "lotNumber": ("lotNumber", "valueString"),
    "expirationDate": ("expirationDate", "valueDateTime"),
}
_CONTENT = {
    "itemCodeableConcept": ("item", "valueCodeableConcept"),
    "itemReference": ("item", "valueReference"),
    "amount": ("amount", "valueQuantity"),
}


# -- helpers -----------------------------------------------------------------------------------


def _carry(holder: Resource, source: str, path: str, key: str, value_key: str) -> None:
    """Move ``holder[key]`` (each item of a list) into cross-version extensions."""
    value = holder.pop(key, None)
    holder.pop("_" + key, None)
    for each in value if isinstance(value, list) else [value]:
        add_xver(holder, source, path, value_key, each)


def _restore(holder: Resource, source: str, path: str, key: str, *, many: bool = False) -> None:
    """Undo ``_carry``: one value, or all of them as a list."""
    if many:
        values = take_all_xver(holder, source, path)
        if values:
            holder[key] = values
    elif (value := take_xver(holder, source, path)) is not None:
        holder[key] = value


def _to_complex(
    holder: Resource, path: str, children: dict[str, tuple[str, str]], values: list[Any]
) -> None:
    for value in values:
        parts = [
            {"url": url, key: value[child]}
            for child, (url, key) in children.items()
            if isinstance(value, dict) and child in value
        ]
        add_xver(holder, "stu3", path, "extension", parts)


def _from_complex(holder: Resource, path: str, children: dict[str, tuple[str, str]]) -> list[Any]:
    found = []
    for parts in take_complex_xver(holder, "stu3", path):
        value: dict[str, Any] = {}
        for part in items(parts):
            for child, (child_url, key) in children.items():
                if part.get("url") == child_url and key in part:
                    value[child] = part[key]
        found.append(value)
    return found


def _references(medication: Resource, source: str, target: str) -> None:
    convert_elements(medication, _FIELDS, source, target)
    for ingredient in items(medication.get("ingredient")):
        convert_elements(ingredient, _ITEM_FIELDS, source, target)
    package = medication.get("package")
    for content in items(package.get("content") if isinstance(package, dict) else None):
        convert_elements(content, _ITEM_FIELDS, source, target)


# -- R4 ⇄ STU3 ---------------------------------------------------------------------------------


def r4_to_stu3(medication: Resource) -> Resource:
    """R4 Medication → STU3: strength → amount, batch → package.batch; identifier and amount
    carried; STU3 elements carried by a previous STU3 → R4 step restored."""
    _references(medication, "r4", "stu3")
    identifiers = [
        convert_datatype(i, "Identifier", "r4", "stu3")
        for i in items(medication.pop("identifier", None))
    ]
    for identifier in identifiers:
        add_xver(medication, "r4", "Medication.identifier", "valueIdentifier", identifier)
    _carry(medication, "r4", "Medication.amount", "amount", "valueRatio")
    for ingredient in items(medication.get("ingredient")):
        rename(ingredient, [("strength", "amount")])
    # Official R3⇄R4 map: R4 batch is STU3 package.batch.
    batches = items(medication.pop("batch", None))
    batches += _from_complex(medication, "Medication.package.batch", _BATCH)
    package: dict[str, Any] = {}
    container = take_xver(medication, "stu3", "Medication.package.container")
    if container is not None:
        package["container"] = container
    content = _from_complex(medication, "Medication.package.content", _CONTENT)
    if content:
        package["content"] = content
    if batches:
        package["batch"] = batches
    if package:
        medication["package"] = package
    for key in ("isBrand", "isOverTheCounter"):
        _restore(medication, "stu3", f"Medication.{key}", key)
    _restore(medication, "stu3", "Medication.image", "image", many=True)
    return medication


def stu3_to_r4(medication: Resource) -> Resource:
    """STU3 Medication → R4: amount → strength, first package.batch → batch; isBrand,
    isOverTheCounter, image and the rest of package carried; R4 elements restored."""
    _references(medication, "stu3", "r4")
    for key in ("isBrand", "isOverTheCounter"):
        _carry(medication, "stu3", f"Medication.{key}", key, "valueBoolean")
    _carry(medication, "stu3", "Medication.image", "image", "valueAttachment")
    for ingredient in items(medication.get("ingredient")):
        rename(ingredient, [("amount", "strength")])
    package = medication.pop("package", None)
    if isinstance(package, dict):
        batches = items(package.get("batch"))
        if batches:
            medication["batch"] = batches[0]
        _to_complex(medication, "Medication.package.batch", _BATCH, batches[1:])
        container = package.get("container")
        add_xver(
            medication, "stu3", "Medication.package.container", "valueCodeableConcept", container
        )
        _to_complex(
            medication, "Medication.package.content", _CONTENT, items(package.get("content"))
        )
    _restore(medication, "r4", "Medication.amount", "amount")
    _restore(medication, "r4", "Medication.identifier", "identifier", many=True)
    if "identifier" in medication:
        medication["identifier"] = [
            convert_datatype(i, "Identifier", "stu3", "r4") for i in medication["identifier"]
        ]
    return medication


# -- STU3 ⇄ DSTU2 ------------------------------------------------------------------------------

_ITEM_CONCEPT = "Medication.ingredient.item"
_CONTENT_CONCEPT = "Medication.package.content.item"


def _item_to_dstu2(holder: dict[str, Any], path: str) -> None:
    """item[x] → DSTU2's Reference-only ``item``: a concept becomes its text as ``display``,
    the concept itself carried on the reference (proxy decision: item is 1..1)."""
    if "itemReference" in holder:
        holder["item"] = holder.pop("itemReference")
    elif isinstance(holder.get("itemCodeableConcept"), dict):
        concept = holder.pop("itemCodeableConcept")
        item: dict[str, Any] = {}
        text = codeable_text(concept)
        if text:
            item["display"] = text
        add_xver(item, "stu3", path, "valueCodeableConcept", concept)
        holder["item"] = item


def _item_from_dstu2(holder: dict[str, Any], path: str) -> None:
    item = holder.pop("item", None)
    if not isinstance(item, dict):
        return
    concept = take_xver(item, "stu3", path)
    if concept is not None:
        holder["itemCodeableConcept"] = concept
    else:
        holder["itemReference"] = item


def stu3_to_dstu2(medication: Resource) -> Resource:
    """STU3 Medication → DSTU2: form, ingredient and package.batch move into ``product``;
    status, isOverTheCounter, image and ingredient.isActive carried."""
    _references(medication, "stu3", "dstu2")
    _carry(medication, "stu3", "Medication.status", "status", "valueCode")
    _carry(medication, "stu3", "Medication.isOverTheCounter", "isOverTheCounter", "valueBoolean")
    _carry(medication, "stu3", "Medication.image", "image", "valueAttachment")
    product: dict[str, Any] = {}
    if "form" in medication:
        product["form"] = medication.pop("form")
    ingredients = items(medication.pop("ingredient", None))
    for ingredient in ingredients:
        _item_to_dstu2(ingredient, _ITEM_CONCEPT)
        _carry(ingredient, "stu3", "Medication.ingredient.isActive", "isActive", "valueBoolean")
    if ingredients:
        product["ingredient"] = ingredients
    package = medication.pop("package", None)
    if isinstance(package, dict):
        batches = items(package.pop("batch", None))
        if batches:
            product["batch"] = batches
        for content in items(package.get("content")):
            _item_to_dstu2(content, _CONTENT_CONCEPT)
        if package:
            medication["package"] = package
    if product:
        medication["product"] = product
    return medication


def dstu2_to_stu3(medication: Resource) -> Resource:
    """DSTU2 Medication → STU3: ``product`` unfolds into form, ingredient and package.batch;
    carried STU3 elements restored."""
    prune_empty_twins(medication)  # stripped fhir_comments leave empty "_x" objects
    product = medication.pop("product", None)
    product = product if isinstance(product, dict) else {}
    if "form" in product:
        medication["form"] = product["form"]
    ingredients = items(product.get("ingredient"))
    for ingredient in ingredients:
        _item_from_dstu2(ingredient, _ITEM_CONCEPT)
        _restore(ingredient, "stu3", "Medication.ingredient.isActive", "isActive")
    if ingredients:
        medication["ingredient"] = ingredients
    package = medication.pop("package", None)
    package = package if isinstance(package, dict) else {}
    for content in items(package.get("content")):
        _item_from_dstu2(content, _CONTENT_CONCEPT)
    batches = items(product.get("batch"))
    if batches:
        package["batch"] = batches
    if package:
        medication["package"] = package
    _restore(medication, "stu3", "Medication.status", "status")
    _restore(medication, "stu3", "Medication.isOverTheCounter", "isOverTheCounter")
    _restore(medication, "stu3", "Medication.image", "image", many=True)
    _references(medication, "dstu2", "stu3")
    return medication
