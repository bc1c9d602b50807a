"""local.settings.json: generated from the sample, read the way Core Tools reads it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.local_settings import (
    ADMIN_KEY_PLACEHOLDER,
    SAMPLE,
    LocalSettingsError,
    apply_local_settings,
    ensure_local_settings,
)


def test_values_load_without_overriding_the_environment(tmp_path: Path):
    path = tmp_path / "local.settings.json"
    document = {
        "Values": {"EHRB_SECRET_STORE": "local", "EHRB_CACHE_TTL_SECONDS": 30},
        "Host": {"LocalHttpPort": 7072},
    }
    path.write_text(json.dumps(document))
    env = {"EHRB_SECRET_STORE": "keyvault"}
    loaded = apply_local_settings(path, env)
    assert env == {"EHRB_SECRET_STORE": "keyvault", "EHRB_CACHE_TTL_SECONDS": "30"}
    assert loaded.applied == ("EHRB_CACHE_TTL_SECONDS",)
    assert loaded.http_port == 7072


def test_missing_file_changes_nothing(tmp_path: Path):
    env: dict[str, str] = {}
    assert apply_local_settings(tmp_path / "absent.json", env).applied == ()
    assert env == {}


@pytest.mark.parametrize(
    "document",
    [{"IsEncrypted": True, "Values": {"A": "x"}}, {"Values": []}, {"Values": {"A": {}}}, []],
)
def test_unusable_files_are_refused_without_side_effects(tmp_path: Path, document):
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps(document))
    env: dict[str, str] = {}
    with pytest.raises(LocalSettingsError):
        apply_local_settings(path, env)
    assert env == {}


def test_bootstrap_generates_a_private_admin_key_from_the_sample(tmp_path: Path):
    path = ensure_local_settings(tmp_path / "local.settings.json", SAMPLE)
    values = json.loads(path.read_text())["Values"]
    assert values["EHRB_LOCAL_ADMIN_KEY"] not in ("", ADMIN_KEY_PLACEHOLDER)
    assert len(values["EHRB_LOCAL_ADMIN_KEY"]) >= 43
    assert path.stat().st_mode & 0o777 == 0o600


def _modes_at_creation(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record every mode files are created with; chmod after the fact is not counted."""
    import builtins
    import os

    created: list[int] = []
    real_open, real_builtin_open = os.open, builtins.open

    def os_open(path, flags, mode=0o777, *args, **kwargs):
        if flags & os.O_CREAT:
            created.append(mode & ~0o022)
        return real_open(path, flags, mode, *args, **kwargs)

    def builtin_open(file, mode="r", *args, **kwargs):
        if any(flag in mode for flag in "wax") and not isinstance(file, int):
            created.append(0o666 & ~0o022)  # open() creates files 0666 less the umask
        return real_builtin_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", builtin_open)
    return created


def test_row_109_local_settings_are_created_owner_only_not_chmodded_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    created = _modes_at_creation(monkeypatch)
    ensure_local_settings(tmp_path / "local.settings.json", SAMPLE)
    assert created and all(mode == 0o600 for mode in created)


def test_row_109_demo_credentials_are_created_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from tools.bootstrap import _write_credentials

    created = _modes_at_creation(monkeypatch)
    path = tmp_path / ".local" / "demo-credentials.json"
    _write_credentials(path, {"client_secret": "s"})
    assert created and all(mode == 0o600 for mode in created)
    assert path.stat().st_mode & 0o777 == 0o600


def test_bootstrap_keeps_an_existing_admin_key(tmp_path: Path):
    path = ensure_local_settings(tmp_path / "local.settings.json", SAMPLE)
    first = json.loads(path.read_text())["Values"]["EHRB_LOCAL_ADMIN_KEY"]
    ensure_local_settings(path, SAMPLE)
    assert json.loads(path.read_text())["Values"]["EHRB_LOCAL_ADMIN_KEY"] == first


def test_sample_names_only_settings_the_code_reads():
    from shared.settings import SETTINGS

    known = {s.name for s in SETTINGS} | {"FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsStorage"}
    assert set(json.loads(SAMPLE.read_text())["Values"]) <= known
