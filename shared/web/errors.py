"""The one exception a page handler raises to answer with a short message page."""

from __future__ import annotations


class PageError(Exception):
    """A request answered with a message page: status, heading, one sentence, extra headers."""

    def __init__(
        self, status: int, title: str, text: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(text)
        self.status = status
        self.title = title
        self.text = text
        self.headers = headers or {}
