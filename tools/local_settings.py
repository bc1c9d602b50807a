"""``local.settings.json``: created from the committed sample, read the way Core Tools reads it.

Development only. The file is git-ignored because the bootstrap writes a generated admin key
into it.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "local.settings.sample.json"
LOCAL = ROOT / "local.settings.json"
ADMIN_KEY_PLACEHOLDER = "generated-by-bootstrap"


def ensure_local_settings(path: Path = LOCAL, sample: Path = SAMPLE) -> Path:
    """Create ``local.settings.json`` from the sample with a fresh admin key, if missing."""
    document = json.loads((path if path.exists() else sample).read_text("utf-8"))
    values = document.setdefault("Values", {})
    if values.get("EHRB_LOCAL_ADMIN_KEY", "") in ("", ADMIN_KEY_PLACEHOLDER):
        values["EHRB_LOCAL_ADMIN_KEY"] = secrets.token_urlsafe(32)
    elif path.exists():
        return path
    write_private(path, json.dumps(document, indent=2) + "\n")
    return path


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` through a file created owner-only (0600).

    Created with that mode, not chmodded after writing: in between, another local user could
    open a world-readable file and keep reading the key from it.
    """
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


class LocalSettingsError(ValueError):
    """local.settings.json cannot be read as Core Tools would read it."""


@dataclass(frozen=True)
class LocalSettings:
    """What ``apply_local_settings`` did: variables it set and the ``Host.LocalHttpPort``."""

    applied: tuple[str, ...] = ()
    http_port: int | None = None


def apply_local_settings(
    path: str | os.PathLike[str] = LOCAL, environ: MutableMapping[str, str] | None = None
) -> LocalSettings:
    """Copy local.settings.json "Values" into the environment, as Core Tools does.

    Variables already set win, so a shell can override the file. A missing file is fine.
    """
    env = os.environ if environ is None else environ
    file = Path(path)
    if not file.exists():
        return LocalSettings()
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LocalSettingsError(f"cannot read {file}: {exc}") from exc
    if not isinstance(data, dict):
        raise LocalSettingsError(f"{file}: must hold a JSON object")
    if data.get("IsEncrypted"):
        # Core Tools encrypts with a machine key we cannot use; `func settings decrypt` undoes it.
        raise LocalSettingsError(f"{file}: encrypted; run `func settings decrypt` first")
    values = data.get("Values", {})
    if not isinstance(values, dict):
        raise LocalSettingsError(f"{file}: Values must be an object")
    applied = []
    for name, value in values.items():
        if not isinstance(value, str | int | float):
            raise LocalSettingsError(f"{file}: Values.{name} must be a string")
        if name not in env:
            # Core Tools reads Values as strings; a JSON number or boolean becomes its text
            # (Python's str(True) is "True", as .NET writes it).
            env[name] = str(value)
            applied.append(name)
    host_section = data.get("Host") or {}
    port = host_section.get("LocalHttpPort") if isinstance(host_section, dict) else None
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
        raise LocalSettingsError(f"{file}: Host.LocalHttpPort must be an integer")
    return LocalSettings(applied=tuple(applied), http_port=port)
