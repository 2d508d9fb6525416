"""The operator desk (``consumers.write``): the calls the IVR handed to people in the
user's regions (newest first, with the context it gathered: account, reason, last step, the
values collected), refreshed every :data:`HANDOFFS_S` seconds; a consumer picked from a
handoff or a search, shown with the 360 view; a note and an outcome from a fixed list that
become an interaction of the consumer (:func:`crm_store.console_consumers.record_operator_note`,
audited).
"""

from __future__ import annotations

import logging

from flask import flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from crm_store.console_consumers import (
    MAX_NOTE_LENGTH,
    OPERATOR_OUTCOMES,
    TransferredCall,
    record_operator_note,
    transferred_calls,
    visible_call,
)
from crm_store.errors import InvalidInput, NotFound
from crm_store.models import CONSENT_PURPOSES, DNC_CHANNELS
from web.common import current_services
from web.console import bp
from web.console.auth import console_actor, current_scope, error_page, login_required
from web.console.consumers import consumer_not_found, load_360, load_timeline, search_results

log = logging.getLogger(__name__)

#: Seconds between refreshes of the handoff list.
HANDOFFS_S = 5


def _handoffs() -> list[TransferredCall]:
    services = current_services()
    with services.db.session() as s:
        rows = transferred_calls(s, current_scope(), services.clock())
        s.expunge_all()
        return rows


@bp.get("/desk", endpoint="desk")
@login_required("consumers.write")
def desk_page() -> str:
    """Transferred calls and the consumer search."""
    q = (request.args.get("q") or "").strip()[:200]
    page, error = search_results(q, request.args.get("after") or None)
    return render_template(
        "console/desk.html",
        handoffs=_handoffs(),
        handoffs_s=HANDOFFS_S,
        q=q,
        page=page,
        error=error,
    )


@bp.get("/desk/handoffs")
@login_required("consumers.write")
def desk_handoffs() -> str:
    """The transferred calls (htmx fragment, polled)."""
    return render_template("console/_handoffs.html", handoffs=_handoffs(), handoffs_s=HANDOFFS_S)


def _call_param() -> int | None:
    raw = request.values.get("call") or ""
    return int(raw) if raw.isascii() and raw.isdigit() else None


def _render_desk_consumer(
    consumer_id: int, *, errors: dict[str, str] | None = None, status: int = 200
) -> Response:
    view = load_360(consumer_id)
    if view is None:
        return consumer_not_found()
    call_id = _call_param()
    handoff = None
    if call_id is not None:
        services = current_services()
        with services.db.session() as s:
            try:
                call = visible_call(s, current_scope(), call_id)
            except NotFound:
                return error_page(404, "Такого звонка нет или он вне ваших регионов.")
            context = (call.data or {}).get("handoff")
            handoff = {
                "id": call.id,
                "started_at": call.started_at,
                "phone": call.phone,
                "status": call.status,
                "context": dict(context) if isinstance(context, dict) else {},
            }
    body = render_template(
        "console/desk_consumer.html",
        view=view,
        timeline=load_timeline(consumer_id, None, None),
        channel=None,
        handoff=handoff,
        call_id=call_id,
        outcomes=OPERATOR_OUTCOMES,
        max_note=MAX_NOTE_LENGTH,
        errors=errors or {},
        values=request.form if request.method == "POST" else {},
        purposes=CONSENT_PURPOSES,
        dnc_channels=DNC_CHANNELS,
    )
    return Response(body, status=status, mimetype="text/html")


@bp.get("/desk/consumers/<int:consumer_id>")
@login_required("consumers.write")
def desk_consumer(consumer_id: int) -> Response:
    """A consumer on the desk: the handoff context (``?call=``), the 360 view, the note form."""
    return _render_desk_consumer(consumer_id)


@bp.post("/desk/consumers/<int:consumer_id>/note")
@login_required("consumers.write")
def desk_note(consumer_id: int) -> Response:
    """Record the operator's note and outcome as an interaction (422 with the errors)."""
    services = current_services()
    outcome = request.form.get("outcome") or ""
    note = request.form.get("note") or ""
    errors: dict[str, str] = {}
    if outcome not in OPERATOR_OUTCOMES:
        errors["outcome"] = "Выберите итог из списка."
    if len(note.strip()) > MAX_NOTE_LENGTH:
        errors["note"] = f"Заметка длиннее {MAX_NOTE_LENGTH} символов."
    if not errors:
        try:
            with services.db.transaction() as s:
                row = record_operator_note(
                    s,
                    current_scope(),
                    actor=console_actor(),
                    operator=g.user,
                    consumer_id=consumer_id,
                    outcome=outcome,
                    note=note,
                    account_number=request.form.get("account") or None,
                    call_id=_call_param(),
                    now=services.clock(),
                )
                note_id = row.id
        except NotFound:
            return error_page(404, "Такого потребителя или звонка нет, или он вне ваших регионов.")
        except InvalidInput as exc:
            errors["account" if "счёт" in str(exc) else "note"] = f"{exc}."
    if errors:
        return _render_desk_consumer(consumer_id, errors=errors, status=422)
    log.info("console: operator %s recorded note %s", g.user, note_id)
    flash("Заметка и итог записаны в историю контактов.", "success")
    return redirect(url_for("console.desk_consumer", consumer_id=consumer_id, call=_call_param()))
