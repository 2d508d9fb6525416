"""One models folder for the app and the CLI, in a checkout and in an installed package:
``MODELS_DIR``, else ``models/`` of a checkout, else a per-user data folder."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

import speech.models_cli
from contactcenter.cli import main
from contactcenter.config import (
    PROJECT_ROOT,
    ConfigError,
    default_models_dir,
    load_settings,
)
from speech.model_store import MANIFEST_PATH, load_manifest, models_directory, resolve_model
from tests.deploy.layout import pyproject
from tests.speech.test_speech_cli import ArchiveServer, archive_url, manifest_for

__all__ = ["archive_url"]  # the fixture, imported to be used here


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def test_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI reads this manifest instead of the shipped one (its URLs are on loopback)."""
    path = tmp_path / "manifest.json"
    monkeypatch.setattr(speech.models_cli, "MANIFEST_PATH", path)
    return path


def test_a_checkout_keeps_its_models_in_models() -> None:
    assert default_models_dir() == PROJECT_ROOT / "models"
    assert load_settings({}).models_dir == str(PROJECT_ROOT / "models")
    assert models_directory() == PROJECT_ROOT / "models"


def test_an_installed_package_uses_a_data_folder_its_user_can_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # contactcenter/ inside site-packages: no pyproject.toml next to it, models/ would be
    # site-packages/models
    site_packages = tmp_path / "site-packages"
    (site_packages / "contactcenter").mkdir(parents=True)
    (site_packages / "models").mkdir()
    data_home = tmp_path / "xdg"
    assert default_models_dir({"XDG_DATA_HOME": str(data_home)}, site_packages) == (
        data_home / "contactcenter" / "models"
    )
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_models_dir({}, site_packages) == (
        tmp_path / "home" / ".local" / "share" / "contactcenter" / "models"
    )


def test_models_dir_is_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings({"MODELS_DIR": str(tmp_path / "m")}).models_dir == str(tmp_path / "m")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ConfigError) as info:
        load_settings({"MODELS_DIR": str(a_file)})
    assert info.value.variable == "MODELS_DIR"
    monkeypatch.setenv("MODELS_DIR", str(tmp_path / "m"))
    assert models_directory() == tmp_path / "m"


def test_the_manifest_is_package_data() -> None:
    package = MANIFEST_PATH.parent
    assert package.name == "speech"
    assert (package / "__init__.py").is_file()
    patterns = pyproject()["tool"]["setuptools"]["package-data"]["*"]
    assert any(fnmatch.fnmatch(MANIFEST_PATH.name, p) for p in patterns)
    names = [m["name"] for m in load_manifest()["models"]]
    assert "vosk-model-small-ru-0.22" in names


def test_download_and_list_use_models_dir_and_the_app_finds_the_model(
    archive_url: str, test_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "models"
    monkeypatch.setenv("MODELS_DIR", str(models))
    digest = hashlib.sha256(ArchiveServer.body).hexdigest()
    test_manifest.write_text(json.dumps(manifest_for(archive_url, digest)), encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(main, ["models", "download", "vosk-model-test"])
    assert result.exit_code == 0, result.output
    assert f"installed in {models / 'vosk-model-test'}" in result.output
    listed = runner.invoke(main, ["models", "list"])
    assert listed.exit_code == 0, listed.output
    assert f"models folder: {models}" in listed.output
    assert f"present (16000 Hz) {models / 'vosk-model-test'}" in listed.output
    # the app resolves from the same folder (with the same manifest)
    monkeypatch.setattr("speech.model_store.MANIFEST_PATH", test_manifest)
    found = resolve_model("ru", allow_dev_fallback=False)
    assert found.path == models / "vosk-model-test"
    assert found.source == "models_dir"


def test_download_offline_is_clear_and_writes_only_under_models_dir(
    test_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "models"
    monkeypatch.setenv("MODELS_DIR", str(models))
    url = f"http://127.0.0.1:{_closed_port()}/vosk-model-test.zip"
    test_manifest.write_text(json.dumps(manifest_for(url, "0" * 64)), encoding="utf-8")
    before = sorted(p.name for p in (PROJECT_ROOT / "models").iterdir())
    result = CliRunner().invoke(main, ["models", "download", "vosk-model-test", "--timeout", "2"])
    assert result.exit_code == 1
    assert "is this machine offline?" in result.output
    assert "Traceback" not in result.output
    assert (models / ".downloads").is_dir()
    assert not (models / "vosk-model-test").exists()
    assert sorted(p.name for p in (PROJECT_ROOT / "models").iterdir()) == before


def test_an_unwritable_models_dir_is_a_clear_error(
    test_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("MODELS_DIR", str(blocker / "models"))
    url = f"http://127.0.0.1:{_closed_port()}/vosk-model-test.zip"
    test_manifest.write_text(json.dumps(manifest_for(url, "0" * 64)), encoding="utf-8")
    result = CliRunner().invoke(main, ["models", "download", "vosk-model-test"])
    assert result.exit_code == 1
    assert f"cannot write the model under {blocker / 'models'}" in result.output
    monkeypatch.setenv("MODELS_DIR", str(blocker))
    refused = CliRunner().invoke(main, ["models", "list"])
    assert refused.exit_code == 2
    assert "MODELS_DIR" in refused.output
