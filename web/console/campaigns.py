"""Campaign pages (``campaigns.read``; creating and the actions ``campaigns.write``).

A user sees, and acts on, only campaigns whose audience names regions, all of them theirs
(:mod:`campaigns.progress`); any other is 404. Creating one — from the form or an uploaded
YAML file (errors next to their fields, or at their lines) — needs regions within the user's
(:mod:`campaigns.definition_form`). Launch, pause, resume and cancel are POST forms with the
CSRF token, audited (:mod:`campaigns.operations`).

The campaign page updates itself without a reload: the status, counts and actions are an
htmx fragment polled every :data:`PROGRESS_S` seconds while the campaign may still change,
the charts re-read ``progress.json`` as often (``static/charts.js``), and the payment
conversion against the control group (the report's, heavier) every :data:`CONVERSION_S`.
The report is a page and a CSV / XLSX download.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import flash, g, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from campaigns import service
from campaigns.definition import CampaignDefinition, flow_names_in
from campaigns.definition_form import (
    AGING,
    AMD_POLICIES,
    CHANNELS,
    FORM,
    MAX_UPLOAD_BYTES,
    definition_from_form,
    definition_from_upload,
)
from campaigns.errors import CampaignError, CampaignNotFound
from campaigns.operations import ACTIONS, act, create, launching
from campaigns.progress import (
    LIVE_STATUSES,
    Progress,
    audience_by_region,
    campaign_progress,
    get_campaign,
    known_regions,
    list_campaigns,
)
from campaigns.report import build_report
from campaigns.report_export import report_csv, report_sections, report_xlsx
from campaigns.sms import link_variables
from contactcenter.phones import mask_phone
from contactcenter.services import Services
from crm_store.errors import InvalidInput
from crm_store.models import CAMPAIGN_STATUSES, Campaign
from web.common import current_services
from web.console import bp
from web.console.auth import DISPLAY_ZONE, console_actor, current_scope, error_page, login_required
from web.console.labels import label

log = logging.getLogger(__name__)

#: Seconds between refreshes of the progress, and of the payment conversion.
PROGRESS_S = 3
CONVERSION_S = 30
PAGE_SIZE = 30
SAMPLE_SIZE = 20
ACTION_LABELS = {
    "launch": "запустить",
    "pause": "приостановить",
    "resume": "продолжить",
    "cancel": "отменить",
}
#: Which actions a campaign in each status offers.
STATUS_ACTIONS = {
    "draft": ("launch", "cancel"),
    "planned": ("launch", "cancel"),
    "running": ("pause", "cancel"),
    "paused": ("resume", "cancel"),
}


def _visible(services: Services, campaign_id: int) -> dict[str, Any] | None:
    """The campaign as plain values when the user sees it, else None."""
    with services.db.session() as s:
        try:
            campaign = get_campaign(s, current_scope(), campaign_id)
        except CampaignNotFound:
            return None
        return _view(campaign)


def _view(campaign: Campaign) -> dict[str, Any]:
    definition = dict(campaign.definition or {})
    return {
        "id": campaign.id,
        "name": campaign.name,
        "channel": campaign.channel,
        "status": campaign.status,
        "created_by": campaign.created_by,
        "created_at": campaign.created_at,
        "launched_at": campaign.launched_at,
        "finished_at": campaign.finished_at,
        "definition": definition,
        "audience": definition.get("audience") or {},
        "schedule": definition.get("schedule") or {},
        "pacing": definition.get("pacing") or {},
        "sms": definition.get("sms") or {},
        "voice": definition.get("voice") or {},
    }


def _not_found() -> Response:
    return error_page(404, "Такой кампании нет или она вне ваших регионов.")


# --------------------------------------------------------------------------- list


@bp.get("/campaigns", endpoint="campaigns")
@login_required("campaigns.read")
def campaigns_list() -> Response | str:
    """The campaigns the user sees, newest first (filter by status; keyset pages)."""
    status = request.args.get("status") or None
    if status is not None and status not in CAMPAIGN_STATUSES:
        status = None
    services = current_services()
    try:
        with services.db.session() as s:
            page = list_campaigns(
                s, current_scope(), status=status, limit=PAGE_SIZE, cursor=request.args.get("after")
            )
    except InvalidInput:
        return error_page(400, "Неверная ссылка на страницу списка.")
    return render_template(
        "console/campaigns.html", page=page, status=status, statuses=CAMPAIGN_STATUSES
    )


# --------------------------------------------------------------------------- create


def _form_context(services: Services, **extra: Any) -> dict[str, Any]:
    with services.db.session() as s:
        regions = known_regions(s, current_scope())
    flows = sorted(flow_names_in(services.settings.flows_file) or ())
    return {
        "regions": regions,
        "flows": flows,
        "channels": CHANNELS,
        "aging": AGING,
        "amd_policies": AMD_POLICIES,
        "max_upload_kb": MAX_UPLOAD_BYTES // 1024,
        "form_key": FORM,
        "values": {},
        "errors": {},
        "upload": None,
        **extra,
    }


@bp.get("/campaigns/new")
@login_required("campaigns.write")
def campaign_new() -> str:
    """The form and the YAML upload."""
    return render_template(
        "console/campaign_new.html",
        **_form_context(current_services(), values={"channel": "sms"}),
    )


def _created(services: Services, definition: CampaignDefinition) -> Response:
    campaign_id = create(services, definition, actor=console_actor(), user=g.user)
    log.info("console: %s created campaign %s", g.user, campaign_id)
    flash(f"Кампания «{definition.name}» создана (черновик).", "success")
    return redirect(url_for("console.campaign", campaign_id=campaign_id))


@bp.post("/campaigns/new")
@login_required("campaigns.write")
def campaign_create() -> Response:
    """Create a draft from the form; errors next to their fields (422)."""
    services = current_services()
    result = definition_from_form(
        request.form,
        current_scope(),
        flow_names=flow_names_in(services.settings.flows_file),
        link_variables=link_variables(services.settings),
    )
    if result.ok and result.definition is not None:
        return _created(services, result.definition)
    values: dict[str, list[str] | str] = {
        key: (
            request.form.getlist(key) if key in ("regions", "aging_buckets") else request.form[key]
        )
        for key in request.form
    }
    body = render_template(
        "console/campaign_new.html",
        **_form_context(services, values=values, errors=result.errors),
    )
    return Response(body, status=422, mimetype="text/html")


@bp.post("/campaigns/upload")
@login_required("campaigns.write")
def campaign_upload() -> Response:
    """Create a draft from an uploaded YAML file; errors at their lines (422)."""
    services = current_services()
    file = request.files.get("file")
    data = file.stream.read(MAX_UPLOAD_BYTES + 1) if file is not None else b""
    result = definition_from_upload(
        (file.filename or "") if file is not None else "",
        data,
        current_scope(),
        flow_names=flow_names_in(services.settings.flows_file),
        link_variables=link_variables(services.settings),
    )
    if result.ok and result.definition is not None:
        return _created(services, result.definition)
    lines = result.text.splitlines() if result.text else []
    by_line: dict[int, list[str]] = {}
    unplaced: list[str] = []
    for issue in result.issues:
        text = f"{issue.path or 'файл'}: {issue.message}"
        if issue.line is not None and 1 <= issue.line <= max(len(lines), 1):
            by_line.setdefault(issue.line, []).append(text)
        else:
            unplaced.append(text)
    upload = {
        "filename": file.filename if file is not None else "",
        "lines": lines,
        "by_line": by_line,
        "unplaced": unplaced,
        "issues": result.issues,
        "errors": result.errors.get("file", []),
    }
    body = render_template(
        "console/campaign_new.html",
        **_form_context(services, values={"channel": "sms"}, upload=upload),
    )
    return Response(body, status=422, mimetype="text/html")


# --------------------------------------------------------------------------- one campaign


def _progress(services: Services, campaign_id: int) -> tuple[dict[str, Any], Progress] | None:
    with services.db.session() as s:
        try:
            campaign = get_campaign(s, current_scope(), campaign_id)
        except CampaignNotFound:
            return None
        view = _view(campaign)
        shown = campaign_progress(s, campaign)
    view["launching"] = view["status"] in ("draft", "planned") and launching(services, campaign_id)
    return view, shown


def _actions(view: dict[str, Any]) -> list[tuple[str, str]]:
    if not current_scope().can("campaigns.write") or view.get("launching"):
        return []
    return [(a, ACTION_LABELS[a]) for a in STATUS_ACTIONS.get(view["status"], ())]


@bp.get("/campaigns/<int:campaign_id>", endpoint="campaign")
@login_required("campaigns.read")
def campaign_page(campaign_id: int) -> Response | str:
    """A campaign: its definition, live progress, charts, conversion, actions."""
    found = _progress(current_services(), campaign_id)
    if found is None:
        return _not_found()
    view, shown = found
    return render_template(
        "console/campaign.html",
        c=view,
        progress=shown,
        actions=_actions(view),
        progress_s=PROGRESS_S,
        conversion_s=CONVERSION_S,
    )


@bp.get("/campaigns/<int:campaign_id>/progress")
@login_required("campaigns.read")
def campaign_progress_fragment(campaign_id: int) -> Response | str:
    """The live part of the campaign page (htmx fragment)."""
    found = _progress(current_services(), campaign_id)
    if found is None:
        return _not_found()
    view, shown = found
    return render_template(
        "console/_campaign_progress.html",
        c=view,
        progress=shown,
        actions=_actions(view),
        progress_s=PROGRESS_S,
    )


def progress_chart_data(view: dict[str, Any], shown: Progress) -> dict[str, Any]:
    """The campaign charts' data: targets by state, attempts over time, skips by reason."""
    states = {k: v for k, v in shown.targets.items() if v}
    timeline = shown.timeline
    pattern = "%H:%M" if timeline.bucket_s < 86400 else "%d.%m"
    return {
        "live": shown.live or bool(view.get("launching")),
        "status": shown.status,
        "as_of": current_services().clock().isoformat(),
        "total": shown.total,
        "finished": shown.finished,
        "targets": {
            "labels": [label(k, "target_state") for k in states],
            "values": list(states.values()),
        },
        "timeline": {
            "labels": [t.astimezone(DISPLAY_ZONE).strftime(pattern) for t in timeline.starts],
            "datasets": [
                {"label": label(k, "attempt"), "values": v} for k, v in timeline.series.items()
            ],
        },
        "skipped": {
            "labels": [label(k, "skip") for k in shown.skipped],
            "values": list(shown.skipped.values()),
        },
    }


