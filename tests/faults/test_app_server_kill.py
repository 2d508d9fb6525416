"""kill -9 of a web app process mid-call: two real ``contactcenter serve`` processes on one
Redis and one database; the call's next webhook reaches the other one and the call goes on.

The call's state is in Redis (``ivr.session``), its path in the database with idempotent step
numbers, so the survivor continues exactly where the dead one stopped: the CRM interaction has
the whole IVR path, each step once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from contactcenter.config import Settings
from crm_store.db import Database
from tests.faults.machinery import FULL_PATH, AppServer, HttpClient
from tests.ivr.test_webhooks_app import (
    SMALL_FLOWS,
    TwilioCall,
    add_account,
    interaction_of,
    path_of,
    write_flows,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pool(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[AppServer]]:
    """Three app server processes on the test database and Redis, started once (each takes
    seconds to import the app): the tests kill two of them, one survives both."""
    workdir = tmp_path_factory.mktemp("servers")
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "TELEPHONY": "sandbox",
        "PUBLIC_BASE_URL": "http://localhost",
        "FLOWS_FILE": write_flows(workdir, SMALL_FLOWS),
        "RECORDINGS_DIR": str(workdir / "recordings"),
        "LOG_LEVEL": "INFO",
    }
    started = [AppServer(env, workdir / f"server{n}.log") for n in range(3)]
    try:
        for server in started:
            server.wait_ready()
        yield started
    finally:
        for server in started:
            server.close()


def _path(db: Database, call_sid: str) -> list[tuple[str, str]]:
    steps = path_of(db, interaction_of(db, call_sid).id)
    return [(step, event) for step, event, _input, _outcome in steps]


def test_the_next_webhook_on_another_instance_continues_the_call(
    pool: list[AppServer], settings: Settings, db: Database, redis_client: Any
) -> None:
    first, second = pool[0], pool[1]
    add_account(db, "7700112233")
    call = TwilioCall(HttpClient(first.base_url), settings)  # type: ignore[arg-type]
    assert call.start().step == "hotline:menu"
    assert call.press("1").step == "hotline:ask"

    first.kill()
    with pytest.raises(requests.ConnectionError):
        requests.get(first.base_url + "/healthz", timeout=2)

    call.client = HttpClient(second.base_url)  # the load balancer's next choice
    answer = call.press("7700112233")
    assert answer.status == 200
    assert answer.heard == ["Адрес: улица Ленина, дом пять.", "До свидания."]
    assert answer.first("Hangup") is not None
    assert call.status("completed", 5, duration=30) == 204

    assert _path(db, call.call_sid) == FULL_PATH
    interaction = interaction_of(db, call.call_sid)
    assert (interaction.status, interaction.outcome) == ("completed", "completed_in_ivr")
    assert interaction.account_id is not None


def test_a_webhook_lost_with_the_killed_instance_is_retried_on_the_other(
    pool: list[AppServer], settings: Settings, db: Database, redis_client: Any
) -> None:
    """The instance freezes with a webhook in flight and is killed; Twilio's retry of that
    same webhook (``#rc=`` on the URL) reaches the other instance, which applies it once."""
    first, second = pool[2], pool[1]
    add_account(db, "7700112233")
    call = TwilioCall(HttpClient(first.base_url), settings)  # type: ignore[arg-type]
    call.start()
    call.press("1")
    gather = call.last.first("Gather")
    assert gather is not None
    action = gather.get("action", "")
    params = {**call.base_params(), "Digits": "7700112233"}

    first.freeze()
    lost: list[BaseException] = []

    def in_flight() -> None:
        try:
            TwilioCall(HttpClient(first.base_url, timeout_s=1.0), settings,  # type: ignore[arg-type]
                       call_sid=call.call_sid).post(action, params)  # fmt: skip
        except requests.RequestException as exc:  # Twilio's webhook timeout
            lost.append(exc)

    thread = threading.Thread(target=in_flight)
    thread.start()
    thread.join(timeout=10)
    assert len(lost) == 1
    assert isinstance(lost[0], requests.Timeout)
    first.kill()

    retry = TwilioCall(HttpClient(second.base_url), settings, call_sid=call.call_sid)  # type: ignore[arg-type]
    answer = retry.post(action, params)
    assert answer.status == 200
    assert answer.heard == ["Адрес: улица Ленина, дом пять.", "До свидания."]
    again = retry.post(action, params)  # a duplicate of the retry: replayed, not re-applied
    assert again.xml == answer.xml
    assert retry.status("completed", 5, duration=30) == 204
    assert _path(db, call.call_sid) == FULL_PATH
    assert interaction_of(db, call.call_sid).outcome == "completed_in_ivr"
