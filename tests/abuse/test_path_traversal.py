"""Path traversal: every file path a request, a Twilio callback or an upload can influence —
``../``, absolute paths, ``%2e%2e%2f``, NUL bytes, backslashes — gets a clean 4xx or a clear
error, and no file outside the intended folder is read, created or deleted.

Covered: the recording audio of the API (``/api/recordings/<sid>``) and of the console
(``/console/recordings/<sid>``), the recording status callback (``RecordingSid``,
``RecordingUrl``) and the copy it downloads, :class:`~ivr.recording_storage.LocalRecordingStorage`
(names saved, stored locations read, linked, deleted), ``contactcenter recordings get --out``,
the text-to-speech cache (prompt text hashed into a file name), billing uploads stored in
``IMPORTS_DIR`` (``/api/imports/<kind>``, multipart and raw body) and the do-not-contact list
upload (``/api/dnc/import``). The call simulator's audio paths come from the developer's own
script file and command line, never from a request, so they are not a boundary here.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from contactcenter.cli import main
from contactcenter.config import Settings
from contactcenter.services import Services
from crm_store.db import Database
from crm_store.import_runs import get_run
from crm_store.models import CallRecording
from ivr.errors import RecordingNotStored, RecordingStorageError
from ivr.recording_storage import LocalRecordingStorage
from ivr.recordings import download_recording
from speech.tts import TextToSpeech
from telephony.errors import TelephonyError
from telephony.signing import sign
from tests.abuse.conftest import ConsoleClient, auth
from tests.app.api_world import wav
from tests.console.pages_fixtures import MOSCOW, add_account, add_call, add_recording
from webhooks import services_of

#: What a recording's SID, a file name or a stored location may be made of by an attacker.
TRAVERSALS = (
    "../../../../etc/passwd",
    "..\\..\\..\\windows\\win.ini",
    "/etc/passwd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "..%2F..%2Fsecret.wav",
    "....//....//etc/passwd",
    "a/../../secret.wav",
    "secret.wav\x00.wav",
    "\x00",
    "C:\\boot.ini",
    "..",
    ".",
)
SECRET = b"RIFF-the-secret-outside-every-folder"
GOOD_SID = "RE" + "1" * 32
CALL_SID = "CA" + "1" * 32


def files_under(root: Path) -> set[Path]:
    """Every file below ``root`` (recursively)."""
    return {p for p in root.rglob("*") if p.is_file()}


def outside(root: Path, folder: Path) -> set[Path]:
    """The files below ``root`` that are not below ``folder``."""
    folder = folder.resolve()
    return {p for p in files_under(root) if not p.resolve().is_relative_to(folder)}


@pytest.fixture
def services(abuse_app: Flask) -> Services:
    """The app's services."""
    return services_of(abuse_app)


