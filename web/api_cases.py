"""REST API of cases (обращения): ``/api/cases`` (the machinery of :mod:`web.api_common`).

Reading needs ``consumers.read``, opening and working a case ``consumers.write``; a case is
seen within the user's regions (:mod:`crm_store.case_queries`: one of another region is 404).
Every change is in the case's history (who, when, from → to, note) and in the audit log.

Routes::

    GET   /api/cases?status=&type=&account=&consumer_id=   newest first (paged)
    POST  /api/cases          {"type", "subject", "description"?, "account"?, "consumer_id"?,
                               "interaction_id"?} → 201 the case
    GET   /api/cases/<id>     the case with its history
    PATCH /api/cases/<id>     {"status"?, "note"?} → the case
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from spectree import Response as Responses

from crm_store import case_queries as cases
from web.api_common import (
    ApiModel,
    ErrorBody,
    PageQuery,
    api_actor,
    api_blueprint,
    api_services,
    current_scope,
    operation,
    page_model,
)

bp = api_blueprint("cases_api", __name__, "/api/cases")
TAGS = ["cases"]
NOT_FOUND = (ErrorBody, "no such case, or not in your regions")

#: ``crm_store.models.CASE_TYPES`` and ``CASE_STATUSES`` (a test keeps them in step).
CaseType = Literal[
    "callback",
    "already_paid",
    "outage",
    "meter_service",
    "complaint",
    "voicemail",
    "reading_dispute",
]
CaseStatus = Literal["open", "in_progress", "resolved", "closed"]


class CaseQuery(PageQuery):
    """Filters of the case list."""

    status: CaseStatus | None = None
    type: CaseType | None = None
    account: str | None = Field(default=None, max_length=64, description="an account number")
    consumer_id: int | None = None


class CaseIn(ApiModel):
    """A case to open; name its account or consumer (required for region-scoped users)."""

    type: CaseType
    subject: str = Field(min_length=1, max_length=300)
    description: str = Field(default="", max_length=4000)
    account: str | None = Field(default=None, max_length=64, description="an account number")
    consumer_id: int | None = None
    interaction_id: int | None = Field(default=None, description="the contact it came from")


class CaseChange(ApiModel):
    """A new status (with an optional note), or a note alone."""

    status: CaseStatus | None = Field(
        default=None, description="open → in_progress → resolved → closed; resolved → in_progress"
    )
    note: str | None = Field(default=None, max_length=4000)


class CaseOut(BaseModel):
    """A case."""

    id: int
    type: CaseType
    status: CaseStatus
    subject: str
    description: str
    account_number: str | None
    consumer_id: int | None
    interaction_id: int | None
    sla_due_at: datetime | None
    created_at: datetime
    closed_at: datetime | None


class CaseEventOut(BaseModel):
    """A status change or a note."""

    at: datetime
    actor: str
    from_status: CaseStatus | None
    to_status: CaseStatus | None
    note: str


class CaseDetail(CaseOut):
    """A case with its history, oldest first."""

    events: list[CaseEventOut]


@bp.get("")
@operation(
    permission="consumers.read",
    resp=Responses(
        HTTP_200=page_model(CaseOut), HTTP_404=(ErrorBody, "the account filter names no account")
    ),
    tags=TAGS,
)
def list_cases(query: CaseQuery) -> dict[str, Any]:
    """Cases, newest first."""
    with api_services().db.transaction() as s:
        page = cases.list_cases(
            s,
            current_scope(),
            status=query.status,
            case_type=query.type,
            account=query.account,
            consumer_id=query.consumer_id,
            limit=query.limit,
            cursor=query.cursor,
        )
        return {
            "items": cases.cases_as_dicts(s, page.items),
            "next_cursor": page.next_cursor,
        }


@bp.post("")
@operation(
    permission="consumers.write",
    resp=Responses(HTTP_201=CaseDetail, HTTP_404=(ErrorBody, "no such account or consumer")),
    tags=TAGS,
)
def open_case(json: CaseIn) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Open a case (its SLA due time is set from its type)."""
    services = api_services()
    with services.db.transaction() as s:
        case = cases.create_case(
            s,
            current_scope(),
            case_type=json.type,
            subject=json.subject,
            description=json.description,
            account=json.account,
            consumer_id=json.consumer_id,
            interaction_id=json.interaction_id,
            actor=api_actor(),
            now=services.clock(),
        )
        body = cases.case_as_dict(s, case)
    return body, 201, {"Location": f"/api/cases/{body['id']}"}


@bp.get("/<int:case_id>")
@operation(
    permission="consumers.read",
    resp=Responses(HTTP_200=CaseDetail, HTTP_404=NOT_FOUND),
    tags=TAGS,
)
def get_case(case_id: int) -> dict[str, Any]:
    """A case with its history."""
    with api_services().db.transaction() as s:
        return cases.case_as_dict(s, cases.get_case(s, current_scope(), case_id))


@bp.patch("/<int:case_id>")
@operation(
    permission="consumers.write",
    resp=Responses(
        HTTP_200=CaseDetail,
        HTTP_404=NOT_FOUND,
        HTTP_409=(ErrorBody, "the workflow does not allow that status change"),
    ),
    tags=TAGS,
)
def change_case(case_id: int, json: CaseChange) -> dict[str, Any]:
    """Move a case to another status (with a note), or add a note."""
    services = api_services()
    with services.db.transaction() as s:
        case = cases.update_case(
            s,
            current_scope(),
            case_id,
            status=json.status,
            note=json.note,
            actor=api_actor(),
            now=services.clock(),
        )
        return cases.case_as_dict(s, case)
