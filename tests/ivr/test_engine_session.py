"""The Redis call-session store: round trip, TTL, duplicates and concurrent commits."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pytest

from ivr.errors import SessionConflict
from ivr.session import CallSession, Frame, SessionStore


def _session(**kw: Any) -> CallSession:
    base: dict[str, Any] = {"call_sid": "CA" + "1" * 32, "flow": "hotline", "step": "greeting"}
    base.update(kw)
    return CallSession(**base)


def test_round_trip_keeps_types(redis_client: Any) -> None:
    store = SessionStore(redis_client, ttl_s=60)
    session = _session(
        variables={
            "debt": Decimal("1234.56"),
            "due": date(2026, 12, 10),
            "at": datetime(2026, 11, 29, 10, 0, tzinfo=UTC),
            "accounts": [{"number": "001", "debt": Decimal("1.00")}],
            "flag": True,
            "opens": time(8, 30),
        },
        stack=[Frame("hotline", "main_menu")],
        typeahead="12",
    )
    assert store.create(session)
    loaded = store.load(session.call_sid)
    assert loaded is not None
    assert loaded.variables["debt"] == Decimal("1234.56")
    assert loaded.variables["due"] == date(2026, 12, 10)
    assert loaded.variables["at"] == datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
    assert loaded.variables["accounts"][0]["debt"] == Decimal("1.00")
    assert loaded.variables["opens"] == time(8, 30)
    assert loaded.stack == [Frame("hotline", "main_menu")]
    assert loaded.typeahead == "12"
    ttl = redis_client.ttl("ivr:call:" + session.call_sid)
    assert 0 < ttl <= 60


def test_unsupported_value_is_refused() -> None:
    with pytest.raises(TypeError, match="cannot store"):
        _session(variables={"x": object()}).to_json()


def test_create_twice_is_refused(redis_client: Any) -> None:
    store = SessionStore(redis_client)
    assert store.create(_session())
    assert not store.create(_session(step="other"))
    loaded = store.load("CA" + "1" * 32)
    assert loaded is not None
    assert loaded.step == "greeting"


def test_missing_session_is_none(redis_client: Any) -> None:
    assert SessionStore(redis_client).load("CAnope") is None


def test_commit_bumps_version_and_stores_response(redis_client: Any) -> None:
    store = SessionStore(redis_client)
    session = _session()
    store.create(session)
    session.step = "main_menu"
    store.commit(session, expected_version=0, response="<Response/>")
    assert session.version == 1
    assert store.last_response(session.call_sid) == (1, "<Response/>")
    stale = _session(step="elsewhere")
    with pytest.raises(SessionConflict):
        store.commit(stale, expected_version=0, response="<Response><Hangup/></Response>")
    loaded = store.load(session.call_sid)
    assert loaded is not None
    assert (loaded.step, loaded.version) == ("main_menu", 1)


def test_claim_is_exclusive_per_version(redis_client: Any) -> None:
    store = SessionStore(redis_client)
    assert store.claim("CAx", 3)
    assert not store.claim("CAx", 3)
    assert store.claim("CAx", 4)
    store.release("CAx", 3)
    assert store.claim("CAx", 3)


def test_wait_for_response_sees_a_concurrent_commit(redis_client: Any) -> None:
    store = SessionStore(redis_client)
    session = _session()
    store.create(session)

    def later() -> None:
        store.commit(session, expected_version=0, response="<Response>done</Response>")

    timer = threading.Timer(0.1, later)
    timer.start()
    try:
        got = store.wait_for_response(session.call_sid, after_version=0, timeout_s=3)
    finally:
        timer.join()
    assert got == "<Response>done</Response>"
    assert store.wait_for_response(session.call_sid, after_version=1, timeout_s=0.1) is None


def test_delete_forgets_the_call(redis_client: Any) -> None:
    store = SessionStore(redis_client)
    session = _session()
    store.create(session)
    store.commit(session, expected_version=0, response="x")
    store.delete(session.call_sid)
    assert store.load(session.call_sid) is None
    assert store.last_response(session.call_sid) is None


def test_expire_soon_shortens_but_never_extends(redis_client: Any) -> None:
    store = SessionStore(redis_client, ttl_s=3600)
    session = _session()
    store.create(session)
    store.commit(session, expected_version=0, response="x")
    store.expire_soon(session.call_sid, 60)
    assert 0 < redis_client.ttl("ivr:call:" + session.call_sid) <= 60
    assert 0 < redis_client.ttl("ivr:call:" + session.call_sid + ":response") <= 60
    store.expire_soon(session.call_sid, 600)
    assert redis_client.ttl("ivr:call:" + session.call_sid) <= 60
