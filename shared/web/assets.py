"""The kit's stylesheet and script: files in ``static/``, inlined into every page.

Inlined rather than served: no second request per page (every answer is ``no-store``), and the
Content-Security-Policy allows exactly these texts by their SHA-256, with no 'unsafe-inline'
and no nonce. Read once per process, on the first page rendered.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

STATIC = Path(__file__).parent / "static"
STYLESHEET = "kit.css"
SCRIPT = "kit.js"


@dataclass(frozen=True)
class Asset:
    """A static text and the CSP source expression (``'sha256-…'``) that allows it inline."""

    text: str
    source: str


@cache
def asset(name: str) -> Asset:
    """The static file ``name`` and its hash."""
    text = (STATIC / name).read_text(encoding="utf-8")
    # Inside <style> or <script> the text is raw: "</" could close the element early.
    if "</" in text:
        raise ValueError(f"{name} must not contain '</'")
    digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
    return Asset(text, f"'sha256-{digest}'")
