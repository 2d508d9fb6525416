"""REST API for outages: ``/api/outages`` (the bearer-token auth of :mod:`web.api`).

A grid company's or billing system's feed posts planned and emergency outages here; the
hotline announces them to callers from the addresses they cover (:mod:`crm_store.outages`).

Routes::

    POST /api/outages            one outage (a JSON object), several (a list, or
                                 {"outages": [...]}), fields of crm_store.outages.OUTAGE_FIELDS;
                                 all or nothing: 400 {"error", "errors": [{"index", "field",
                                 "reason"}]} stores none; else 201 when one was created, 200
                                 when all were known (updated or unchanged), with
                                 {"outages": [{"index", "id", "external_id", "result"}]}
    GET  /api/outages?active=1   outages in effect now (without active=1: the newest 200)
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from crm_store.errors import InvalidOutage
from crm_store.outages import (
    OutageInput,
    list_outages,
    outage_as_dict,
    parse_outage,
    upsert_outage,
)
from web.api import authenticate
from web.common import current_services

bp = Blueprint("outages_api", __name__, url_prefix="/api/outages")
bp.before_request(authenticate)

#: The most outages one request may carry.
MAX_ITEMS = 500


def _error(status: int, message: str, **extra: Any) -> Response:
    response = jsonify(error=message, **extra)
    response.status_code = status
    return response


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return _error(exc.code or 500, exc.description or exc.name)
    current_app.logger.exception("outages API failure")
    return _error(500, "internal error")


def _items(payload: Any) -> list[Any] | None:
    if isinstance(payload, dict) and set(payload) == {"outages"}:
        payload = payload["outages"]
    if isinstance(payload, dict):
        return [payload]
    if isinstance(payload, list):
        return payload
    return None


def _checked(items: list[Any]) -> tuple[list[OutageInput], list[dict[str, Any]]]:
    outages: list[OutageInput] = []
    errors: list[dict[str, Any]] = []
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append({"index": index, "field": "*", "reason": "ожидается объект JSON"})
            continue
        try:
            outage = parse_outage(item)
        except InvalidOutage as exc:
            errors.extend(
                {"index": index, "field": field, "reason": reason} for field, reason in exc.problems
            )
            continue
        if outage.external_id in first:
            reason = f"то же отключение, что в элементе {first[outage.external_id]}"
            errors.append({"index": index, "field": "external_id", "reason": reason})
            continue
        first[outage.external_id] = index
        outages.append(outage)
    return outages, errors


@bp.post("")
def post_view() -> Response:
    """Create or update outages (all or nothing)."""
    items = _items(request.get_json(silent=True))
    if items is None:
        return _error(400, "send an outage as a JSON object, or a list of them")
    if not items:
        return _error(400, "no outages in the request")
    if len(items) > MAX_ITEMS:
        return _error(400, f"at most {MAX_ITEMS} outages per request, got {len(items)}")
    outages, errors = _checked(items)
    if errors:
        return _error(400, "invalid outages", errors=errors)
    results: list[dict[str, Any]] = []
    with current_services().db.transaction() as s:
        for index, outage in enumerate(outages):
            row, result = upsert_outage(s, outage, source="api")
            results.append(
                {"index": index, "id": row.id, "external_id": row.external_id, "result": result}
            )
    response = jsonify(outages=results)
    response.status_code = 201 if any(r["result"] == "created" for r in results) else 200
    return response


@bp.get("")
def list_view() -> Response:
    """Outages in effect now (``active=1``), else the newest."""
    active = request.args.get("active", "0")
    if active not in ("0", "1"):
        return _error(400, "active must be 0 or 1")
    services = current_services()
    with services.db.transaction() as s:
        rows = list_outages(s, active_at=services.clock() if active == "1" else None)
        return jsonify(outages=[outage_as_dict(o) for o in rows])
