"""Import runs: one :class:`~crm_store.models.ImportRun` row per imported file.

Whoever starts an import (the CLI, a later API job) creates the run with :func:`create_run`
and passes its id to the importer, which marks it running, advances it in every batch's
own transaction (:func:`advance_run`, so the committed batches and the counter never
disagree, even after a crash) and finishes it with the report (:func:`finish_run`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crm_store.errors import InvalidInput, NotFound
from crm_store.models import IMPORT_KINDS, ImportRun, utcnow


def create_run(session: Session, kind: str, source: str, *, actor: str = "system") -> ImportRun:
    """A new ``queued`` run of ``kind`` (``consumers``, ``payments``, ``charges``)."""
    if kind not in IMPORT_KINDS:
        raise InvalidInput(f"неизвестный вид импорта {kind!r}")
    run = ImportRun(kind=kind, source=source[-500:], status="queued", actor=actor, summary={})
    session.add(run)
    session.flush()
    return run


def get_run(session: Session, run_id: int) -> ImportRun:
    """The run with ``run_id``, or raise :class:`NotFound`."""
    run = session.get(ImportRun, run_id)
    if run is None:
        raise NotFound(f"import run {run_id} does not exist")
    return run


def start_run(session: Session, run_id: int, *, now: datetime | None = None) -> None:
    """Mark the run ``running`` (from now). A run started again (its job retried after a
    crash) counts its batches afresh: those that landed before are found unchanged."""
    run = get_run(session, run_id)
    run.status = "running"
    run.started_at = now or utcnow()
    run.finished_at = None
    run.error = None
    run.rows_done = 0
    run.batches_committed = 0


def advance_run(session: Session, run_id: int, rows: int) -> None:
    """Count one more committed batch of ``rows`` rows; call inside the batch's transaction."""
    session.execute(
        update(ImportRun)
        .where(ImportRun.id == run_id)
        .values(
            rows_done=ImportRun.rows_done + rows,
            batches_committed=ImportRun.batches_committed + 1,
        )
    )


def finish_run(
    session: Session,
    run_id: int,
    *,
    summary: dict[str, Any],
    error: str | None = None,
    now: datetime | None = None,
) -> None:
    """Store the report; ``failed`` with ``error`` when the import stopped, else ``completed``."""
    run = get_run(session, run_id)
    run.status = "failed" if error else "completed"
    run.error = error
    run.summary = summary
    run.finished_at = now or utcnow()


def recent_runs(session: Session, limit: int = 50) -> list[ImportRun]:
    """The newest runs, newest first (at most ``limit``, 1-500)."""
    limit = max(1, min(limit, 500))
    return list(session.scalars(select(ImportRun).order_by(ImportRun.id.desc()).limit(limit)))
