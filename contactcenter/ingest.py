"""Files pushed by a billing system: stored, imported by an RQ job, followed by their run.

``POST /api/imports/<kind>`` (:mod:`web.api_imports`) hands the uploaded file to
:func:`submit_import`: an :class:`~crm_store.models.ImportRun` is created (``queued``), the
file is written to ``IMPORTS_DIR/<run id><suffix>`` and :func:`run_import_job` is queued on
:data:`IMPORT_QUEUE` (job id ``import-<run id>``, so it is queued once). The job re-reads the
run, imports the file with the importer of its kind (consumers, payments, charges), which
advances the run batch by batch and stores the report, and publishes the position in the
file to Redis (:func:`import_progress`) so a client can show a percentage. Imports are
idempotent (payment ids, charge keys, account upserts), so a job that is run again after a
crash completes the file without doubling anything.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError

from contactcenter.logs import bind_log_context
from contactcenter.metrics import record_import
from contactcenter.services import Services, current_services
from crm_store.db import Database
from crm_store.errors import ImportFileError
from crm_store.import_charges import import_charges
from crm_store.import_files import ImportProgress, ProgressFn
from crm_store.import_payments import import_payments
from crm_store.import_runs import create_run, finish_run, get_run, recent_runs, start_run
from crm_store.importer import ImportReport, import_consumers
from crm_store.models import IMPORT_KINDS, ImportRun

log = logging.getLogger(__name__)

#: The RQ queue of import jobs (long: kept apart from calls and campaigns).
IMPORT_QUEUE = "imports"
#: Suffixes kept on stored uploads (format detection reads the extension first).
_SUFFIXES = frozenset({".csv", ".txt", ".xlsx"})
#: Problem rows of a consumer import kept in the run's summary (the CLI prints them all).
LISTED_PROBLEMS = 100
_PROGRESS_TTL_S = 7 * 24 * 3600


def _run_consumers(db: Database, path: Path, run_id: int, progress: ProgressFn) -> None:
    """The consumer import writes row by row, not in batches: the run is started and
    finished here with its report."""
    with db.transaction() as s:
        start_run(s, run_id)
    report = import_consumers(db, path)
    with db.transaction() as s:
        finish_run(s, run_id, summary=consumer_summary(report))


def _run_payments(db: Database, path: Path, run_id: int, progress: ProgressFn) -> None:
    import_payments(db, path, run_id=run_id, progress=progress)


def _run_charges(db: Database, path: Path, run_id: int, progress: ProgressFn) -> None:
    import_charges(db, path, run_id=run_id, progress=progress)


#: kind → the import of a stored file that advances and finishes run ``run_id``.
IMPORTERS: dict[str, Callable[[Database, Path, int, ProgressFn], None]] = {
    "consumers": _run_consumers,
    "payments": _run_payments,
    "charges": _run_charges,
}
if set(IMPORTERS) != set(IMPORT_KINDS):  # pragma: no cover - a kind added in one place only
    raise RuntimeError("IMPORTERS and crm_store.models.IMPORT_KINDS disagree")


def consumer_summary(report: ImportReport) -> dict[str, Any]:
    """The JSON summary of a consumer import (counts and the first problem rows)."""

    def listed(rows: list[Any]) -> list[str]:
        return [str(row) for row in rows[:LISTED_PROBLEMS]]

    return {
        "kind": "consumers",
        "source": report.source,
        "rows_read": report.rows_read,
        "rows_rejected": len(report.rejected_rows),
        "counts": {
            "created": report.rows_created,
            "updated": report.rows_updated,
            "unchanged": report.rows_unchanged,
            "warned": len(report.warned_rows),
            "duplicates": len(report.duplicates),
        },
        "problems": {
            "errors": listed(report.errors),
            "warnings": listed(report.warnings),
            "duplicates": listed(report.duplicates),
        },
        "lines": report.lines()[: LISTED_PROBLEMS * 3],
    }


class ImportRequestError(ValueError):
    """An import request that cannot be accepted (unknown kind, empty file)."""


def upload_path(imports_dir: str | Path, run_id: int, filename: str) -> Path:
    """Where the upload of run ``run_id`` is stored (the original suffix kept if known)."""
    suffix = Path(filename).suffix.lower()
    return Path(imports_dir) / f"{run_id}{suffix if suffix in _SUFFIXES else ''}"


def safe_filename(name: str) -> str:
    """The client's file name as it is shown in the run (no directories, printable)."""
    base = re.split(r"[\\/]", name or "")[-1]
    cleaned = "".join(ch for ch in base if ch.isprintable()).strip()
    return cleaned[:200] or "upload"


