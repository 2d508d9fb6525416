"""REST API of campaigns: ``/api/campaigns`` (the shared machinery of :mod:`web.api_common`).

Reading needs ``campaigns.read``, creating and the actions ``campaigns.write``. A
region-scoped user sees and acts on a campaign only when its audience names regions, all
of them theirs (:func:`crm_store.visibility.covers_campaign`); any other campaign is 404 for
them, and a definition they send must name such regions (``audience.regions``; 422 else).

Routes::

    GET  /api/campaigns                      the newest first (paged; ?status=)
    POST /api/campaigns                      create from a JSON definition → 201 {"id", "status"}
    GET  /api/campaigns/<id>                 status (targets by state, attempts, ETA)
    GET  /api/campaigns/<id>/preview         audience count, sample, split by time zone
    POST /api/campaigns/<id>/launch          202: planning runs in a worker (RQ job); the
                                             answer gives the audience size, and a warning
                                             when it is 0
    POST /api/campaigns/<id>/pause|resume|cancel
    GET  /api/campaigns/<id>/report          the campaign report

:func:`authenticate` is re-exported here for modules that imported it from this one.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from flask import g, request
from pydantic import BaseModel, Field
from spectree import Response as Responses

from campaigns import operations, service
from campaigns.definition import CampaignDefinition, flow_names_in, parse_definition
from campaigns.errors import DefinitionError, FieldIssue
from campaigns.report import build_report
from campaigns.sms import link_variables
from crm_store.audit import acting_as
from crm_store.list_queries import campaign_as_dict, campaigns_page, get_campaign
from web.api_common import (
    ErrorBody,
    PageQuery,
    api_actor,
    api_blueprint,
    api_services,
    authenticate,
    current_scope,
    operation,
    page_body,
    page_model,
)

__all__ = ["authenticate", "bp"]

bp = api_blueprint("campaigns_api", __name__, "/api/campaigns")
TAGS = ["campaigns"]

#: ``crm_store.models.CAMPAIGN_STATUSES`` and ``CAMPAIGN_CHANNELS`` (a test keeps them in step).
CampaignStatusName = Literal["draft", "planned", "running", "paused", "cancelled", "completed"]
ChannelName = Literal["voice", "sms", "voice_then_sms"]


class CampaignListQuery(PageQuery):
    """Filters of the campaign list."""

    status: CampaignStatusName | None = None


class CampaignItem(BaseModel):
    """A campaign in a list."""

    id: int
    name: str
    channel: ChannelName
    status: CampaignStatusName
    regions: list[str] | None = Field(description="the audience's regions; null: every region")
    created_by: str
    created_at: datetime
    launched_at: datetime | None
    finished_at: datetime | None


class CampaignCreated(BaseModel):
    """A campaign just created (a draft)."""

    id: int
    status: CampaignStatusName


class CampaignProgress(BaseModel):
    """Progress of a campaign."""

    id: int
    name: str
    status: CampaignStatusName
    channel: ChannelName
    targets: dict[str, int] = Field(description="targets by state")
    attempts: dict[str, int] = Field(description="attempts by status")
    total: int
    finished: int
    eta_s: float | None = Field(description="seconds to go at the configured pace (running)")
    launched_at: datetime | None
    finished_at: datetime | None


class PreviewQuery(BaseModel):
    """How many sample rows the preview shows."""

    sample: int = Field(default=10, ge=0, le=100)


class PreviewRow(BaseModel):
    """One account of the audience sample."""

    account: str
    timezone: str | None
    debt: Decimal
    days_overdue: int


class AudiencePreviewOut(BaseModel):
    """The audience a campaign would reach if launched now."""

    count: int
    without_phone: int
    by_timezone: dict[str, int]
    sample: list[PreviewRow]


class Launched(BaseModel):
    """A launch queued to a worker."""

    id: int
    status: Literal["launching"]
    job_id: str
    audience: int
    warning: str | None = None


class ActionDone(BaseModel):
    """A campaign's new status."""

    id: int
    status: CampaignStatusName


class GroupOut(BaseModel):
    """Payments of a group of targets within the attribution window."""

    targets: int
    payers: int
    paid: Decimal
    pay_rate: float


class CampaignReportOut(BaseModel):
    """The campaign report (contacts, outcomes, payments against the control group)."""

    campaign_id: int
    name: str
    status: CampaignStatusName
    attribution_days: int
    targets: int
    control_group: int
    attempts: int
    calls_placed: int
    sms_sent: int
    reached: int
    calls_answered: int
    answered_by_machine: int
    sms_delivered: int
    right_party_contacts: int
    opt_outs: int
    skipped_by_reason: dict[str, int]
    outcomes: dict[str, int]
    contacted: GroupOut
    treatment: GroupOut
    control: GroupOut
    uplift: float | None
    sms_segments: int
    call_minutes: int
    cost: Decimal
    since_launch: dict[str, Any]


