"""Consumer 360 (``consumers.read``): search, and a consumer's page — the timeline of every
interaction (calls with their IVR path, transcripts and playable recordings, SMS, operators'
notes), readings per meter and zone, balance, charges and payments, campaigns, cases,
consents and do-not-contact entries (``contacts.read``; changed by ``contacts.write``, with
a reason, audited).

Everything goes through :mod:`crm_store.console_consumers` within the user's scope: a
consumer of another region is 404 (page, timeline, export, recording), and absent from the
search. Recordings stream from our stored copy (:func:`ivr.recordings.read_recording`)
through ``/console/recordings/<sid>``, the ``src`` of the page's ``<audio>`` elements.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from typing import Any

from flask import flash, redirect, render_template, request, send_file, url_for
from werkzeug.wrappers import Response

from crm_store.console_consumers import (
    Consumer360,
    consumer_360,
    consumer_contacts,
    timeline,
    visible_recording,
)
from crm_store.consumer_queries import search_consumers
from crm_store.contact_lists import add_dnc, grant, remove_dnc, withdraw
from crm_store.errors import InvalidInput, NotFound
from crm_store.models import CONSENT_PURPOSES, DNC_CHANNELS
from ivr.errors import RecordingNotStored
from ivr.recordings import read_recording
from web.common import current_services
from web.console import bp
from web.console.auth import DISPLAY_ZONE, console_actor, current_scope, error_page, login_required
from web.console.labels import label

log = logging.getLogger(__name__)

SEARCH_PAGE = 30
TIMELINE_PAGE = 20
#: The most interactions a timeline export holds.
EXPORT_LIMIT = 10_000


def consumer_not_found() -> Response:
    """The 404 of a consumer that does not exist or is outside the user's regions."""
    return error_page(404, "Такого потребителя нет или он вне ваших регионов.")


def search_results(q: str, cursor: str | None) -> tuple[Any, str | None]:
    """The search page's results (None when nothing was asked) and an error message."""
    if not q.strip():
        return None, None
    services = current_services()
    try:
        with services.db.session() as s:
            page = search_consumers(s, current_scope(), q, limit=SEARCH_PAGE, cursor=cursor)
            return page, None
    except InvalidInput:
        return (
            None,
            "Введите номер счёта, телефон, код для голосового меню или не меньше двух букв имени.",
        )


@bp.get("/consumers", endpoint="consumers")
@login_required("consumers.read")
def consumers_search() -> str:
    """Search by account number, phone, IVR code or part of the name."""
    q = (request.args.get("q") or "").strip()[:200]
    page, error = search_results(q, request.args.get("after") or None)
    return render_template("console/consumers.html", q=q, page=page, error=error)


def load_360(consumer_id: int) -> Consumer360 | None:
    """The 360 data of a visible consumer (None: absent or invisible)."""
    services = current_services()
    today = services.clock().astimezone(DISPLAY_ZONE).date()
    with services.db.session() as s:
        try:
            view = consumer_360(s, current_scope(), consumer_id, today)
        except NotFound:
            return None
        s.expunge_all()
        return view


def load_timeline(consumer_id: int, channel: str | None, cursor: str | None) -> Any:
    """A timeline page (NotFound / InvalidInput raise)."""
    services = current_services()
    with services.db.session() as s:
        page = timeline(
            s, current_scope(), consumer_id, channel=channel, limit=TIMELINE_PAGE, cursor=cursor
        )
        s.expunge_all()
        return page


@bp.get("/consumers/<int:consumer_id>", endpoint="consumer")
@login_required("consumers.read")
def consumer_page(consumer_id: int) -> Response | str:
    """A consumer's 360 page."""
    view = load_360(consumer_id)
    if view is None:
        return consumer_not_found()
    page = load_timeline(consumer_id, None, None)
    return render_template(
        "console/consumer.html",
        view=view,
        timeline=page,
        channel=None,
        purposes=CONSENT_PURPOSES,
        dnc_channels=DNC_CHANNELS,
    )


@bp.get("/consumers/<int:consumer_id>/timeline")
@login_required("consumers.read")
def consumer_timeline(consumer_id: int) -> Response | str:
    """More of the timeline (htmx fragment: ``after`` a cursor, ``channel`` filter)."""
    channel = request.args.get("channel") or None
    try:
        page = load_timeline(consumer_id, channel, request.args.get("after") or None)
    except NotFound:
        return consumer_not_found()
    except InvalidInput:
        return error_page(400, "Неверный фильтр или ссылка на страницу.")
    return render_template(
        "console/_timeline.html", consumer_id=consumer_id, timeline=page, channel=channel
    )