def submit_import(
    services: Services,
    kind: str,
    filename: str,
    save: Callable[[Path], None],
    *,
    actor: str,
) -> int:
    """Accept a file for import: create the run, store the file (``save(path)`` writes it),
    queue the job; return the run id. An empty file is refused before anything is queued
    (the run is then ``failed`` with the reason)."""
    if kind not in IMPORTERS:
        raise ImportRequestError(f"unknown import kind {kind!r} (one of {', '.join(IMPORTERS)})")
    name = safe_filename(filename)
    with services.db.transaction() as s:
        run_id = int(create_run(s, kind, name, actor=actor).id)
    path = upload_path(services.settings.imports_dir, run_id, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    try:
        save(partial)
    except BaseException as exc:
        _refuse_upload(services, run_id, partial, f"upload failed: {exc}")
        raise
    if partial.stat().st_size == 0:
        _refuse_upload(services, run_id, partial, "the file is empty")
        raise ImportRequestError("the file is empty")
    partial.replace(path)
    enqueue_import(services, run_id)
    log.info("import run %s (%s) queued by %s", run_id, kind, actor)
    return run_id


def _refuse_upload(services: Services, run_id: int, partial: Path, reason: str) -> None:
    partial.unlink(missing_ok=True)
    with services.db.transaction() as s:
        finish_run(s, run_id, summary={}, error=reason[:500])


def save_stream(stream: IO[bytes]) -> Callable[[Path], None]:
    """A ``save`` for :func:`submit_import` copying a binary stream in chunks."""

    def save(path: Path) -> None:
        with path.open("wb") as out:
            shutil.copyfileobj(stream, out, 1024 * 1024)

    return save


def enqueue_import(services: Services, run_id: int) -> bool:
    """Queue the job of run ``run_id`` (once: False when it is already queued)."""
    queue = Queue(IMPORT_QUEUE, connection=services.redis)
    try:
        queue.enqueue(
            run_import_job,
            run_id,
            job_id=f"import-{run_id}",
            unique=True,
            job_timeout=6 * 3600,
            result_ttl=24 * 3600,
            retry=Retry(max=3, interval=[30, 120, 600]),
        )
    except DuplicateJobError:
        return False
    return True


def run_import_job(run_id: int) -> str:
    """RQ job: import the stored file of run ``run_id``; returns the run's final status.

    A completed run is not imported again. A file that is not what its kind needs ends the
    run ``failed`` with the one-line reason (no retry); an unexpected error is recorded on
    the run and raised, so RQ retries the job (the importers are idempotent).
    """
    bind_log_context(fresh=True, job=f"import-{run_id}")
    services = current_services()
    with services.db.transaction() as s:
        run = get_run(s, run_id)
        kind, status, source = run.kind, run.status, run.source
    if status == "completed":
        return status
    path = upload_path(services.settings.imports_dir, run_id, source)
    if not path.exists():
        with services.db.transaction() as s:
            finish_run(s, run_id, summary={}, error="the uploaded file is gone")
        return "failed"
    redis = services.redis
    try:
        IMPORTERS[kind](services.db, path, run_id, _progress_writer(redis, run_id))
    except ImportFileError as exc:
        with services.db.transaction() as s:
            if get_run(s, run_id).status != "failed":
                finish_run(s, run_id, summary={}, error=str(exc)[:500])
    except Exception as exc:
        log.exception("import run %s failed", run_id)
        try:
            with services.db.transaction() as s:
                finish_run(s, run_id, summary={}, error=f"{exc.__class__.__name__}: {exc}"[:500])
        except Exception:  # noqa: BLE001 - the database itself may be what failed
            log.warning("import run %s: could not record the failure", run_id)
        raise
    with services.db.transaction() as s:
        finished = get_run(s, run_id)
        final, rows = finished.status, finished.rows_done or finished.summary.get("rows_read", 0)
        record_import(kind, final, int(rows or 0))
    path.unlink(missing_ok=True)
    log.info("import run %s (%s) %s", run_id, kind, final)
    return final


def _progress_key(run_id: int) -> str:
    return f"import:progress:{run_id}"


def _progress_writer(redis: Redis, run_id: int) -> ProgressFn:
    def write(progress: ImportProgress) -> None:
        try:
            with redis.pipeline() as pipe:
                pipe.hset(
                    _progress_key(run_id),
                    mapping={
                        "rows_read": progress.rows_read,
                        "done": progress.done,
                        "total": progress.total,
                        "batches": progress.batches_committed,
                    },
                )
                pipe.expire(_progress_key(run_id), _PROGRESS_TTL_S)
                pipe.execute()
        except RedisError as exc:  # progress is a convenience; the import goes on
            log.warning("import run %s: progress not published: %s", run_id, exc)

    return write


def import_progress(redis: Redis, run_id: int) -> dict[str, int] | None:
    """The last published position of run ``run_id`` (rows read, ``done`` of ``total``
    bytes for CSV or rows for XLSX), None when nothing was published."""
    try:
        raw = redis.hgetall(_progress_key(run_id))
    except RedisError:
        return None
    if not raw:
        return None
    return {k.decode() if isinstance(k, bytes) else str(k): int(v) for k, v in raw.items()}


def run_as_dict(run: ImportRun, progress: dict[str, int] | None) -> dict[str, Any]:
    """A run as JSON: status, counters, the position in the file, the report."""
    percent = None
    if run.status == "completed":
        percent = 100
    elif progress and progress.get("total"):
        percent = min(99, int(100 * progress["done"] / progress["total"]))

    def iso(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": run.id,
        "kind": run.kind,
        "source": run.source,
        "status": run.status,
        "actor": run.actor,
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "rows_done": run.rows_done,
        "batches_committed": run.batches_committed,
        "progress": {**(progress or {}), "percent": percent},
        "error": run.error,
        "report": run.summary or None,
    }


def describe_run(services: Services, run_id: int) -> dict[str, Any]:
    """Run ``run_id`` as :func:`run_as_dict` gives it (raises ``NotFound``)."""
    with services.db.transaction() as s:
        run = get_run(s, run_id)
        return run_as_dict(run, import_progress(services.redis, run_id))


def describe_recent_runs(services: Services, limit: int = 50) -> list[dict[str, Any]]:
    """The newest runs first, as :func:`run_as_dict` gives them (without their reports)."""
    with services.db.transaction() as s:
        runs = recent_runs(s, limit)
        return [
            {**run_as_dict(run, import_progress(services.redis, run.id)), "report": None}
            for run in runs
        ]
