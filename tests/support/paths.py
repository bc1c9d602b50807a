"""Where the repository and the shared fixtures are (``../shared`` beside the clone, as in CI)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("EHRB_SHARED_DIR", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures"
