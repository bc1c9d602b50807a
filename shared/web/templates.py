"""Jinja2 templates: an application's own over the kit's, in an Environment made on first render.

Jinja2 is imported here only when the first page is rendered, never when ``function_app`` is
imported (cold start). Every template is autoescaped whatever its name, an undefined name is an
error rather than an empty string, and templates are read once (no reload checks per request).
The kit's templates are reached as ``kit/…`` (``kit/base.html``, ``kit/forms.html``), looked up
before the application's folder, so an application cannot shadow them by accident.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jinja2 import Environment

KIT_TEMPLATES = Path(__file__).parent / "templates"
KIT_PREFIX = "kit"


class Templates:
    """Renders one application's templates (its folder) and the kit's."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._environment: Environment | None = None
        self._lock = threading.Lock()

    def render(self, name: str, context: Mapping[str, Any]) -> str:
        """The template ``name`` rendered with ``context``."""
        return self.environment().get_template(name).render(context)

    def environment(self) -> Environment:
        """The Jinja2 Environment, created on first use."""
        with self._lock:
            if self._environment is None:
                self._environment = _environment(self._folder)
            return self._environment


def _environment(folder: Path) -> Environment:
    from jinja2 import (
        ChoiceLoader,
        Environment,
        FileSystemLoader,
        PrefixLoader,
        StrictUndefined,
    )

    kit = PrefixLoader({KIT_PREFIX: FileSystemLoader(KIT_TEMPLATES)})
    return Environment(
        loader=ChoiceLoader([kit, FileSystemLoader(folder)]),
        autoescape=True,
        undefined=StrictUndefined,
        auto_reload=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