@bp.get("/campaigns/<int:campaign_id>/progress.json")
@login_required("campaigns.read")
def campaign_progress_data(campaign_id: int) -> Response:
    """The campaign charts' data (polled by ``charts.js``)."""
    found = _progress(current_services(), campaign_id)
    if found is None:
        return _not_found()
    return jsonify(progress_chart_data(*found))


@bp.get("/campaigns/<int:campaign_id>/conversion")
@login_required("campaigns.read")
def campaign_conversion(campaign_id: int) -> Response | str:
    """Payments of the campaign's targets against the control group (htmx fragment)."""
    services = current_services()
    view = _visible(services, campaign_id)
    if view is None:
        return _not_found()
    report = build_report(services, campaign_id)
    return render_template(
        "console/_campaign_conversion.html",
        c=view,
        report=report,
        live=view["status"] in LIVE_STATUSES,
        conversion_s=CONVERSION_S,
    )


@bp.get("/campaigns/<int:campaign_id>/preview")
@login_required("campaigns.read")
def campaign_preview(campaign_id: int) -> Response | str:
    """The audience the campaign would reach now: count, sample, by time zone and region."""
    services = current_services()
    view = _visible(services, campaign_id)
    if view is None:
        return _not_found()
    shown = service.preview(services, campaign_id, sample_size=SAMPLE_SIZE)
    _, definition = service.get_definition(services, campaign_id)
    with services.db.session() as s:
        regions = audience_by_region(s, definition.audience, now=services.clock())
    today = service.today(services)
    sample = [
        {
            "account": row.account_number,
            "name": row.consumer_name,
            "phone": mask_phone(row.phone) if row.phone else None,
            "timezone": row.timezone,
            "debt": row.debt,
            "days_overdue": row.days_overdue(today),
        }
        for row in shown.sample
    ]
    return render_template(
        "console/campaign_preview.html", c=view, preview=shown, regions=regions, sample=sample
    )