@pytest.fixture
def recordings_dir(services: Services) -> Path:
    """RECORDINGS_DIR of the app (created)."""
    folder = Path(services.settings.recordings_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file next to RECORDINGS_DIR that no request may read."""
    path = tmp_path / "secret.wav"
    path.write_bytes(SECRET)
    return path


@pytest.fixture
def stored_call(db: Database, recordings_dir: Path) -> int:
    """A Moscow call with a downloaded recording ``GOOD_SID`` (under RECORDINGS_DIR)."""
    (recordings_dir / f"{GOOD_SID}.wav").write_bytes(wav())
    with db.transaction() as s:
        account = add_account(s, "Иванов Иван", MOSCOW, "5500112233", phone="+79161234567")
        call = add_call(s, account, sid=CALL_SID)
        add_recording(s, call, GOOD_SID, str(recordings_dir / f"{GOOD_SID}.wav"))
        return int(call.id)


def _refused(response: Any) -> str:
    """The body of a clean 4xx answer (never the secret, never a traceback)."""
    body = response.get_data()
    assert 400 <= response.status_code < 500, (response.status_code, body[:300])
    assert SECRET not in body
    assert b"root:" not in body
    assert b"Traceback" not in body
    return body.decode("utf-8", "replace")


def _sid_urls(prefix: str) -> Iterator[str]:
    """``prefix`` + every traversal, raw and percent-encoded (``/`` included)."""
    for value in TRAVERSALS:
        yield prefix + value.replace("\x00", "%00")
        yield prefix + quote(value, safe="")


# --------------------------------------------------------------------------- recordings


def test_the_recording_apis_refuse_a_traversing_sid(
    api: FlaskClient,
    console: ConsoleClient,
    admin_token: str,
    stored_call: int,
    secret: Path,
    tmp_path: Path,
) -> None:
    before = files_under(tmp_path)
    for url in [*_sid_urls("/api/recordings/"), *_sid_urls("/console/recordings/")]:
        client = api if url.startswith("/api/") else console.client
        _refused(client.get(url, headers=auth(admin_token)))
    assert files_under(tmp_path) == before
    # the stored copy itself is served (the refusals above are not a broken route)
    good = api.get(f"/api/recordings/{GOOD_SID}", headers=auth(admin_token))
    assert good.status_code == 200
    assert good.get_data().startswith(b"RIFF")
    assert console.client.get(f"/console/recordings/{GOOD_SID}").status_code == 200


@pytest.mark.parametrize(
    "location",
    [
        "{secret}",
        "{recordings}/../secret.wav",
        "{recordings}/../../{tmp_name}/secret.wav",
        "secret.wav",
        "/etc/passwd",
    ],
)
def test_a_stored_path_outside_recordings_dir_is_never_read(
    api: FlaskClient,
    console: ConsoleClient,
    admin_token: str,
    db: Database,
    abuse_settings: Settings,
    stored_call: int,
    recordings_dir: Path,
    secret: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    location: str,
) -> None:
    """A tampered ``storage_path`` (a restored dump, a hand-edited row) is a 404, not a read."""
    monkeypatch.chdir(tmp_path)  # "secret.wav", relative, would be found from here
    path = location.format(secret=secret, recordings=recordings_dir, tmp_name=tmp_path.name)
    with db.transaction() as s:
        row = s.scalars(select(CallRecording).where(CallRecording.sid == GOOD_SID)).one()
        row.storage_path = path
    _refused(api.get(f"/api/recordings/{GOOD_SID}", headers=auth(admin_token)))
    _refused(console.client.get(f"/console/recordings/{GOOD_SID}"))
    out = tmp_path / "out.wav"
    result = _cli(monkeypatch, abuse_settings, ["recordings", "get", GOOD_SID, "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "outside" in result.output
    assert not out.exists()
    link = _cli(monkeypatch, abuse_settings, ["recordings", "get", GOOD_SID, "--link"])
    assert link.exit_code == 1, link.output
    assert str(secret) not in link.stdout
    assert secret.read_bytes() == SECRET


def _cli(monkeypatch: pytest.MonkeyPatch, settings: Settings, args: list[str]) -> Any:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("RECORDINGS_DIR", settings.recordings_dir)
    return CliRunner().invoke(main, args)


def test_recordings_get_refuses_a_traversing_sid_and_writes_nothing(
    abuse_settings: Settings,
    stored_call: int,
    secret: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out.wav"
    for sid in TRAVERSALS:
        if "\x00" in sid:
            continue  # a command line cannot carry a NUL byte
        result = _cli(monkeypatch, abuse_settings, ["recordings", "get", sid, "--out", str(out)])
        assert result.exit_code == 1, (sid, result.output)
        assert "error:" in result.output
        assert not out.exists()
    done = _cli(monkeypatch, abuse_settings, ["recordings", "get", GOOD_SID, "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert out.read_bytes().startswith(b"RIFF")


def test_local_storage_saves_only_plain_names_inside_its_folder(
    tmp_path: Path, secret: Path
) -> None:
    root = tmp_path / "rec"
    storage = LocalRecordingStorage(root)
    for name in TRAVERSALS:
        if name.startswith("%2e"):  # no separator: a literal (odd) name, kept inside
            assert Path(storage.save(name, b"RIFF")).parent == root
            continue
        with pytest.raises(ValueError, match="not a plain file name"):
            storage.save(name, b"RIFF-evil")
    assert outside(tmp_path, root) == {secret}
    assert {p.name for p in files_under(root)} == {"%2e%2e%2f%2e%2e%2fetc%2fpasswd"}
    assert secret.read_bytes() == SECRET


def test_local_storage_reads_links_and_deletes_only_inside_its_folder(
    tmp_path: Path, secret: Path
) -> None:
    root = tmp_path / "rec"
    storage = LocalRecordingStorage(root)
    kept = storage.save(f"{GOOD_SID}.wav", b"RIFF-kept")
    for location in (
        str(secret),
        f"{root}/../secret.wav",
        f"{root}/{GOOD_SID}.wav/../../secret.wav",
        "/etc/passwd",
        f"{root}/{GOOD_SID}.wav\x00",
        "",
    ):
        with pytest.raises(RecordingNotStored):
            storage.read(location)
        with pytest.raises(RecordingNotStored):
            storage.link(location)
        with pytest.raises(RecordingStorageError):
            storage.delete(location)
    assert secret.read_bytes() == SECRET
    # a backslash is no separator here: ``..\\secret.wav`` is a (missing) file of the folder
    with pytest.raises(RecordingNotStored, match="does not exist"):
        storage.read(f"{root}/..\\secret.wav")
    assert storage.read(kept) == b"RIFF-kept"
    assert storage.link(kept) == kept
    storage.delete(kept)
    assert not Path(kept).exists()


def _signed_post(client: FlaskClient, settings: Settings, path: str, form: dict[str, str]) -> Any:
    signature = sign(settings.webhook_auth_token, settings.public_base_url + path, form)
    return client.post(path, data=form, headers={"X-Twilio-Signature": signature})


def test_a_recording_callback_cannot_name_a_file(
    abuse_app: Flask,
    services: Services,
    db: Database,
    stored_call: int,
    recordings_dir: Path,
    secret: Path,
    tmp_path: Path,
) -> None:
    """``RecordingSid`` must be ``RE`` + 32 hex digits (400 otherwise); ``RecordingUrl`` is
    only where the provider fetches from — the copy's name is always ``<RecordingSid>.wav``."""
    client = abuse_app.test_client()
    settings = services.settings
    before = files_under(tmp_path)
    for value in TRAVERSALS:
        for sid in (value, GOOD_SID[:2] + value, GOOD_SID + "/" + value):
            form = {
                "CallSid": CALL_SID,
                "RecordingSid": sid,
                "RecordingUrl": f"https://api.twilio.com/2010-04-01/Recordings/{GOOD_SID}",
                "RecordingStatus": "completed",
            }
            assert _signed_post(client, settings, "/voice/recording", form).status_code == 400
    other = "RE" + "2" * 32
    for value in TRAVERSALS:
        form = {
            "CallSid": CALL_SID,
            "RecordingSid": other,
            "RecordingUrl": f"https://api.twilio.com/{value}",
            "RecordingStatus": "completed",
        }
        response = _signed_post(client, settings, "/voice/recording", form)
        assert response.status_code in (204, 400), (value, response.status_code)
    with db.session() as s:
        sids = set(s.scalars(select(CallRecording.sid)))
    assert sids == {GOOD_SID, other}
    # the provider has no recording at such a URL: the download fails and nothing is written
    with pytest.raises(TelephonyError, match="not found"):
        download_recording(services, other)
    assert files_under(tmp_path) == before
    assert secret.read_bytes() == SECRET


# --------------------------------------------------------------------------- TTS cache


def test_the_tts_cache_file_of_any_text_is_a_hash_inside_the_cache(
    tmp_path: Path, secret: Path
) -> None:
    cache = tmp_path / "tts-cache"
    script = (
        "import sys, wave\n"
        "w = wave.open(sys.stdout.buffer, 'wb')\n"
        "w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)\n"
        "w.writeframes(b'\\x00\\x00' * 80); w.close()\n"
    )
    tts = TextToSpeech([sys.executable, "-c", script], cache)
    for text in TRAVERSALS:
        if not text.replace("\x00", "").strip():
            continue
        path = tts.cache_path(text)
        assert path.parent.parent == cache
        assert len(path.stem) == 64
        assert set(path.stem) <= set("0123456789abcdef")
        assert path.suffix == ".ulaw"
        assert tts.synthesize(text)
        assert path.is_file()
    assert outside(tmp_path, cache) == {secret}
    assert secret.read_bytes() == SECRET


# --------------------------------------------------------------------------- uploads


def _upload_names() -> list[str]:
    return [
        *TRAVERSALS,
        "../../etc/passwd",
        "..\\x.csv",
        "../../../consumers.csv",
        "/tmp/x.csv",  # noqa: S108 - an attacker's absolute name
        "%2e%2e%2fx.csv",
        "x.csv\x00.sh",
    ]


def test_an_import_upload_is_stored_under_its_run_id_in_imports_dir(
    api: FlaskClient, admin_token: str, db: Database, services: Services, tmp_path: Path
) -> None:
    imports = Path(services.settings.imports_dir)
    before = files_under(tmp_path)
    csv = "Лицевой счёт;ФИО\r\n5500112233;Иванов\r\n".encode()
    for name in _upload_names():
        multipart = api.post(
            "/api/imports/consumers",
            data={"file": (io.BytesIO(csv), name)},
            headers=auth(admin_token),
        )
        raw = api.post(
            "/api/imports/consumers?" + urlencode({"filename": name}),
            data=csv,
            headers={**auth(admin_token), "Content-Type": "text/csv"},
        )
        for response in (multipart, raw):
            assert response.status_code in (202, 400), (name, response.status_code)
            if response.status_code != 202:
                continue
            run_id = response.get_json()["id"]
            stored = {p.name for p in imports.iterdir() if p.name.startswith(f"{run_id}")}
            assert stored <= {str(run_id), f"{run_id}.csv"}, (name, stored)
            with db.session() as s:
                shown = get_run(s, run_id).source
            assert "/" not in shown
            assert "\\" not in shown
            assert "\x00" not in shown
    new = files_under(tmp_path) - before
    assert new
    assert all(p.resolve().parent == imports.resolve() for p in new), new


def test_a_dnc_upload_with_a_traversing_name_stays_in_its_temporary_folder(
    api: FlaskClient, admin_token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)  # TMPDIR is read again
    before = files_under(tmp_path)
    body = b"phone\r\n+79161234567\r\n"
    for name in _upload_names():
        response = api.post(
            "/api/dnc/import",
            data={"file": (io.BytesIO(body), name)},
            headers=auth(admin_token),
        )
        assert response.status_code in (200, 400, 422), (name, response.status_code)
        if response.status_code == 200:
            assert response.get_json()["rows_read"] == 1
    assert files_under(tmp_path) == before
    assert list(scratch.iterdir()) == []
    assert not os.path.exists(scratch.parent / "x.csv")
