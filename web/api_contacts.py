"""REST API for the do-not-contact list and consents (the bearer-token auth of :mod:`web.api`).

Supervisors and admins (or the ``API_TOKEN``) read and change them; operators have no access
(the lists are personal data, and no operator screen needs them yet). Every change takes a
``reason`` and is audited as ``api:<user>`` with it (:mod:`crm_store.contact_lists`); an
entry added here stops the next campaign call or SMS to that number at once.

Routes::

    GET    /api/dnc?phone=&channel=&limit=&cursor=      {"items": [...], "next_cursor": …|null}
    POST   /api/dnc            {"phone", "reason", "channel"?: any|voice|sms}
                               → 201 {"entry", "added": true}, 200 when already listed
    DELETE /api/dnc/<phone>?channel=&reason=           (or the reason in a JSON body)
                               → 200 {"removed": [...]}, 404 when not listed
    POST   /api/dnc/import     multipart: file (CSV, XLSX or one number a line), reason?,
                               channel? → 200 the import report (rows with problems by number)
    GET    /api/consents?value=&purpose=&limit=&cursor=  {"items": [...], "next_cursor": …}
    POST   /api/consents             {"value", "purpose", "reason"} → 201 granted, 200 already
    POST   /api/consents/withdraw    {"value", "purpose", "reason"} → 200

Lists are newest first with keyset paging: pass the answer's ``next_cursor`` as ``cursor``.
Errors are one JSON body ``{"error": …}`` (plus ``errors`` for a refused file): 400 for a
request that is not what the route takes, 422 for values the CRM refuses (a bad number, an
unknown purpose, an empty reason), 404, 401/403 from the authentication.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from crm_store import contact_lists
from crm_store.dnc_import import import_dnc
from crm_store.errors import ImportFileError, InvalidInput
from web.api import authenticate
from web.common import current_services

bp = Blueprint("contacts_api", __name__, url_prefix="/api")
bp.before_request(authenticate)


def _error(status: int, message: str, **extra: Any) -> Response:
    response = jsonify(error=message, **extra)
    response.status_code = status
    return response


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    if isinstance(exc, InvalidInput | ImportFileError):
        return _error(422, str(exc))
    if isinstance(exc, HTTPException):
        return _error(exc.code or 500, exc.description or exc.name)
    current_app.logger.exception("contacts API failure")
    return _error(500, "internal error")


class _BadRequest(Exception):
    """The request is not what the route takes (answered 400)."""


@bp.errorhandler(_BadRequest)
def _bad_request(exc: _BadRequest) -> Response:
    return _error(400, str(exc))


def _actor() -> str:
    return f"api:{g.api_user}"


def _json_object() -> dict[str, Any]:
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        raise _BadRequest("send a JSON object")
    return payload


def _text(payload: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = payload.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _BadRequest(f"{name} is required (a non-empty string)")
    return value


def _paging() -> tuple[int, str | None]:
    limit = request.args.get("limit", "")
    if limit and not (limit.isascii() and limit.isdigit()):
        raise _BadRequest("limit must be a positive integer")
    return (int(limit) if limit else contact_lists.DEFAULT_PAGE), request.args.get("cursor")


def _page(page: contact_lists.ContactPage[Any]) -> Response:
    return jsonify(items=[item.as_dict() for item in page.items], next_cursor=page.next_cursor)


# ---------------------------------------------------------------------------- dnc


@bp.get("/dnc")
def dnc_list_view() -> Response:
    """Do-not-contact entries, newest first."""
    limit, cursor = _paging()
    with current_services().db.transaction() as s:
        page = contact_lists.list_dnc(
            s,
            phone=request.args.get("phone") or None,
            channel=request.args.get("channel") or None,
            limit=limit,
            cursor=cursor,
        )
        return _page(page)


@bp.post("/dnc")
def dnc_add_view() -> Response:
    """Put a number on the list."""
    payload = _json_object()
    phone, reason = _text(payload, "phone"), _text(payload, "reason")
    channel = _text(payload, "channel", required=False) or "any"
    with current_services().db.transaction() as s:
        entry, added = contact_lists.add_dnc(
            s, str(phone), channel=channel, reason=str(reason), actor=_actor()
        )
    response = jsonify(entry=entry.as_dict(), added=added)
    response.status_code = 201 if added else 200
    return response


@bp.delete("/dnc/<phone>")
def dnc_remove_view(phone: str) -> Response:
    """Take a number off the list (one channel, or every channel)."""
    payload = request.get_json(silent=True) if request.content_length else None
    body = payload if isinstance(payload, dict) else {}
    reason = request.args.get("reason") or body.get("reason")
    channel = request.args.get("channel") or body.get("channel") or None
    if not isinstance(reason, str) or not reason.strip():
        raise _BadRequest("reason is required (a query parameter or in a JSON body)")
    with current_services().db.transaction() as s:
        removed = contact_lists.remove_dnc(s, phone, channel=channel, reason=reason, actor=_actor())
    if not removed:
        return _error(404, "the number is not on the do-not-contact list")
    return jsonify(removed=[entry.as_dict() for entry in removed])


@bp.post("/dnc/import")
def dnc_import_view() -> Response:
    """Import a list of numbers sent as the multipart field ``file``."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise _BadRequest("send the list as the multipart field 'file'")
    name = Path(upload.filename).name
    reason = request.form.get("reason") or f"импорт списка {name}"
    channel = request.form.get("channel") or "any"
    with tempfile.TemporaryDirectory(prefix="dnc-import-") as folder:
        path = Path(folder) / (name or "list.csv")
        upload.save(path)
        try:
            report = import_dnc(
                current_services().db,
                path,
                actor=_actor(),
                reason=reason,
                channel=channel,
                source=name,
            )
        except ImportFileError as exc:
            return _error(422, f"the file is not a do-not-contact list: {exc}")
    return jsonify(report.as_dict())


# ---------------------------------------------------------------------------- consents


@bp.get("/consents")
def consent_list_view() -> Response:
    """Consent records, newest first."""
    limit, cursor = _paging()
    with current_services().db.transaction() as s:
        page = contact_lists.list_consents(
            s,
            value=request.args.get("value") or None,
            purpose=request.args.get("purpose") or None,
            limit=limit,
            cursor=cursor,
            at=current_services().clock(),
        )
        return _page(page)


def _consent_change(withdrawing: bool) -> Response:
    payload = _json_object()
    value, purpose, reason = (str(_text(payload, k)) for k in ("value", "purpose", "reason"))
    change = contact_lists.withdraw if withdrawing else contact_lists.grant
    services = current_services()
    with services.db.transaction() as s:
        entry, changed = change(
            s, value, purpose=purpose, reason=reason, actor=_actor(), at=services.clock()
        )
    response = jsonify(consent=entry.as_dict(), changed=changed)
    response.status_code = 201 if changed and not withdrawing else 200
    return response


@bp.post("/consents")
def consent_grant_view() -> Response:
    """Record a consent from now."""
    return _consent_change(withdrawing=False)


@bp.post("/consents/withdraw")
def consent_withdraw_view() -> Response:
    """Withdraw a consent from now."""
    return _consent_change(withdrawing=True)