@bp.post("/campaigns/<int:campaign_id>/<any(launch, pause, resume, cancel):action>")
@login_required("campaigns.write")
def campaign_action(campaign_id: int, action: str) -> Response:
    """Launch (queued for a worker), pause, resume or cancel; back to the campaign."""
    services = current_services()
    view = _visible(services, campaign_id)
    if view is None:
        return _not_found()
    chosen = next(a for a in ACTIONS if a == action)  # the route admits these four only
    try:
        status = act(services, campaign_id, chosen, actor=console_actor())
    except CampaignError:
        flash(
            f"Нельзя {ACTION_LABELS[action]} кампанию: она"
            f" {label(view['status'], 'campaign_status')}.",
            "error",
        )
    else:
        log.info("console: %s: campaign %s %s", g.user, campaign_id, action)
        flash(f"Кампания: {label(status, 'campaign_status')}.", "success")
    return redirect(url_for("console.campaign", campaign_id=campaign_id))


# --------------------------------------------------------------------------- the report


@bp.get("/campaigns/<int:campaign_id>/report")
@login_required("campaigns.read")
def campaign_report(campaign_id: int) -> Response | str:
    """The campaign report as a page."""
    services = current_services()
    view = _visible(services, campaign_id)
    if view is None:
        return _not_found()
    report = build_report(services, campaign_id)
    return render_template(
        "console/campaign_report.html", c=view, report=report, sections=report_sections(report)
    )


@bp.get("/campaigns/<int:campaign_id>/report.<any(csv, xlsx):kind>")
@login_required("campaigns.read")
def campaign_report_file(campaign_id: int, kind: str) -> Response:
    """The campaign report as CSV or XLSX."""
    services = current_services()
    view = _visible(services, campaign_id)
    if view is None:
        return _not_found()
    report = build_report(services, campaign_id)
    if kind == "csv":
        body, mimetype = report_csv(report), "text/csv; charset=utf-8"
    else:
        body = report_xlsx(report)
        mimetype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="campaign-{campaign_id}-report.{kind}"'
    )
    return response
