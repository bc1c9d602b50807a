"""Reading a submitted form, and the per-field errors a form page shows."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from shared.http import Request
from shared.web.errors import PageError

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"


@dataclass
class FieldErrors:
    """Messages by form field name, in the order they were found ("" for the whole form)."""

    messages: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        """Record the first message for ``name``."""
        self.messages.setdefault(name, message)

    def __bool__(self) -> bool:
        return bool(self.messages)


def first_values(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """The first value of each name."""
    values: dict[str, str] = {}
    for name, value in pairs:
        values.setdefault(name, value)
    return values


def read_form(request: Request, *, max_bytes: int, max_fields: int) -> dict[str, str]:
    """The body as UTF-8 form data (first value of each field); PageError when it is not one."""
    media_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
    if media_type != FORM_MEDIA_TYPE:
        raise PageError(415, "Unsupported form", "Send the form as a web browser does.")
    if len(request.body) > max_bytes:
        raise PageError(413, "Form too large", "The form is larger than this page accepts.")
    try:
        pairs = parse_qsl(
            request.body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=max_fields,
        )
    except ValueError:  # also UnicodeDecodeError: the body or an escape is not UTF-8
        raise PageError(400, "Bad request", "The form could not be read.") from None
    return first_values(pairs)
