"""REST API for the do-not-contact list and consents (the machinery of :mod:`web.api_common`).

Reading needs ``contacts.read``, changing ``contacts.write``. A region-scoped user sees the
entries of phones linked to accounts of their regions (and e-mails of their consumers) and
changes only those (403 for another number; removing one they do not see is 404); the
bulk import of a list needs a user of all regions. Every change takes a ``reason`` and is
audited as ``api:<user>`` with it (:mod:`crm_store.contact_lists`); an entry added here
stops the next campaign call or SMS to that number at once.

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
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from flask import request
from pydantic import BaseModel, Field
from spectree import Response as Responses

from contactcenter.ingest import safe_filename
from crm_store import contact_lists
from crm_store.consent import contact_kind, dnc_phone, normalize_contact
from crm_store.dnc_import import import_dnc
from crm_store.visibility import contact_visible
from web.api_common import (
    ApiError,
    ApiModel,
    ErrorBody,
    PageQuery,
    api_actor,
    api_blueprint,
    api_services,
    current_scope,
    operation,
    page_body,
    page_model,
)

bp = api_blueprint("contacts_api", __name__, "/api")
DNC_TAGS = ["do-not-contact"]
CONSENT_TAGS = ["consents"]
#: The extensions an uploaded do-not-contact list keeps (its format is sniffed otherwise).
DNC_SUFFIXES = frozenset({".csv", ".txt", ".xlsx"})

#: ``crm_store.models.DNC_CHANNELS`` and ``CONSENT_PURPOSES`` (a test keeps them in step).
Channel = Literal["voice", "sms", "any"]
Purpose = Literal["service_notice", "debt_notice", "marketing", "robot_calls", "e_receipt"]
Reason = Field(min_length=1, max_length=500, description="why (written to the audit log)")


class DncQuery(PageQuery):
    """Filters of the do-not-contact list."""

    phone: str | None = Field(default=None, description="a phone in any notation")
    channel: Channel | None = None


class DncIn(ApiModel):
    """A number to put on the list."""

    phone: str = Field(description="any notation; stored in E.164")
    reason: str = Reason
    channel: Channel = "any"


class DncRemoveQuery(BaseModel):
    """Which entries to remove, and why (the reason may come in a JSON body instead)."""

    channel: Channel | None = Field(default=None, description="omit: every channel")
    reason: str | None = Field(default=None, max_length=500)


class DncEntryOut(BaseModel):
    """A do-not-contact entry."""

    id: int
    phone: str
    channel: Channel
    source: str = Field(description="supervisor (a person), sms_stop, ivr_opt_out, …")
    reason: str | None
    created_by: str
    created_at: datetime
    campaign_id: int | None


class DncAdded(BaseModel):
    """The entry, and whether it was added now."""

    entry: DncEntryOut
    added: bool


class DncRemoved(BaseModel):
    """The entries removed."""

    removed: list[DncEntryOut]


class DncImportForm(BaseModel):
    """The multipart form of a list import."""

    file: Any = Field(
        default=None,
        description="CSV, XLSX or one number a line",
        json_schema_extra={"type": ["string", "null"], "format": "binary"},
    )
    reason: str | None = Field(default=None, max_length=500, description="default: the file name")
    channel: Channel | None = Field(default=None, description="default: any")


class DncImportDone(BaseModel):
    """What the import of a list did (rows with problems by their row number)."""

    source: str
    channel: Channel
    rows_read: int
    added: int
    already_listed: int
    errors: list[dict[str, Any]]
    duplicates: list[dict[str, Any]]


class ConsentQuery(PageQuery):
    """Filters of the consent records."""

    value: str | None = Field(default=None, description="a phone (any notation) or an e-mail")
    purpose: Purpose | None = None


class ConsentIn(ApiModel):
    """A consent to record or withdraw."""

    value: str = Field(description="a phone (any notation) or an e-mail")
    purpose: Purpose
    reason: str = Reason


class ConsentOut(BaseModel):
    """A consent record."""

    id: int
    contact: Literal["phone", "email"]
    value: str
    purpose: Purpose
    status: Literal["granted", "withdrawn"]
    source: str
    given_at: datetime
    withdrawn_at: datetime | None
    reason: str | None
    changed_by: str | None


class ConsentChanged(BaseModel):
    """The record in force, and whether this request changed it."""

    consent: ConsentOut
    changed: bool


def _may_change(value: str) -> None:
    """403 when a region-scoped user changes a number or address not of their consumers."""
    scope = current_scope()
    if scope.all_regions:
        return
    with api_services().db.transaction() as s:
        if not contact_visible(s, scope, value):
            raise ApiError(403, "this contact belongs to no consumer of your regions")


# ---------------------------------------------------------------------------- dnc


@bp.get("/dnc")
@operation(
    permission="contacts.read", resp=Responses(HTTP_200=page_model(DncEntryOut)), tags=DNC_TAGS
)
def list_dnc(query: DncQuery) -> dict[str, Any]:
    """Do-not-contact entries, newest first."""
    with api_services().db.transaction() as s:
        page = contact_lists.list_dnc(
            s,
            phone=query.phone or None,
            channel=query.channel,
            limit=query.limit,
            cursor=query.cursor,
            scope=current_scope(),
        )
        return page_body(page, lambda e: e.as_dict())


@bp.post("/dnc")
@operation(
    permission="contacts.write",
    resp=Responses(
        HTTP_200=(DncAdded, "already on the list"), HTTP_201=(DncAdded, "added to the list")
    ),
    tags=DNC_TAGS,
)
def add_dnc(json: DncIn) -> tuple[dict[str, Any], int]:
    """Put a number on the do-not-contact list."""
    _may_change(dnc_phone(json.phone))
    with api_services().db.transaction() as s:
        entry, added = contact_lists.add_dnc(
            s, json.phone, channel=json.channel, reason=json.reason, actor=api_actor()
        )
    return {"entry": entry.as_dict(), "added": added}, 201 if added else 200


@bp.delete("/dnc/<phone>")
@operation(
    permission="contacts.write",
    resp=Responses(
        HTTP_200=DncRemoved,
        HTTP_400=(ErrorBody, "no reason given"),
        HTTP_404=(ErrorBody, "the number is not on the list"),
    ),
    tags=DNC_TAGS,
)
def remove_dnc(phone: str, query: DncRemoveQuery) -> dict[str, Any]:
    """Take a number off the list (one channel, or every channel).

    The reason comes as the `reason` query parameter or in a JSON body `{"reason"}`.
    """
    payload = request.get_json(silent=True) if request.content_length else None
    body = payload if isinstance(payload, dict) else {}
    reason = query.reason or body.get("reason")
    channel = query.channel or body.get("channel") or None
    if not isinstance(reason, str) or not reason.strip():
        raise ApiError(400, "reason is required (a query parameter or in a JSON body)")
    scope = current_scope()
    with api_services().db.transaction() as s:
        if not scope.all_regions and not contact_visible(s, scope, dnc_phone(phone)):
            removed = []
        else:
            removed = contact_lists.remove_dnc(
                s, phone, channel=channel, reason=reason, actor=api_actor()
            )
    if not removed:
        raise ApiError(404, "the number is not on the do-not-contact list")
    return {"removed": [entry.as_dict() for entry in removed]}


@bp.post("/dnc/import")
@operation(
    permission="contacts.write",
    all_regions=True,
    resp=Responses(
        HTTP_200=DncImportDone,
        HTTP_400=(ErrorBody, "no file"),
        HTTP_422=(ErrorBody, "the file is not a list of numbers"),
    ),
    tags=DNC_TAGS,
)
def import_dnc_list(form: DncImportForm) -> dict[str, Any]:
    """Import a list of numbers sent as the multipart field `file`."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ApiError(400, "send the list as the multipart field 'file'")
    name = safe_filename(upload.filename)
    reason = (form.reason if form is not None else None) or f"импорт списка {name}"
    channel = (form.channel if form is not None else None) or "any"
    suffix = Path(name).suffix.lower()
    with tempfile.TemporaryDirectory(prefix="dnc-import-") as folder:
        # the client's name never becomes a path (``..``, NUL): only a known extension is kept
        path = Path(folder) / ("list" + (suffix if suffix in DNC_SUFFIXES else ""))
        upload.save(path)
        report = import_dnc(
            api_services().db, path, actor=api_actor(), reason=reason, channel=channel, source=name
        )
    return report.as_dict()


