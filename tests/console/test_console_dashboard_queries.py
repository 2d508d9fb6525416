"""The dashboard's figures (crm_store.console_dashboard), region scoping included."""

from __future__ import annotations

import datetime as dt

from crm_store.access import scope_for
from crm_store.console_dashboard import dashboard
from crm_store.console_queries import day_bounds
from crm_store.db import Database
from tests.console.pages_fixtures import (
    MOSCOW,
    NOW,
    TVER,
    add_account,
    add_call,
    add_campaign,
    add_meter,
    add_reading,
    add_sms,
    everyone,
    moscow_only,
)


def _seed(db: Database) -> None:
    with db.transaction() as s:
        msk = add_account(s, "Иванов Иван", MOSCOW, "1001")
        tver = add_account(s, "Петров Пётр", TVER, "2001")
        # Moscow: 2 completed in the IVR, 1 transferred, 1 live, 1 yesterday
        add_call(s, msk, heard=(("двенадцать", 0.95), ("да", 0.42)))
        add_call(s, msk, outcome="hung_up_in_ivr", heard=(("нет", 0.05),))
        add_call(s, msk, outcome="transferred_queue", handoff={"reason": "caller_request"})
        add_call(s, msk, status="in-progress", outcome=None, ended=False)
        add_call(s, msk, started_at=NOW - dt.timedelta(days=1))
        # a stale unfinished call (its final status never came) is not live
        add_call(
            s,
            msk,
            status="in-progress",
            outcome=None,
            ended=False,
            started_at=NOW - dt.timedelta(hours=5),
        )
        # Tver: 3 transferred, 2 live, with recognition results
        for _ in range(3):
            add_call(s, tver, outcome="transferred_queue", heard=(("семь", 0.75),))
        for _ in range(2):
            add_call(s, tver, status="in-progress", outcome=None, ended=False)
        # a caller who never gave an account: no region
        add_call(s, None, outcome="completed_in_ivr", heard=(("алло", 0.99),))
        m1, t1 = add_meter(s, msk), add_meter(s, tver)
        add_reading(s, m1, 100, source="ivr_voice")
        add_reading(s, m1, 101, source="ivr_dtmf")
        add_reading(s, m1, 102, source="ivr_dtmf", submitted_at=NOW - dt.timedelta(days=2))
        add_reading(s, t1, 200, source="ivr_voice")
        add_reading(s, t1, 201, source="ivr_voice")
        add_reading(s, t1, 202, source="operator")
        add_sms(s, msk, status="delivered")
        add_sms(s, msk, status="undelivered")
        add_sms(s, tver, status="delivered")
        add_sms(s, tver, status="sent")
        add_sms(s, None, status="failed")
        add_sms(s, msk, status="received", direction="inbound")
        add_campaign(s, "Москва, долги", [MOSCOW])
        add_campaign(s, "Тверь, долги", [TVER])
        add_campaign(s, "Вся страна", None)
        add_campaign(s, "Москва, черновик", [MOSCOW], status="draft")


def test_everyone_sees_every_region_and_the_calls_without_an_account(db: Database) -> None:
    _seed(db)
    with db.session() as s:
        board = dashboard(s, everyone(), NOW)
    assert board.calls_in_ivr == 3
    assert board.calls_today == 5 + 5 + 1  # Moscow's of yesterday not counted
    assert board.calls_by_outcome == {
        "transferred_queue": 4,
        None: 4,
        "completed_in_ivr": 2,
        "hung_up_in_ivr": 1,
    }
    assert (board.containment.completed, board.containment.hung_up) == (2, 1)
    assert board.containment.transferred == 4
    assert board.containment.rate == 3 / 7
    assert board.readings == {"voice": 3, "keypad": 1, "other": 1}
    assert board.confidence == [1, 0, 0, 0, 1, 0, 0, 3, 0, 2]
    assert board.sms == {"delivered": 2, "failed": 2, "pending": 1}
    assert board.campaigns_running == 3
    assert sorted(c.name for c in board.running) == ["Вся страна", "Москва, долги", "Тверь, долги"]


def test_a_moscow_user_counts_only_moscow(db: Database) -> None:
    _seed(db)
    with db.session() as s:
        board = dashboard(s, moscow_only(), NOW)
    assert board.calls_in_ivr == 1
    assert board.calls_by_outcome == {
        "completed_in_ivr": 1,
        "hung_up_in_ivr": 1,
        "transferred_queue": 1,
        None: 2,
    }
    assert board.calls_today == 5
    assert board.containment.rate == 2 / 3
    assert board.readings == {"voice": 1, "keypad": 1, "other": 0}
    assert board.confidence == [1, 0, 0, 0, 1, 0, 0, 0, 0, 1]
    assert board.sms == {"delivered": 1, "failed": 1, "pending": 0}
    # the all-region campaign reaches Tver too: not a Moscow user's
    assert board.campaigns_running == 1
    assert [c.name for c in board.running] == ["Москва, долги"]


def test_a_user_of_no_visible_region_sees_zeros(db: Database) -> None:
    _seed(db)
    with db.session() as s:
        board = dashboard(s, scope_for("x", ["supervisor"], ["Казань"]), NOW)
        empty = dashboard(s, scope_for("y", ["supervisor"], []), NOW)
    for shown in (board, empty):
        assert shown.calls_in_ivr == 0
        assert shown.calls_by_outcome == {}
        assert shown.containment.rate is None
        assert shown.readings == {"voice": 0, "keypad": 0, "other": 0}
        assert shown.confidence == [0] * 10
        assert shown.sms == {"delivered": 0, "failed": 0, "pending": 0}
        assert shown.campaigns_running == 0


def test_today_is_the_moscow_calendar_day(db: Database) -> None:
    late = dt.datetime(2026, 11, 20, 20, 30, tzinfo=dt.UTC)  # 23:30 in Moscow
    with db.transaction() as s:
        msk = add_account(s, "Иванов Иван", MOSCOW, "1001")
        add_call(s, msk, started_at=dt.datetime(2026, 11, 19, 21, 30, tzinfo=dt.UTC))  # 00:30
        add_call(s, msk, started_at=dt.datetime(2026, 11, 19, 20, 30, tzinfo=dt.UTC))  # before
    with db.session() as s:
        assert dashboard(s, everyone(), late).calls_today == 1
    start, end = day_bounds(late)
    assert (start.hour, end - start) == (21, dt.timedelta(days=1))


def test_as_dict_is_json_ready(db: Database) -> None:
    _seed(db)
    with db.session() as s:
        data = dashboard(s, everyone(), NOW).as_dict()
    assert data["calls_by_outcome"]["none"] == 4
    assert data["containment"]["rate"] == 3 / 7
    assert data["as_of"] == NOW.isoformat()
