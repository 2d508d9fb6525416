"""REST ingestion of billing files: ``/api/imports`` (the machinery of :mod:`web.api_common`).

A billing system pushes its nightly files here; each becomes an import run processed by a
worker (:mod:`contactcenter.ingest`). Every route needs ``imports.write`` and a user of all
regions (a billing file spans every region).

Routes::

    POST /api/imports/<kind>     kind: consumers, payments or charges. The file as the
                                 multipart field ``file``, or as the raw body (Content-Type
                                 text/csv, application/vnd.openxmlformats-…, or
                                 application/octet-stream; ``?filename=`` names it). Up to
                                 IMPORT_MAX_MB. 202 {"id", "status": "queued", "url"}
    GET  /api/imports/<id>       the run: status, rows done, progress (percent), report
    GET  /api/imports            the newest runs first (paged; ?kind=), without their reports
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from flask import request, url_for
from pydantic import BaseModel, Field
from spectree import Response as Responses

from contactcenter.ingest import (
    IMPORTERS,
    ImportRequestError,
    describe_run,
    import_progress,
    run_as_dict,
    save_stream,
    submit_import,
)
from crm_store.errors import NotFound
from crm_store.list_queries import import_runs_page
from web.api_common import (
    ApiError,
    ErrorBody,
    PageQuery,
    api_actor,
    api_blueprint,
    api_services,
    operation,
    page_body,
    page_model,
)

bp = api_blueprint("imports_api", __name__, "/api/imports")
TAGS = ["imports"]

#: ``crm_store.models.IMPORT_KINDS`` (a test keeps them in step).
Kind = Literal["consumers", "payments", "charges"]

#: Content types accepted as a raw-body upload.
RAW_TYPES = frozenset(
    {
        "text/csv",
        "text/plain",
        "application/csv",
        "application/octet-stream",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    }
)


class UploadQuery(BaseModel):
    """The name of a file sent as the raw body."""

    filename: str | None = Field(default=None, max_length=200, description="raw body only")


class UploadForm(BaseModel):
    """The multipart form of an upload (or send the file as the raw body)."""

    file: Any = Field(
        default=None,
        description="the CSV or XLSX file",
        json_schema_extra={"type": ["string", "null"], "format": "binary"},
    )


class ImportQueued(BaseModel):
    """An import run waiting for a worker."""

    id: int
    status: Literal["queued"]
    url: str


class ImportRunOut(BaseModel):
    """An import run and how far it got."""

    id: int
    kind: Kind
    source: str
    status: Literal["queued", "running", "completed", "failed"]
    actor: str
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    rows_done: int
    batches_committed: int
    progress: dict[str, int | None] = Field(description="done/total of the file, percent")
    error: str | None
    report: dict[str, Any] | None = Field(description="the final report (null in lists)")


class ImportListQuery(PageQuery):
    """Filters of the run list."""

    kind: Kind | None = None


@bp.post("/<kind>")
@operation(
    permission="imports.write",
    all_regions=True,
    body_limit=lambda: api_services().settings.import_max_mb * 1024 * 1024,
    resp=Responses(
        HTTP_202=ImportQueued,
        HTTP_400=(ErrorBody, "no file, or an empty one"),
        HTTP_404=(ErrorBody, "unknown kind"),
        HTTP_413=(ErrorBody, "over IMPORT_MAX_MB"),
    ),
    tags=TAGS,
)
def submit_file(
    kind: str, query: UploadQuery, form: UploadForm
) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Accept a file for import and queue it.

    `kind` is consumers, payments or charges. The file comes as the multipart field `file`,
    or as the raw body (Content-Type text/csv, application/octet-stream or XLSX; `filename`
    names it).
    """
    if kind not in IMPORTERS:
        raise ApiError(404, f"unknown import kind {kind!r}; one of {', '.join(IMPORTERS)}")
    services = api_services()
    upload = request.files.get("file")
    save: Callable[[Path], None]
    if upload is not None:
        filename = upload.filename or "upload"
        save = save_stream(upload.stream)
    elif request.mimetype in RAW_TYPES:
        filename = query.filename or f"{kind}.csv"
        save = save_stream(request.stream)
    else:
        raise ApiError(
            400, "send the file as the multipart field 'file' or as a text/csv or XLSX body"
        )
    try:
        run_id = submit_import(services, kind, filename, save, actor=api_actor())
    except ImportRequestError as exc:
        raise ApiError(400, str(exc)) from None
    url = url_for("imports_api.get_import", run_id=run_id)
    return {"id": run_id, "status": "queued", "url": url}, 202, {"Location": url}


@bp.get("/<int:run_id>")
@operation(
    permission="imports.write",
    all_regions=True,
    resp=Responses(HTTP_200=ImportRunOut, HTTP_404=ErrorBody),
    tags=TAGS,
)
def get_import(run_id: int) -> dict[str, Any]:
    """The run: status, progress and, when finished, its report."""
    try:
        return describe_run(api_services(), run_id)
    except NotFound:
        raise ApiError(404, f"import {run_id} does not exist") from None


@bp.get("")
@operation(
    permission="imports.write",
    all_regions=True,
    resp=Responses(HTTP_200=page_model(ImportRunOut)),
    tags=TAGS,
)
def list_imports(query: ImportListQuery) -> dict[str, Any]:
    """Import runs, newest first (without their reports)."""
    services = api_services()
    with services.db.transaction() as s:
        page = import_runs_page(s, kind=query.kind, limit=query.limit, cursor=query.cursor)
        return page_body(
            page,
            lambda run: {
                **run_as_dict(run, import_progress(services.redis, run.id)),
                "report": None,
            },
        )