# ---------------------------------------------------------------------------- consents


@bp.get("/consents")
@operation(
    permission="contacts.read", resp=Responses(HTTP_200=page_model(ConsentOut)), tags=CONSENT_TAGS
)
def list_consents(query: ConsentQuery) -> dict[str, Any]:
    """Consent records (grants, withdrawals, refusals), newest first."""
    services = api_services()
    with services.db.transaction() as s:
        page = contact_lists.list_consents(
            s,
            value=query.value or None,
            purpose=query.purpose,
            limit=query.limit,
            cursor=query.cursor,
            at=services.clock(),
            scope=current_scope(),
        )
        return page_body(page, lambda e: e.as_dict())


def _consent_change(change: ConsentIn, *, withdrawing: bool) -> tuple[dict[str, Any], int]:
    _may_change(normalize_contact(contact_kind(change.value), change.value))
    act = contact_lists.withdraw if withdrawing else contact_lists.grant
    services = api_services()
    with services.db.transaction() as s:
        entry, changed = act(
            s,
            change.value,
            purpose=change.purpose,
            reason=change.reason,
            actor=api_actor(),
            at=services.clock(),
        )
    return {"consent": entry.as_dict(), "changed": changed}, (
        201 if changed and not withdrawing else 200
    )


@bp.post("/consents")
@operation(
    permission="contacts.write",
    resp=Responses(
        HTTP_200=(ConsentChanged, "a consent was in force already"),
        HTTP_201=(ConsentChanged, "recorded"),
    ),
    tags=CONSENT_TAGS,
)
def grant_consent(json: ConsentIn) -> tuple[dict[str, Any], int]:
    """Record a consent from now."""
    return _consent_change(json, withdrawing=False)


@bp.post("/consents/withdraw")
@operation(permission="contacts.write", resp=Responses(HTTP_200=ConsentChanged), tags=CONSENT_TAGS)
def withdraw_consent(json: ConsentIn) -> tuple[dict[str, Any], int]:
    """Withdraw a consent from now (a refusal is recorded when none was in force)."""
    return _consent_change(json, withdrawing=True)
