"""REST API for supervisors: ``/api/campaigns`` (Flask blueprint, bearer-token auth).

Authentication: ``Authorization: Bearer <token>``, checked against ``Settings.api_token``
(constant-time) or a user's API token (``crm_store.users.authenticate_token``); the user
must hold the ``admin`` or ``supervisor`` role. Errors are JSON ``{"error": …}`` (plus
``issues`` for an invalid definition), never an HTML traceback.

Routes::

    GET  /api/campaigns                      list
    POST /api/campaigns                      create from a JSON definition → 201 {"id": …}
    GET  /api/campaigns/<id>                 status (targets by state, attempts, ETA)
    GET  /api/campaigns/<id>/preview         audience count, sample, split by time zone
    POST /api/campaigns/<id>/launch          202: planning runs in a worker (RQ job); the
                                             answer gives the audience size, and a warning
                                             when it is 0
    POST /api/campaigns/<id>/pause|resume|cancel
    GET  /api/campaigns/<id>/report          the campaign report
"""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from campaigns import service
from campaigns.definition import flow_names_in, parse_definition
from campaigns.errors import CampaignError, CampaignNotFound, DefinitionError
from campaigns.report import build_report
from campaigns.sms import link_variables
from contactcenter.services import Services, current_services
from crm_store.users import authenticate_token

bp = Blueprint("campaigns_api", __name__, url_prefix="/api/campaigns")

ALLOWED_ROLES = frozenset({"admin", "supervisor"})


def _services() -> Services:
    services: Services | None = current_app.extensions.get("services")
    if services is None:
        services = current_services()
    return services


def _error(status: int, message: str, **extra: Any) -> Response:
    response = jsonify(error=message, **extra)
    response.status_code = status
    return response


@bp.before_request
def authenticate() -> Response | None:
    """The bearer-token check of the supervisors' API (see the module): None lets the request
    through (``g.api_user`` set), else the 401/403 answer. Other ``/api`` blueprints register
    it as their ``before_request`` too."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        response = _error(401, "missing bearer token")
        response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
        return response
    services = _services()
    configured = services.settings.api_token
    if configured and hmac.compare_digest(token.encode(), configured.encode()):
        g.api_user = "api-token"
        return None
    with services.db.transaction() as s:
        user = authenticate_token(s, token)
        roles = set(user.role_names) if user is not None else set()
        name = user.username if user is not None else None
    if name is None:
        response = _error(401, "invalid token")
        response.headers["WWW-Authenticate"] = 'Bearer realm="api", error="invalid_token"'
        return response
    if not roles & ALLOWED_ROLES:
        return _error(403, "a supervisor or admin role is required")
    g.api_user = name
    return None


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    if isinstance(exc, CampaignNotFound):
        return _error(404, str(exc))
    if isinstance(exc, CampaignError):
        return _error(409, str(exc))
    if isinstance(exc, HTTPException):
        return _error(exc.code or 500, exc.description or exc.name)
    current_app.logger.exception("campaign API failure")
    return _error(500, "internal error")


@bp.get("")
def list_view() -> Response:
    """The newest campaigns."""
    return jsonify(campaigns=service.list_campaigns(_services()))


@bp.post("")
def create_view() -> Response:
    """Create a draft campaign from a JSON definition."""
    payload = request.get_json(silent=True)
    if payload is None:
        return _error(400, "send the campaign definition as a JSON object")
    services = _services()
    try:
        definition = parse_definition(
            payload,
            flow_names=flow_names_in(services.settings.flows_file),
            link_variables=link_variables(services.settings),
        )
    except DefinitionError as exc:
        return _error(422, "invalid campaign definition", issues=exc.as_dicts())
    campaign_id = service.create_campaign(services, definition, created_by=str(g.api_user))
    response = jsonify(id=campaign_id, status="draft")
    response.status_code = 201
    response.headers["Location"] = f"/api/campaigns/{campaign_id}"
    return response


@bp.get("/<int:campaign_id>")
def status_view(campaign_id: int) -> Response:
    """Progress of a campaign."""
    return jsonify(service.status(_services(), campaign_id).as_dict())


@bp.get("/<int:campaign_id>/preview")
def preview_view(campaign_id: int) -> Response:
    """Audience preview."""
    sample = request.args.get("sample", "10")
    if not sample.isdigit() or int(sample) > 100:
        return _error(400, "sample must be an integer from 0 to 100")
    services = _services()
    shown = service.preview(services, campaign_id, sample_size=int(sample))
    today = service.today(services)
    return jsonify(
        count=shown.count,
        without_phone=shown.without_phone,
        by_timezone=shown.by_timezone,
        sample=[
            {
                "account": r.account_number,
                "timezone": r.timezone,
                "debt": str(r.debt),
                "days_overdue": r.days_overdue(r.oldest_unpaid_due or today),
            }
            for r in shown.sample
        ],
    )


@bp.post("/<int:campaign_id>/<any(launch, pause, resume, cancel):action>")
def action_view(campaign_id: int, action: str) -> Response:
    """Launch, pause, resume or cancel."""
    services = _services()
    if action == "launch":
        audience = service.preview(services, campaign_id, sample_size=0).count
        job_id = service.enqueue_launch(services, campaign_id)
        body: dict[str, Any] = {
            "id": campaign_id,
            "status": "launching",
            "job_id": job_id,
            "audience": audience,
        }
        if audience == 0:
            body["warning"] = "0 targets: the audience selects no account, nothing will be sent"
        response = jsonify(body)
        response.status_code = 202
        response.headers["Location"] = f"/api/campaigns/{campaign_id}"
        return response
    new_status = getattr(service, action)(services, campaign_id)
    return jsonify(id=campaign_id, status=new_status)


@bp.get("/<int:campaign_id>/report")
def report_view(campaign_id: int) -> Response:
    """The campaign report."""
    return jsonify(build_report(_services(), campaign_id).as_dict())