def _visible(campaign_id: int) -> None:
    """404 unless the campaign exists and the scope sees it."""
    with api_services().db.transaction() as s:
        get_campaign(s, current_scope(), campaign_id)


@bp.get("")
@operation(
    permission="campaigns.read",
    resp=Responses(HTTP_200=page_model(CampaignItem)),
    tags=TAGS,
)
def list_campaigns(query: CampaignListQuery) -> dict[str, Any]:
    """Campaigns, newest first."""
    with api_services().db.transaction() as s:
        page = campaigns_page(
            s, current_scope(), status=query.status, limit=query.limit, cursor=query.cursor
        )
        return page_body(page, campaign_as_dict)


@bp.post("")
@operation(
    permission="campaigns.write",
    resp=Responses(HTTP_201=CampaignCreated),
    tags=TAGS,
)
def create_campaign(json: CampaignDefinition) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Create a draft campaign from a definition.

    The body is the definition (as the YAML file of `contactcenter campaign create`, in
    JSON). A 422 lists every problem in `details` as `{"path", "message"}`.
    """
    services = api_services()
    # The body as sent (already validated against the model): the flows and the payment
    # links the settings can fill are checked by parse_definition.
    definition = parse_definition(
        request.get_json(),
        flow_names=flow_names_in(services.settings.flows_file),
        link_variables=link_variables(services.settings),
    )
    scope = current_scope()
    if not scope.covers_regions(definition.audience.regions):
        mine = ", ".join(sorted(scope.regions or ()))
        raise DefinitionError(
            [
                FieldIssue(
                    "audience.regions",
                    f"name the regions of the audience, within yours ({mine})",
                )
            ]
        )
    actor = api_actor()
    with acting_as(actor):
        campaign_id = operations.create(services, definition, actor=actor, user=str(g.api_user))
    location = f"/api/campaigns/{campaign_id}"
    return {"id": campaign_id, "status": "draft"}, 201, {"Location": location}


@bp.get("/<int:campaign_id>")
@operation(
    permission="campaigns.read",
    resp=Responses(HTTP_200=CampaignProgress, HTTP_404=ErrorBody),
    tags=TAGS,
)
def campaign_progress(campaign_id: int) -> dict[str, Any]:
    """Progress of a campaign: targets by state, attempts by status, the ETA."""
    _visible(campaign_id)
    return service.status(api_services(), campaign_id).as_dict()


@bp.get("/<int:campaign_id>/preview")
@operation(
    permission="campaigns.read",
    resp=Responses(HTTP_200=AudiencePreviewOut, HTTP_404=ErrorBody),
    tags=TAGS,
)
def campaign_preview(campaign_id: int, query: PreviewQuery) -> dict[str, Any]:
    """The audience the campaign would reach now: count, split by time zone, a sample."""
    _visible(campaign_id)
    services = api_services()
    shown = service.preview(services, campaign_id, sample_size=query.sample)
    today = service.today(services)
    return {
        "count": shown.count,
        "without_phone": shown.without_phone,
        "by_timezone": shown.by_timezone,
        "sample": [
            {
                "account": r.account_number,
                "timezone": r.timezone,
                "debt": str(r.debt),
                "days_overdue": r.days_overdue(r.oldest_unpaid_due or today),
            }
            for r in shown.sample
        ],
    }


@bp.post("/<int:campaign_id>/<any(launch, pause, resume, cancel):action>")
@operation(
    permission="campaigns.write",
    resp=Responses(
        HTTP_200=(ActionDone, "paused, resumed or cancelled"),
        HTTP_202=(Launched, "the launch is queued"),
        HTTP_404=ErrorBody,
        HTTP_409=(ErrorBody, "not possible in the campaign's status"),
    ),
    tags=TAGS,
)
def campaign_action(
    campaign_id: int, action: str
) -> tuple[dict[str, Any], int] | tuple[dict[str, Any], int, dict[str, str]]:
    """Launch (planning runs in a worker), pause, resume or cancel a campaign."""
    _visible(campaign_id)
    services = api_services()
    actor = api_actor()
    with acting_as(actor):
        if action == "launch":
            audience = service.preview(services, campaign_id, sample_size=0).count
            job_id = operations.launch(services, campaign_id, actor=actor)
            body: dict[str, Any] = {
                "id": campaign_id,
                "status": "launching",
                "job_id": job_id,
                "audience": audience,
            }
            if audience == 0:
                body["warning"] = "0 targets: the audience selects no account, nothing will be sent"
            return body, 202, {"Location": f"/api/campaigns/{campaign_id}"}
        new_status = operations.act(services, campaign_id, action, actor=actor)
    return {"id": campaign_id, "status": new_status}, 200


@bp.get("/<int:campaign_id>/report")
@operation(
    permission="campaigns.read",
    resp=Responses(HTTP_200=CampaignReportOut, HTTP_404=ErrorBody),
    tags=TAGS,
)
def campaign_report(campaign_id: int) -> dict[str, Any]:
    """The campaign report."""
    _visible(campaign_id)
    return build_report(api_services(), campaign_id).as_dict()