def _export_rows(consumer_id: int) -> Iterator[list[str]]:
    yield [
        "Время (МСК)",
        "Канал",
        "Направление",
        "Статус",
        "Итог",
        "Лицевой счёт",
        "Телефон",
        "Оператор",
        "Кампания",
        "Содержание",
    ]
    cursor: str | None = None
    sent = 0
    while sent < EXPORT_LIMIT:
        page = load_timeline(consumer_id, None, cursor)
        for item in page.items:
            row = item.interaction
            yield [
                row.started_at.astimezone(DISPLAY_ZONE).strftime("%d.%m.%Y %H:%M:%S"),
                label(row.channel, "channel"),
                label(row.direction, "direction"),
                label(row.status, "call_status"),
                label(row.outcome, "outcome") if row.outcome else "",
                item.account_number or "",
                row.phone or "",
                _cell(row.operator or ""),
                _cell(item.campaign_name or ""),  # free text a supervisor typed
                _cell(row.summary or ""),
            ]
        sent += len(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break


def _cell(text: str) -> str:
    """Text a spreadsheet would run as a formula gets a leading ``'``."""
    return "'" + text if text.startswith(("=", "+", "-", "@", "\t", "\r")) else text


@bp.get("/consumers/<int:consumer_id>/timeline.csv")
@login_required("consumers.read")
def consumer_timeline_csv(consumer_id: int) -> Response:
    """The consumer's interactions as CSV (UTF-8 with a BOM), newest first."""
    if load_360(consumer_id) is None:
        return consumer_not_found()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in _export_rows(consumer_id):
        writer.writerow(row)
    response = Response(("\ufeff" + out.getvalue()).encode("utf-8"), mimetype="text/csv")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="consumer-{consumer_id}-interactions.csv"'
    )
    return response


@bp.get("/recordings/<sid>", endpoint="recording")
@login_required("consumers.read")
def recording_audio(sid: str) -> Response:
    """Our stored copy of a call recording the user may hear (WAV, range requests)."""
    services = current_services()
    with services.db.session() as s:
        try:
            visible_recording(s, current_scope(), sid)
        except NotFound:
            return error_page(404, "Такой записи нет или она вне ваших регионов.")
    try:
        data = read_recording(services, sid)
    except RecordingNotStored:
        return error_page(404, "Запись ещё не загружена или уже удалена по сроку хранения.")
    response = send_file(
        io.BytesIO(data),
        mimetype="audio/wav",
        conditional=True,
        download_name=f"{sid}.wav",
        max_age=0,
    )
    response.headers["Cache-Control"] = "private, no-store"
    return response


# ---------------------------------------------------------------------------- contacts


def _contact_change(consumer_id: int) -> tuple[str, str] | Response:
    """The contact value and reason of a contacts form, checked: the consumer is visible and
    the value is one of their contacts, a reason is given."""
    services = current_services()
    value = (request.form.get("value") or "").strip()
    reason = (request.form.get("reason") or "").strip()
    with services.db.session() as s:
        try:
            contacts = consumer_contacts(s, current_scope(), consumer_id)
        except NotFound:
            return consumer_not_found()
    if value not in contacts.values:
        return error_page(400, "Это не телефон и не e-mail этого потребителя.")
    if not reason:
        flash("Укажите причину изменения: она попадёт в журнал аудита.", "error")
        return redirect(url_for("console.consumer", consumer_id=consumer_id) + "#contacts")
    return value, reason[:500]


@bp.post("/consumers/<int:consumer_id>/dnc")
@login_required("contacts.write")
def consumer_dnc(consumer_id: int) -> Response:
    """Add a phone of the consumer to the do-not-contact list, or take it off."""
    checked = _contact_change(consumer_id)
    if isinstance(checked, Response):
        return checked
    phone, reason = checked
    channel = request.form.get("channel") or "any"
    remove = request.form.get("op") == "remove"
    if channel not in DNC_CHANNELS:
        return error_page(400, "Неизвестный канал.")
    services = current_services()
    try:
        with services.db.transaction() as s:
            if remove:
                removed = remove_dnc(
                    s, phone, channel=channel, reason=reason, actor=console_actor()
                )
                message = "Запрет снят." if removed else "Такого запрета не было."
            else:
                _, added = add_dnc(s, phone, channel=channel, reason=reason, actor=console_actor())
                message = "Номер внесён в список запрета." if added else "Запрет уже был."
    except InvalidInput as exc:
        flash(f"Не изменено: {exc}", "error")
    else:
        log.info(
            "console: do-not-contact %s by %s", "removed" if remove else "added", console_actor()
        )
        flash(message, "success")
    return redirect(url_for("console.consumer", consumer_id=consumer_id) + "#contacts")


@bp.post("/consumers/<int:consumer_id>/consent")
@login_required("contacts.write")
def consumer_consent(consumer_id: int) -> Response:
    """Record or withdraw a consent of one of the consumer's contacts."""
    checked = _contact_change(consumer_id)
    if isinstance(checked, Response):
        return checked
    value, reason = checked
    purpose = request.form.get("purpose") or ""
    if purpose not in CONSENT_PURPOSES:
        return error_page(400, "Неизвестная цель согласия.")
    withdrawing = request.form.get("op") == "withdraw"
    services = current_services()
    try:
        with services.db.transaction() as s:
            change = withdraw if withdrawing else grant
            _, changed = change(s, value, purpose=purpose, reason=reason, actor=console_actor())
    except InvalidInput as exc:
        flash(f"Не изменено: {exc}", "error")
    else:
        if withdrawing:
            flash("Согласие отозвано." if changed else "Согласия и так не было.", "success")
        else:
            flash("Согласие записано." if changed else "Согласие уже действует.", "success")
    return redirect(url_for("console.consumer", consumer_id=consumer_id) + "#contacts")
