"""The voice webhooks through the Flask test client, signed as Twilio signs them.

``TwilioCall`` below is the small driver the hotline tests use too: it posts signed form
webhooks, parses the TwiML answer and follows its action URLs.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from contactcenter.config import ConfigError, Settings
from contactcenter.services import Services
from crm_store.db import Database
from crm_store.models import (
    Account,
    AccountPhone,
    Consumer,
    Interaction,
    InteractionStep,
    PhoneNumber,
)
from ivr.crm import flush_call_records
from ivr.errors import WebhookError
from ivr.status import handle_status
from telephony.signing import sign
from telephony.status import StatusKind, parse_status_callback
from webhooks import create_app, services_of

SMALL_FLOWS = """\
version: 1
flows:
  hotline:
    start: greet
    steps:
      greet:
        type: say
        prompts: "Здравствуйте."
        next: menu
      menu:
        type: menu
        input: dtmf
        prompts: "Нажмите 1, чтобы найти счёт."
        options:
          - {key: "1", goto: ask}
      ask:
        type: collect
        value: account_number
        into: typed
        prompts: "Введите номер счёта и решётку."
        next: find
      find:
        type: action
        name: find_account
        args: {number: "{typed}"}
        branches: {found: found, not_found: bye}
      found:
        type: say
        prompts: "Адрес: {address}."
        next: bye
      bye:
        type: hangup
        prompts: "До свидания."
  operator:
    start: transfer
    steps:
      transfer:
        type: transfer
        prompts: "Соединяю с оператором."
