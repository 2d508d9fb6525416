"""Where our copies of whole-call recordings live: a local directory or an S3-compatible bucket.

``RECORDINGS_STORAGE=local`` (the default) keeps ``RE….wav`` files under ``RECORDINGS_DIR``;
``RECORDINGS_STORAGE=s3`` puts objects in ``RECORDINGS_S3_BUCKET`` under
``RECORDINGS_S3_PREFIX``, on AWS or on the S3-compatible service at
``RECORDINGS_S3_ENDPOINT_URL`` (MinIO, Yandex Object Storage …). boto3 reads the region and the
credentials from the standard AWS variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_DEFAULT_REGION``, ``AWS_PROFILE`` …).

A storage returns a *location* when it saves a copy — a file path, or ``s3://bucket/key`` —
kept on :attr:`crm_store.models.CallRecording.storage_path`; the same location reads the copy
back (:meth:`RecordingStorage.read`), gives a link a console can open
(:meth:`RecordingStorage.link`: the file's path, or a presigned HTTPS URL) and deletes it.
:func:`storage_for` finds the storage of a location saved under an earlier configuration.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from contactcenter.config import ConfigError, Settings
from ivr.errors import RecordingNotStored, RecordingStorageError

S3_SCHEME = "s3://"
#: How long a presigned link to a recording in a bucket stays valid, by default.
LINK_EXPIRES_S = 3600
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


class RecordingStorage(Protocol):
    """Where our copies of call recordings live (see the module docstring)."""

    def save(self, name: str, data: bytes) -> str:
        """Store ``data`` as ``name``; return the location to keep on the row."""
        ...

    def read(self, location: str) -> bytes:
        """The bytes stored at ``location``; :class:`RecordingNotStored` when gone."""
        ...

    def link(self, location: str, *, expires_s: int = LINK_EXPIRES_S) -> str:
        """Where a person can fetch the copy: a file path or a presigned URL."""
        ...

    def delete(self, location: str) -> None:
        """Delete a stored copy; a copy already gone is not an error."""
        ...

    def holds(self, location: str) -> bool:
        """Whether ``location`` is of this kind of storage (a path, or an ``s3://`` URI)."""
        ...


def _plain_name(name: str) -> str:
    """``name`` when it is one plain file name (no folder, no leading dot, no NUL)."""
    if not name or "/" in name or "\\" in name or "\x00" in name or name.startswith("."):
        raise ValueError(f"not a plain file name: {name!r}")
    return name


class LocalRecordingStorage:
    """Recordings as files in a local directory (``RECORDINGS_DIR``).

    Only files inside that directory are ever read, linked or deleted: a stored location
    elsewhere (a tampered or hand-edited row, ``..`` in it, a directory since moved) is
    refused, so a row can never make the storage touch another file.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _inside(self, location: str) -> Path:
        """``location`` when it is a file path inside :attr:`root`; otherwise
        :class:`RecordingNotStored` (nothing outside the directory is ours)."""
        try:
            path = Path(location).resolve() if location and "\x00" not in location else None
            inside = path is not None and path.is_relative_to(self.root.resolve())
        except (OSError, RuntimeError):  # a symlink loop, an unreadable parent
            inside = False
        if not inside or path is None:
            raise RecordingNotStored(
                f"{location!r} is outside the recordings directory {self.root}; not used"
            )
        return path

    def save(self, name: str, data: bytes) -> str:
        """Write ``root/name`` atomically (a temporary file renamed into place)."""
        target = self.root / _plain_name(name)
        tmp = target.with_suffix(target.suffix + ".part")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            tmp.replace(target)
        except OSError as exc:
            with contextlib.suppress(OSError):  # a partial file (a full disk) frees its space
                tmp.unlink(missing_ok=True)
            raise RecordingStorageError(f"cannot write {target}: {exc}") from exc
        return str(target)

    def read(self, location: str) -> bytes:
        """The file's bytes (:class:`RecordingNotStored` outside :attr:`root`)."""
        path = self._inside(location)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise RecordingNotStored(f"{location} does not exist") from None
        except OSError as exc:
            raise RecordingStorageError(f"cannot read {location}: {exc}") from exc

    def link(self, location: str, *, expires_s: int = LINK_EXPIRES_S) -> str:
        """The file's path (it never expires; :class:`RecordingNotStored` outside :attr:`root`)."""
        if not self._inside(location).is_file():
            raise RecordingNotStored(f"{location} does not exist")
        return location

    def delete(self, location: str) -> None:
        """Remove the file if it is still there; a location outside :attr:`root` is refused
        with :class:`RecordingStorageError` (its row is kept, nothing is deleted)."""
        try:
            path = self._inside(location)
        except RecordingNotStored as exc:
            raise RecordingStorageError(str(exc)) from None
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise RecordingStorageError(f"cannot delete {location}: {exc}") from exc

    def holds(self, location: str) -> bool:
        """Every location that is not an ``s3://`` URI is a path."""
        return not location.startswith(S3_SCHEME)


def split_s3_location(location: str) -> tuple[str, str]:
    """``s3://bucket/key`` → ``(bucket, key)``; ``ValueError`` for anything else."""
    parts = urlsplit(location)
    key = parts.path.lstrip("/")
    if parts.scheme != "s3" or not parts.netloc or not key:
        raise ValueError(f"not an s3://bucket/key location: {location!r}")
    return parts.netloc, key


class S3RecordingStorage:
    """Recordings as objects in an S3-compatible bucket.

    The client is built on first use (never at import or construction) from the standard AWS
    configuration; ``endpoint_url`` points it at a non-AWS service, with path-style
    addressing, which every S3-compatible service understands. ``client`` injects one.
    """

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        client: Any = None,
    ) -> None:
        if not bucket:
            raise ValueError("an S3 bucket is required")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        """The boto3 S3 client (built once, thread-safe to share)."""
        with self._lock:
            if self._client is None:
                config = BotoConfig(
                    retries={"max_attempts": 5, "mode": "standard"},
                    signature_version="s3v4",
                    s3={"addressing_style": "path"} if self.endpoint_url else None,
                )
                try:
                    session = boto3.session.Session()
                    self._client = session.client(
                        "s3", endpoint_url=self.endpoint_url, config=config
                    )
                except BotoCoreError as exc:
                    raise RecordingStorageError(f"cannot set up the S3 client: {exc}") from exc
            return self._client

    def key_for(self, name: str) -> str:
        """The object key of ``name`` (under the prefix)."""
        name = _plain_name(name)
        return f"{self.prefix}/{name}" if self.prefix else name

    def save(self, name: str, data: bytes) -> str:
        """Put the object; return ``s3://bucket/key``."""
        key = self.key_for(name)
        self._call(
            f"upload to s3://{self.bucket}/{key}",
            lambda: self.client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType="audio/wav"
            ),
        )
        return f"{S3_SCHEME}{self.bucket}/{key}"

    def read(self, location: str) -> bytes:
        """The object's bytes."""
        bucket, key = split_s3_location(location)
        response = self._call(
            f"download {location}", lambda: self.client.get_object(Bucket=bucket, Key=key)
        )
        body = response["Body"]
        try:
            data: bytes = body.read()
        finally:
            body.close()
        return data

    def link(self, location: str, *, expires_s: int = LINK_EXPIRES_S) -> str:
        """A presigned GET URL of the object, valid ``expires_s`` seconds."""
        bucket, key = split_s3_location(location)
        self._call(f"check {location}", lambda: self.client.head_object(Bucket=bucket, Key=key))
        url: str = self._call(
            f"sign {location}",
            lambda: self.client.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_s
            ),
        )
        return url

    def delete(self, location: str) -> None:
        """Delete the object (S3 answers a missing key with success too)."""
        bucket, key = split_s3_location(location)
        try:
            self._call(
                f"delete {location}", lambda: self.client.delete_object(Bucket=bucket, Key=key)
            )
        except RecordingNotStored:
            return

    def holds(self, location: str) -> bool:
        """``s3://`` URIs (of any bucket, reached through this endpoint)."""
        return location.startswith(S3_SCHEME)

    def _call(self, what: str, request: Any) -> Any:
        try:
            return request()
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in _MISSING_CODES:
                raise RecordingNotStored(f"{what}: no such object") from None
            message = error.get("Message") or code
            raise RecordingStorageError(f"{what}: {code} {message}".strip()) from None
        except BotoCoreError as exc:
            raise RecordingStorageError(f"{what}: {exc}") from None


