"""SMS webhooks: opt-out keywords, the inbound SMS in the contact log, delivery statuses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from contactcenter.config import Settings
from crm_store.consent import is_do_not_contact
from crm_store.db import Database
from crm_store.models import Interaction
from telephony.signing import sign
from webhooks import create_app, services_of


@pytest.fixture
def app(settings: Settings, db: Database, redis_client: Any) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    services_of(app).db.dispose()


def _post(client: FlaskClient, settings: Settings, path: str, params: dict[str, str]) -> Any:
    signature = sign(settings.webhook_auth_token, settings.public_base_url + path, params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def _inbound(body: str, sid: str = "SM" + "1" * 32, **extra: str) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": "+79161234599",
        "To": "+78001234567",
        "Body": body,
        **extra,
    }


def test_stop_in_russian_opts_out_and_is_logged(
    app: Flask, settings: Settings, db: Database
) -> None:
    client = app.test_client()
    response = _post(client, settings, "/sms/incoming", _inbound("  стоп "))
    assert response.status_code == 200
    assert "Вы отписаны" in response.get_data(as_text=True)
    # Twilio retries the same message: still one log entry.
    assert _post(client, settings, "/sms/incoming", _inbound("  стоп ")).status_code == 200
    with db.transaction() as session:
        assert is_do_not_contact(session, "+79161234599", "sms")
        rows = session.scalars(select(Interaction).where(Interaction.channel == "sms")).all()
        assert len(rows) == 1
        assert rows[0].direction == "inbound"
        assert rows[0].summary == "  стоп "
        assert rows[0].outcome == "opt_out"


def test_start_opts_back_in_and_plain_text_gets_no_reply(
    app: Flask, settings: Settings, db: Database
) -> None:
    client = app.test_client()
    _post(client, settings, "/sms/incoming", _inbound("СТОП", sid="SM" + "2" * 32))
    response = _post(client, settings, "/sms/incoming", _inbound("СТАРТ", sid="SM" + "3" * 32))
    assert "снова подписаны" in response.get_data(as_text=True)
    plain = _post(client, settings, "/sms/incoming", _inbound("спасибо", sid="SM" + "4" * 32))
    assert plain.status_code == 200
    assert "<Message>" not in plain.get_data(as_text=True)
    with db.transaction() as session:
        assert not is_do_not_contact(session, "+79161234599", "sms")
        count = session.scalar(select(func.count()).select_from(Interaction))
        assert count == 3


def test_twilio_opt_out_type_is_honoured(app: Flask, settings: Settings, db: Database) -> None:
    response = _post(
        app.test_client(), settings, "/sms/incoming", _inbound("Stop please", OptOutType="STOP")
    )
    assert response.status_code == 200
    with db.transaction() as session:
        assert is_do_not_contact(session, "+79161234599", "sms")


def test_unsigned_and_forged_sms_webhooks_are_refused(app: Flask, settings: Settings) -> None:
    client = app.test_client()
    assert client.post("/sms/incoming", data=_inbound("СТОП")).status_code == 403
    forged = client.post(
        "/sms/incoming", data=_inbound("СТОП"), headers={"X-Twilio-Signature": "Zm9yZ2Vk"}
    )
    assert forged.status_code == 403
    assert client.post("/sms/status", data={"MessageSid": "SMx"}).status_code == 403


def test_malformed_sms_webhooks_get_a_clear_400(app: Flask, settings: Settings) -> None:
    client = app.test_client()
    assert _post(client, settings, "/sms/incoming", {"Body": "x"}).status_code == 400
    assert _post(client, settings, "/sms/status", {"MessageSid": "SMx"}).status_code == 400


def test_ivr_sms_status_moves_forward_only(app: Flask, settings: Settings, db: Database) -> None:
    sid = "SM" + "9" * 32
    with db.transaction() as session:
        session.add(
            Interaction(channel="sms", direction="outbound", provider_sid=sid, phone="+79161234599")
        )
    client = app.test_client()
    for status in ("sent", "delivered", "sent", "queued", "undelivered"):
        response = _post(
            client, settings, "/sms/status", {"MessageSid": sid, "MessageStatus": status}
        )
        assert response.status_code == 204
    bad = _post(client, settings, "/sms/status", {"MessageSid": sid, "MessageStatus": "lost"})
    assert bad.status_code == 400
    with db.transaction() as session:
        row = session.scalars(select(Interaction).where(Interaction.provider_sid == sid)).one()
        assert row.status == "delivered"
        assert row.outcome == "delivered"
        assert row.ended_at is not None
        assert [h["status"] for h in row.data["status_history"]] == ["sent", "delivered"]


def test_unknown_message_status_for_a_foreign_sid_is_acknowledged(
    app: Flask, settings: Settings
) -> None:
    response = _post(
        app.test_client(),
        settings,
        "/sms/status",
        {"MessageSid": "SM" + "8" * 32, "MessageStatus": "delivered"},
    )
    assert response.status_code == 204


def test_campaign_api_is_mounted_and_needs_a_token(app: Flask) -> None:
    assert app.test_client().get("/api/campaigns").status_code == 401


@pytest.mark.parametrize("sender", ["ЭнергоСбыт", "anonymous", "garbage"])
def test_sms_from_a_non_phone_sender_is_logged_not_a_500(
    app: Flask, settings: Settings, db: Database, sender: str
) -> None:
    client = app.test_client()
    response = _post(client, settings, "/sms/incoming", _inbound("СТОП", From=sender))
    assert response.status_code == 200
    # No keyword action for a sender that cannot be messaged back.
    assert "<Message>" not in response.get_data(as_text=True)
    with db.transaction() as session:
        row = session.scalars(select(Interaction).where(Interaction.channel == "sms")).one()
        assert row.phone is None
        assert row.data == {"sender": sender}
        assert row.summary == "СТОП"
        assert row.outcome == "received"


def test_sms_body_is_stored_whole_up_to_1600_characters(
    app: Flask, settings: Settings, db: Database
) -> None:
    client = app.test_client()
    body = "Показания счётчика: " + "ж" * (1600 - 20)
    assert len(body) == 1600
    assert _post(client, settings, "/sms/incoming", _inbound(body)).status_code == 200
    too_long = _inbound(body + "!", sid="SM" + "5" * 32)
    assert _post(client, settings, "/sms/incoming", too_long).status_code == 413
    with db.transaction() as session:
        rows = session.scalars(select(Interaction).where(Interaction.channel == "sms")).all()
        assert [r.summary for r in rows] == [body]


def test_every_route_refuses_an_oversized_request_with_413(
    settings: Settings, db: Database, redis_client: Any
) -> None:
    app = create_app(settings.with_overrides(api_token="secret-token"))
    client = app.test_client()
    huge = {"MessageSid": "SM" + "6" * 32, "From": "+79161234599", "Body": "x" * 70_000}
    for path in ("/sms/incoming", "/sms/status", "/voice/incoming", "/voice/status"):
        response = client.post(path, data=huge)
        assert response.status_code == 413, path
    payload = '{"name": "' + "x" * 70_000 + '"}'
    response = client.post(
        "/api/campaigns",
        data=payload,
        content_type="application/json",
        headers={"Authorization": "Bearer secret-token"},
    )
    assert response.status_code == 413
    # A request within the limit is served as before.
    assert client.get("/healthz").status_code == 200
    services_of(app).db.dispose()
