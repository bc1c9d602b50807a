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


def test_bootstrap_keeps_an_existing_admin_key(tmp_path: Path):
    path = ensure_local_settings(tmp_path / "local.settings.json", SAMPLE)
    first = json.loads(path.read_text())["Values"]["EHRB_LOCAL_ADMIN_KEY"]
    ensure_local_settings(path, SAMPLE)
    assert json.loads(path.read_text())["Values"]["EHRB_LOCAL_ADMIN_KEY"] == first


def test_sample_names_only_settings_the_code_reads():
    from shared.settings import SETTINGS

    known = {s.name for s in SETTINGS} | {"FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsStorage"}
    assert set(json.loads(SAMPLE.read_text())["Values"]) <= known
