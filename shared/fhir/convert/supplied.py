"""Values the proxy supplies where the target requires an element the source lacks (§2.6).

Each one is marked with a data-absent-reason extension (``unknown``): the app sees an element,
and the way back knows the source had none and removes it. Section numbers (§) refer to
docs/conversion/mapping.md.
"""

from __future__ import annotations

from typing import Any

from shared.fhir.convert.common import items

DATA_ABSENT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
# The marker itself; copy it before putting it in a document.
MARKER = {"url": DATA_ABSENT, "valueCode": "unknown"}


def supplied() -> dict[str, Any]:
    """A value with nothing but the marker (data-absent-reason ``unknown``)."""
    return {"extension": [dict(MARKER)]}


def is_supplied(value: Any) -> bool:
    """True when ``value`` (an element or a primitive's ``_x`` twin) carries a data-absent-reason
    extension, whatever its code."""
    return isinstance(value, dict) and any(
        extension.get("url") == DATA_ABSENT for extension in items(value.get("extension"))
    )


def carries_marker(value: Any) -> bool:
    """True when ``value`` carries the marker itself; unlike ``is_supplied``, another
    data-absent-reason code (one the source wrote) does not count."""
    extensions = value.get("extension") if isinstance(value, dict) else None
    return isinstance(extensions, list) and MARKER in extensions
