"""REST ingestion of billing files: ``/api/imports`` (the bearer-token auth of :mod:`web.api`).

A billing system pushes its nightly files here; each becomes an import run processed by a
worker (:mod:`contactcenter.ingest`).

Routes::

    POST /api/imports/<kind>     kind: consumers, payments or charges. The file as the
                                 multipart field ``file``, or as the raw body (Content-Type
                                 text/csv, application/vnd.openxmlformats-…, or
                                 application/octet-stream; ``?filename=`` names it). Up to
                                 IMPORT_MAX_MB. 202 {"id", "status": "queued", "url"}
    GET  /api/imports/<id>       the run: status, rows done, progress (percent), report
    GET  /api/imports?limit=N    the newest runs (without their reports)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request, url_for
from werkzeug.exceptions import HTTPException

from contactcenter.ingest import (
    IMPORTERS,
    ImportRequestError,
    describe_recent_runs,
    describe_run,
    save_stream,
    submit_import,
)
from crm_store.errors import NotFound
from web.api import authenticate
from web.common import current_services

bp = Blueprint("imports_api", __name__, url_prefix="/api/imports")
bp.before_request(authenticate)

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


def _error(status: int, message: str, **extra: Any) -> Response:
    response = jsonify(error=message, **extra)
    response.status_code = status
    return response


@bp.post("/<kind>")
def submit(kind: str) -> Response:
    """Accept a file for import and queue it: 202 with the run id."""
    if kind not in IMPORTERS:
        return _error(404, f"unknown import kind {kind!r}; one of {', '.join(IMPORTERS)}")
    services = current_services()
    limit = services.settings.import_max_mb * 1024 * 1024
    if request.content_length is not None and request.content_length > limit:
        return _error(413, "request entity too large")  # refused before reading the body
    request.max_content_length = limit  # a body of unknown length is cut off at the limit
    upload = request.files.get("file")
    save: Callable[[Path], None]
    if upload is not None:
        filename = upload.filename or "upload"
        save = save_stream(upload.stream)
    elif request.mimetype in RAW_TYPES:
        filename = request.args.get("filename") or f"{kind}.csv"
        save = save_stream(request.stream)
    else:
        return _error(
            400,
            "send the file as the multipart field 'file' or as a text/csv or XLSX body",
        )
    try:
        run_id = submit_import(services, kind, filename, save, actor=f"api:{g.api_user}")
    except ImportRequestError as exc:
        return _error(400, str(exc))
    response = jsonify(id=run_id, status="queued", url=url_for("imports_api.status", run_id=run_id))
    response.status_code = 202
    response.headers["Location"] = url_for("imports_api.status", run_id=run_id)
    return response


@bp.get("/<int:run_id>")
def status(run_id: int) -> Response:
    """The run: status, progress and, when finished, its report."""
    try:
        return jsonify(describe_run(current_services(), run_id))
    except NotFound:
        return _error(404, f"import {run_id} does not exist")


@bp.get("")
def recent() -> Response:
    """The newest import runs."""
    try:
        limit = int(request.args.get("limit", "50"))
    except ValueError:
        return _error(400, "limit must be an integer")
    return jsonify(imports=describe_recent_runs(current_services(), limit))


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return _error(exc.code or 500, exc.description or exc.name)
    current_app.logger.exception("imports API failure")
    return _error(500, "internal error")