def storage_from_settings(settings: Settings) -> RecordingStorage:
    """The configured storage new copies are saved to (``RECORDINGS_STORAGE``)."""
    if settings.recordings_storage == "local":
        return LocalRecordingStorage(settings.recordings_dir)
    if settings.recordings_storage == "s3":
        if not settings.recordings_s3_bucket:
            raise ConfigError("RECORDINGS_S3_BUCKET", "is required when RECORDINGS_STORAGE=s3")
        return S3RecordingStorage(
            settings.recordings_s3_bucket,
            prefix=settings.recordings_s3_prefix,
            endpoint_url=settings.recordings_s3_endpoint_url,
        )
    raise ConfigError("RECORDINGS_STORAGE", f"unknown storage {settings.recordings_storage!r}")


def storage_for(
    settings: Settings, location: str, configured: RecordingStorage | None = None
) -> RecordingStorage:
    """The storage holding ``location``: ``configured`` (default: the configured one) when
    it is of that kind, else one for it (a copy saved before the configuration changed)."""
    store = configured or storage_from_settings(settings)
    if store.holds(location):
        return store
    if location.startswith(S3_SCHEME):
        bucket, _key = split_s3_location(location)
        return S3RecordingStorage(bucket, endpoint_url=settings.recordings_s3_endpoint_url)
    return LocalRecordingStorage(settings.recordings_dir)