"""


@dataclass
class Answer:
    """One TwiML answer, parsed."""

    status: int
    xml: str
    step: str | None
    heard: list[str] = field(default_factory=list)
    verbs: list[ET.Element] = field(default_factory=list)
    visited: list[str] = field(default_factory=list)
    recognized: str | None = None

    def first(self, tag: str) -> ET.Element | None:
        """The first verb (or nested verb) with ``tag``."""
        for verb in self.verbs:
            if verb.tag == tag:
                return verb
        return None

    @property
    def ended(self) -> bool:
        return any(v.tag in ("Hangup", "Enqueue", "Dial") for v in self.verbs)


def parse_answer(status: int, body: str, step: str | None) -> Answer:
    answer = Answer(status, body, step)
    if status != 200:
        return answer
    root = ET.fromstring(body)  # noqa: S314 - TwiML our own app produced in this test
    assert root.tag == "Response"
    for verb in root:
        answer.verbs.append(verb)
        if verb.tag == "Say":
            answer.heard.append(verb.text or "")
        for child in verb:
            if child.tag == "Say":
                answer.heard.append(child.text or "")
    return answer


class TwilioCall:
    """Drives one call as Twilio would: signed webhooks, following the TwiML's action URLs."""

    def __init__(
        self,
        client: FlaskClient,
        settings: Settings,
        *,
        caller: str = "+79161234567",
        to: str = "+78001234567",
        call_sid: str | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.caller = caller
        self.to = to
        self.call_sid = call_sid or "CA" + uuid.uuid4().hex
        self.answers: list[Answer] = []
        self.steps: list[str] = []
        #: Twilio's ``Direction`` (``outbound-api`` for a call we placed).
        self.direction = "inbound"

    @property
    def last(self) -> Answer:
        return self.answers[-1]

    @property
    def heard(self) -> list[str]:
        return [text for answer in self.answers for text in answer.heard]

    def base_params(self) -> dict[str, str]:
        return {
            "AccountSid": "AC" + "0" * 32,
            "CallSid": self.call_sid,
            "From": self.caller,
            "To": self.to,
            "CallStatus": "in-progress",
            "Direction": self.direction,
            "ApiVersion": "2010-04-01",
        }

    def post(self, url: str, params: dict[str, str], *, signed: bool = True) -> Answer:
        """POST ``params`` to ``url`` (absolute or a path), signed for the public URL."""
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        public = self.settings.public_base_url + path
        headers = {}
        if signed:
            headers["X-Twilio-Signature"] = sign(self.settings.webhook_auth_token, public, params)
        response = self.client.post(path, data=params, headers=headers)
        steps = [unquote(s) for s in response.headers.get("X-IVR-Step", "").split(",") if s]
        answer = parse_answer(
            response.status_code, response.get_data(as_text=True), steps[-1] if steps else None
        )
        answer.visited = steps
        recognized = response.headers.get("X-IVR-Recognized")
        answer.recognized = unquote(recognized.partition(";")[0]) if recognized else None
        if answer.step:
            self.steps.append(answer.step)
        self.answers.append(answer)
        return answer

    def flush_crm(self) -> None:
        """Write the call's queued step records to the CRM now (the worker's sweep writes
        them about a second after each step, the status callback at the end)."""
        flush_call_records(self.client.application.extensions["services"], self.call_sid)

    def start(self) -> Answer:
        """The call rings our number: ``POST /voice/incoming``."""
        return self.post("/voice/incoming", self.base_params())

    def _action(self, tag: str) -> str:
        verb = self.last.first(tag)
        assert verb is not None, f"no <{tag}> in {self.last.xml}"
        action = verb.get("action")
        assert action, f"<{tag}> without action: {self.last.xml}"
        return action

    def press(self, digits: str) -> Answer:
        """Key presses for the pending ``<Gather>``."""
        return self.post(self._action("Gather"), {**self.base_params(), "Digits": digits})

    def silence(self) -> Answer:
        """No input: Twilio posts the Gather action with empty Digits (actionOnEmptyResult)."""
        return self.post(self._action("Gather"), {**self.base_params(), "Digits": ""})

    def speak(self, text: str, confidence: float = 0.9) -> Answer:
        """Speech recognised by Twilio for the pending ``<Gather>``."""
        params = {**self.base_params(), "SpeechResult": text, "Confidence": str(confidence)}
        return self.post(self._action("Gather"), params)

    def record(self, url: str = "https://api.twilio.com/rec/RE1", duration: int = 7) -> Answer:
        """The caller finished a ``<Record>``."""
        params = {
            **self.base_params(),
            "RecordingUrl": url,
            "RecordingSid": "RE" + "1" * 32,
            "RecordingDuration": str(duration),
        }
        return self.post(self._action("Record"), params)

    def transfer_ended(self, tag: str, status: str) -> Answer:
        """A ``<Dial>`` or ``<Enqueue>`` returned."""
        name = "DialCallStatus" if tag == "Dial" else "QueueResult"
        return self.post(self._action(tag), {**self.base_params(), name: status})

    def status(self, status: str, seq: int, *, duration: int | None = None) -> int:
        """A status callback; returns the HTTP status."""
        params = {
            **self.base_params(),
            "CallStatus": status,
            "SequenceNumber": str(seq),
            "Timestamp": f"Fri, 20 Nov 2026 09:0{min(seq, 9)}:00 +0000",
        }
        if duration is not None:
            params["CallDuration"] = str(duration)
        url = self.settings.public_base_url + "/voice/status"
        response = self.client.post(
            "/voice/status",
            data=params,
            headers={"X-Twilio-Signature": sign(self.settings.webhook_auth_token, url, params)},
        )
        return response.status_code


def write_flows(tmp_path: Path, text: str) -> str:
    path = tmp_path / "flows.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture
def small_app(
    settings: Settings, db: Database, redis_client: Any, tmp_path: Path
) -> Iterator[Flask]:
    app = create_app(settings.with_overrides(flows_file=write_flows(tmp_path, SMALL_FLOWS)))
    yield app
    services_of(app).db.dispose()


def add_account(db: Database, number: str = "7700112233", *, phones: tuple[str, ...] = ()) -> int:
    with db.transaction() as s:
        consumer = Consumer(full_name="Иванов Иван Иванович", email="ivanov@example.ru")
        s.add(consumer)
        s.flush()
        account = Account(
            consumer_id=consumer.id,
            number_raw=number,
            number=number,
            service_address="улица Ленина, дом пять",
            timezone="Europe/Moscow",
        )
        s.add(account)
        s.flush()
        for phone in phones:
            row = PhoneNumber(e164=phone, source="import", verified=True)
            s.add(row)
            s.flush()
            s.add(AccountPhone(account_id=account.id, phone_id=row.id))
        return int(account.id)


def interaction_of(db: Database, call_sid: str) -> Interaction:
    with db.transaction() as s:
        row = s.scalars(select(Interaction).where(Interaction.provider_sid == call_sid)).one()
        s.expunge(row)
        return row


def path_of(db: Database, interaction_id: int) -> list[tuple[str, str, str | None, str | None]]:
    with db.transaction() as s:
        rows = s.scalars(
            select(InteractionStep)
            .where(InteractionStep.interaction_id == interaction_id)
            .order_by(InteractionStep.seq)
        ).all()
        return [(r.step, r.event, r.input, r.outcome) for r in rows]


# --------------------------------------------------------------------------- tests


def test_healthz_needs_no_signature(small_app: Flask) -> None:
    response = small_app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_signed_incoming_starts_the_flow(
    small_app: Flask, settings: Settings, db: Database
) -> None:
    call = TwilioCall(small_app.test_client(), settings)
    answer = call.start()
    assert answer.status == 200
    assert answer.heard == ["Здравствуйте.", "Нажмите 1, чтобы найти счёт."]
    gather = answer.first("Gather")
    assert gather is not None
    assert gather.get("actionOnEmptyResult") == "true"
    assert gather.get("action", "").startswith("http://localhost/voice/step?")
    assert answer.step == "hotline:menu"
    assert answer.visited == ["hotline:greet", "hotline:menu"]
    interaction = interaction_of(db, call.call_sid)
    assert interaction.phone == "+79161234567"
    assert interaction.channel == "voice"
    assert interaction.direction == "inbound"


@pytest.mark.parametrize("signature", [None, "forged", "WRONGWRONGWRONGWRONGWRONGWR="])
@pytest.mark.parametrize(
    "path", ["/voice/incoming", "/voice/step?seq=1", "/voice/status", "/voice/fallback"]
)
def test_unsigned_or_forged_requests_get_403(
    small_app: Flask, settings: Settings, path: str, signature: str | None, caplog: Any
) -> None:
    client = small_app.test_client()
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    response = client.post(
        path,
        data={"CallSid": "CAx", "From": "+79161234567", "CallStatus": "ringing"},
        headers=headers,
    )
    assert response.status_code == 403
    assert "rejected" in caplog.text
    assert "+79161234567" not in caplog.text
    assert "+7916***4567" in caplog.text


def test_signature_over_another_url_or_params_is_refused(
    small_app: Flask, settings: Settings
) -> None:
    client = small_app.test_client()
    params = {"CallSid": "CAx", "From": "+79161234567"}
    wrong_host = sign(settings.webhook_auth_token, "https://evil.example/voice/incoming", params)
    assert (
        client.post(
            "/voice/incoming", data=params, headers={"X-Twilio-Signature": wrong_host}
        ).status_code
        == 403
    )
    good = sign(settings.webhook_auth_token, "http://localhost/voice/incoming", params)
    tampered = {**params, "From": "+79990000000"}
    assert (
        client.post(
            "/voice/incoming", data=tampered, headers={"X-Twilio-Signature": good}
        ).status_code
        == 403
    )


def test_typed_account_is_found_and_path_recorded(
    small_app: Flask, settings: Settings, db: Database
) -> None:
    add_account(db, "7700112233")
    call = TwilioCall(small_app.test_client(), settings)
    call.start()
    call.press("1")
    answer = call.press("7700112233")
    assert answer.heard == ["Адрес: улица Ленина, дом пять.", "До свидания."]
    assert answer.first("Hangup") is not None
    call.flush_crm()
    interaction = interaction_of(db, call.call_sid)
    assert interaction.account_id is not None
    assert interaction.outcome == "completed_in_ivr"
    path = path_of(db, interaction.id)
    assert [p[0] for p in path if p[1] == "enter"] == [
        "hotline:greet",
        "hotline:menu",
        "hotline:ask",
        "hotline:find",
        "hotline:found",
        "hotline:bye",
    ]
    assert ("hotline:ask", "input", "7700112233", "accepted") in path
    assert ("hotline:find", "action", None, "found") in path


def test_duplicated_webhook_is_applied_once(
    small_app: Flask, settings: Settings, db: Database
) -> None:
    call = TwilioCall(small_app.test_client(), settings)
    call.start()
    first = call.press("1")
    gather_url = call.answers[-2].first("Gather")
    assert gather_url is not None
    # Twilio retries the same request (same URL, same params): the same answer, no new steps.
    again = call.post(gather_url.get("action", ""), {**call.base_params(), "Digits": "1"})
    assert again.xml == first.xml
    call.flush_crm()
    interaction = interaction_of(db, call.call_sid)
    steps = path_of(db, interaction.id)
    assert [s for s in steps if s[1] == "input"] == [("hotline:menu", "input", "1", "ask")]
    # A duplicated start replays the greeting and does not restart the call.
    replay = call.start()
    assert replay.heard == first.heard or replay.xml == call.answers[0].xml


def test_unknown_call_on_step_url_gets_operator_not_500(
    small_app: Flask, settings: Settings
) -> None:
    call = TwilioCall(small_app.test_client(), settings)
    answer = call.post("/voice/step?flow=hotline&step=menu&seq=1&ev=gather", call.base_params())
    assert answer.status == 200
    assert answer.first("Enqueue") is not None


def test_missing_callsid_is_a_clear_400(small_app: Flask, settings: Settings) -> None:
    call = TwilioCall(small_app.test_client(), settings)
    answer = call.post("/voice/incoming", {"From": "+79161234567"})
    assert answer.status == 400
    assert "CallSid" in answer.xml


def test_no_input_escalates_to_operator_with_context(small_app: Flask, settings: Settings) -> None:
    call = TwilioCall(small_app.test_client(), settings)
    call.start()
    call.silence()
    call.silence()
    answer = call.silence()
    enqueue = answer.first("Enqueue")
    assert enqueue is not None
    assert (enqueue.text or "").strip() == "operators"
    task = enqueue.find("Task")
    assert task is not None
    assert '"hotline:menu"' in (task.text or "")
    assert answer.step == "operator:transfer"


def test_fallback_apologises_and_transfers(small_app: Flask, settings: Settings) -> None:
    call = TwilioCall(small_app.test_client(), settings)
    answer = call.post(
        "/voice/fallback",
        {**call.base_params(), "ErrorCode": "11205", "ErrorUrl": "http://localhost/voice/step"},
    )
    assert answer.status == 200
    assert answer.heard == ["Извините, произошла техническая ошибка. Соединяю с оператором."]
    assert answer.first("Enqueue") is not None


def test_status_callbacks_duplicated_and_out_of_order(
    small_app: Flask, settings: Settings, db: Database
) -> None:
    call = TwilioCall(small_app.test_client(), settings)
    call.start()
    assert call.status("completed", 3, duration=42) == 204
    assert call.status("ringing", 1) == 204  # late and older: ignored
    assert call.status("in-progress", 2) == 204  # late: never overwrites a terminal status
    assert call.status("completed", 3, duration=42) == 204  # duplicate
    interaction = interaction_of(db, call.call_sid)
    assert interaction.status == "completed"
    assert interaction.ended_at is not None
    assert interaction.ended_at.tzinfo is not None
    assert interaction.data["duration_s"] == 42
    assert [e["status"] for e in interaction.data["status_events"]] == [
        "completed",
        "ringing",
        "in-progress",
    ]
    ttl = services_of(small_app).redis.ttl("ivr:call:" + call.call_sid)
    assert 0 < ttl <= 300


def test_status_before_the_call_reached_us_creates_the_interaction(
    small_app: Flask, settings: Settings, db: Database
) -> None:
    call = TwilioCall(small_app.test_client(), settings)
    assert call.status("ringing", 1) == 204
    assert call.status("in-progress", 2) == 204
    assert call.status("ringing", 1) == 204
    assert interaction_of(db, call.call_sid).status == "in-progress"
    call.start()
    assert interaction_of(db, call.call_sid).status == "in-progress"
    assert call.status("busy", 4) == 204
    assert call.status("completed", 5) == 204
    assert interaction_of(db, call.call_sid).status == "busy"


def test_redis_outage_apologises_and_transfers(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    broken = settings.with_overrides(
        redis_url="redis://127.0.0.1:1/0", flows_file=write_flows(tmp_path, SMALL_FLOWS)
    )
    app = create_app(broken)
    call = TwilioCall(app.test_client(), broken)
    answer = call.start()
    assert answer.status == 200
    assert answer.heard == ["Извините, сервис временно недоступен. Соединяю с оператором."]
    assert answer.first("Enqueue") is not None
    assert answer.step == "outage"


def test_database_outage_mid_call_apologises_and_transfers(
    small_app: Flask, settings: Settings, db: Database
) -> None:
    """A step that needs no database goes on (its records wait in Redis); the first one
    that reads the database apologises and transfers; the records reach the CRM later."""
    call = TwilioCall(small_app.test_client(), settings)
    call.start()
    services = services_of(small_app)
    working = services.db
    services.db = Database("postgresql+psycopg://nobody@127.0.0.1:1/nothing")
    assert call.press("1").step == "hotline:ask"
    answer = call.press("7700112233")
    assert answer.status == 200
    assert answer.heard == ["Извините, сервис временно недоступен. Соединяю с оператором."]
    assert answer.first("Enqueue") is not None
    services.db = working
    call.flush_crm()
    path = path_of(db, interaction_of(db, call.call_sid).id)
    assert ("hotline:menu", "input", "1", "ask") in path


def test_redis_outage_mid_call_apologises_and_transfers(
    small_app: Flask, settings: Settings
) -> None:
    import redis

    call = TwilioCall(small_app.test_client(), settings)
    call.start()
    services = services_of(small_app)
    services._redis = redis.Redis(port=1, socket_connect_timeout=0.5)
    answer = call.press("1")
    assert answer.status == 200
    assert answer.first("Enqueue") is not None


def test_invalid_flow_file_refuses_to_start(settings: Settings, tmp_path: Path) -> None:
    broken = SMALL_FLOWS.replace("next: menu", "next: nowhere")
    with pytest.raises(ConfigError) as info:
        create_app(settings.with_overrides(flows_file=write_flows(tmp_path, broken)))
    assert info.value.variable == "FLOWS_FILE"
    assert "nowhere" in str(info.value)
    assert "flows.yaml:" in str(info.value)


def test_missing_flow_file_refuses_to_start(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        create_app(settings.with_overrides(flows_file=str(tmp_path / "absent.yaml")))


def test_concurrent_duplicates_apply_the_event_once(
    small_app: Flask, settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    import time

    import ivr.actions

    add_account(db, "7700112233")
    original = ivr.actions._IMPLEMENTATIONS["find_account"]
    calls: list[str] = []

    def slow_find(ctx: Any) -> Any:
        calls.append(str(ctx.args["number"]))
        time.sleep(0.3)
        return original(ctx)

    monkeypatch.setitem(ivr.actions._IMPLEMENTATIONS, "find_account", slow_find)
    call = TwilioCall(small_app.test_client(), settings)
    call.start()
    call.press("1")
    gather = call.last.first("Gather")
    assert gather is not None
    url = gather.get("action", "")
    params = {**call.base_params(), "Digits": "7700112233"}
    answers: list[Answer] = []

    def post() -> None:
        answers.append(
            TwilioCall(small_app.test_client(), settings, call_sid=call.call_sid).post(url, params)
        )

    threads = [threading.Thread(target=post) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == ["7700112233"]
    assert [a.status for a in answers] == [200, 200, 200]
    assert len({a.xml for a in answers}) == 1
    assert answers[0].heard == ["Адрес: улица Ленина, дом пять.", "До свидания."]
    call.flush_crm()
    interaction = interaction_of(db, call.call_sid)
    assert [s for s in path_of(db, interaction.id) if s[1] == "action"] == [
        ("hotline:find", "action", None, "found")
    ]


def test_status_callback_during_a_database_outage_is_a_clean_503(
    small_app: Flask, settings: Settings
) -> None:
    call = TwilioCall(small_app.test_client(), settings)
    call.start()
    services = services_of(small_app)
    services.db.dispose()
    services.db = Database("postgresql+psycopg://nobody@127.0.0.1:1/nothing")
    assert call.status("completed", 3, duration=5) == 503


def test_a_start_that_failed_midway_is_applied_on_the_retry(
    small_app: Flask, settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    import ivr.voice

    original = ivr.voice.step_record
    failures = [OperationalError("SELECT", {}, Exception("connection lost"))]

    def flaky(*args: Any, **kwargs: Any) -> str | None:
        if failures:
            raise failures.pop()
        return original(*args, **kwargs)

    monkeypatch.setattr(ivr.voice, "step_record", flaky)
    call = TwilioCall(small_app.test_client(), settings)
    first = call.start()
    assert first.step == "outage"
    assert first.first("Enqueue") is not None
    again = call.start()
    assert again.step == "hotline:menu"
    assert again.heard == ["Здравствуйте.", "Нажмите 1, чтобы найти счёт."]
    call.flush_crm()
    interaction = interaction_of(db, call.call_sid)
    assert [s[0] for s in path_of(db, interaction.id)] == ["hotline:greet", "hotline:menu"]


def test_flows_calling_an_unimplemented_action_refuse_to_start(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ivr.actions

    monkeypatch.delitem(ivr.actions._IMPLEMENTATIONS, "find_account")
    with pytest.raises(ConfigError, match="no implementation: find_account"):
        create_app(settings.with_overrides(flows_file=write_flows(tmp_path, SMALL_FLOWS)))


def _post_signed(client: FlaskClient, settings: Settings, path: str, params: dict[str, str]) -> Any:
    public = settings.public_base_url + path
    headers = {"X-Twilio-Signature": sign(settings.webhook_auth_token, public, params)}
    return client.post(path, data=params, headers=headers)


def test_unknown_call_status_is_a_400_and_nothing_is_stored(
    small_app: Flask, settings: Settings, db: Database
) -> None:
    call_sid = "CA" + uuid.uuid4().hex
    params = {"CallSid": call_sid, "CallStatus": "bogus", "SequenceNumber": "1"}
    response = _post_signed(small_app.test_client(), settings, "/voice/status", params)
    assert response.status_code == 400
    assert "bogus" in response.get_data(as_text=True)
    with db.transaction() as s:
        assert (
            s.scalars(select(Interaction).where(Interaction.provider_sid == call_sid)).all() == []
        )


def test_unknown_message_status_and_answered_by_are_400s(
    small_app: Flask, settings: Settings, db: Database
) -> None:
    client = small_app.test_client()
    sms = {"MessageSid": "SM" + "7" * 32, "MessageStatus": "bogus"}
    assert _post_signed(client, settings, "/sms/status", sms).status_code == 400
    amd = {"CallSid": "CA" + "7" * 32, "AnsweredBy": "bogus"}
    assert _post_signed(client, settings, "/voice/amd", amd).status_code == 400
    with db.transaction() as s:
        assert s.scalars(select(Interaction)).all() == []


def test_amd_result_without_a_subscriber_is_refused(settings: Settings) -> None:
    services = Services(settings)  # no status hooks subscribed
    callback = parse_status_callback(
        StatusKind.AMD, {"CallSid": "CA" + "6" * 32, "AnsweredBy": "human"}
    )
    with pytest.raises(WebhookError, match="only expected for campaign calls"):
        handle_status(services, callback)
