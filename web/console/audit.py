"""The audit log page (permission ``audit.read``): who changed what, before → after.

Filters: actor (a part of the name, e.g. ``console:anna``), object (type and id), a period
of days (Moscow time); newest first, 50 rows a page, paged on the row id. A region-scoped
user sees only rows about their regions' data (:func:`crm_store.audit.search_audit`).
"""

from __future__ import annotations

import json
from typing import Any

from flask import render_template, request
from werkzeug.wrappers import Response

from crm_store.audit import search_audit
from web.common import current_services
from web.console import bp
from web.console.auth import DISPLAY_ZONE, current_scope, login_required
from web.console.forms import ENTITY_LABELS, parse_audit_filters

PAGE_SIZE = 50
ACTION_LABELS = {"insert": "создание", "update": "изменение", "delete": "удаление"}


@bp.app_template_filter("json_value")
def json_value(value: Any) -> str:
    """A stored audit value as text (JSON for lists and objects; ``—`` for none)."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


@bp.get("/audit")
@login_required("audit.read")
def audit() -> Response:
    """The filtered audit log, a page at a time."""
    query = parse_audit_filters(request.args.to_dict(flat=True), DISPLAY_ZONE)
    page = None
    if not query.errors:
        with current_services().db.transaction() as session:
            page = search_audit(
                session,
                current_scope(),
                query.filters,
                before_id=query.before_id,
                limit=PAGE_SIZE,
            )
    first_args: dict[str, Any] = {k: v for k, v in query.values.items() if v}
    next_args = None
    if page is not None and page.next_before is not None:
        next_args = first_args | {"before": page.next_before}
    body = render_template(
        "console/audit.html",
        query=query,
        page=page,
        first_args=first_args,
        next_args=next_args,
        entity_labels=ENTITY_LABELS,
        action_labels=ACTION_LABELS,
    )
    return Response(body, status=422 if query.errors else 200, mimetype="text/html")
