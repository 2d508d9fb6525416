"""Interactions: idempotent start/steps/finish by provider SID; filtered keyset search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from crm_store.db import Database
from crm_store.errors import InvalidInput, NotFound
from crm_store.interactions import (
    InteractionQuery,
    NewStep,
    add_transcript,
    append_step,
    append_steps,
    count_interactions,
    finish_interaction,
    get_interaction,
    search_interactions,
    start_interaction,
    update_interaction,
)
from crm_store.models import Account, Interaction, InteractionStep

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
SID = "CA" + "0" * 32


def test_start_is_idempotent_and_fills_missing_links(db: Database, account: Account) -> None:
    with db.transaction() as s:
        first = start_interaction(
            s,
            channel="voice",
            direction="inbound",
            provider_sid=SID,
            phone="8 (903) 123-45-67",
            started_at=T0,
        )
        again = start_interaction(
            s,
            channel="voice",
            direction="inbound",
            provider_sid=SID,
            phone="+79990000000",
            account_id=account.id,
        )
        assert again.id == first.id
        assert again.phone == "+79031234567"  # the first phone is kept, in E.164
        assert again.account_id == account.id  # an unknown link is filled in
        assert again.started_at == T0


def test_steps_transcripts_and_finish(db: Database) -> None:
    with db.transaction() as s:
        start_interaction(s, channel="voice", direction="inbound", provider_sid=SID, started_at=T0)
        append_step(s, SID, "greeting", seq=1)
        append_step(s, SID, "greeting", seq=1)  # webhook retry: stored once
        append_step(s, SID, "ask_account", event="input", input="****45", outcome="matched")
        add_transcript(
            s,
            SID,
            "ask_account",
            "двенадцать тридцать четыре",
            confidence=0.82,
            decision="accepted",
            audio_ref="rec/1.wav",
        )
        done = finish_interaction(
            s,
            SID,
            status="completed",
            outcome="reading_accepted",
            ended_at=T0 + timedelta(minutes=3),
            summary="Передал показания",
        )
        finish_interaction(
            s, SID, status="completed", ended_at=T0 + timedelta(hours=1), recording_ref="RE123"
        )
    with db.transaction() as s:
        row = get_interaction(s, SID)
        assert [(st.seq, st.step, st.event) for st in row.steps] == [
            (1, "greeting", "enter"),
            (2, "ask_account", "input"),
        ]
        assert row.steps[1].input == "****45"
        assert [t.text for t in row.transcripts] == ["двенадцать тридцать четыре"]
        assert row.transcripts[0].confidence == pytest.approx(0.82)
        assert row.ended_at == T0 + timedelta(minutes=3)  # the first end time is kept
        assert (row.outcome, row.recording_ref, row.summary) == (
            "reading_accepted",
            "RE123",
            "Передал показания",
        )
        assert done.id == row.id


def test_update_merges_data(db: Database) -> None:
    with db.transaction() as s:
        row = start_interaction(s, channel="sms", direction="outbound", data={"segments": 2})
        update_interaction(s, row.id, data={"status": "delivered"}, outcome="delivered")
        assert row.data == {"segments": 2, "status": "delivered"}
        assert row.outcome == "delivered"


def test_bad_input_raises_clear_errors(db: Database) -> None:
    with db.transaction() as s:
        with pytest.raises(InvalidInput, match="channel"):
            start_interaction(s, channel="fax", direction="inbound")
        naive = datetime(2026, 1, 1)  # noqa: DTZ001  (the error under test)
        with pytest.raises(InvalidInput, match="tz-aware"):
            start_interaction(s, channel="voice", direction="inbound", started_at=naive)
        with pytest.raises(InvalidInput, match="телефона"):
            start_interaction(s, channel="voice", direction="inbound", phone="12")
        with pytest.raises(NotFound):
            append_step(s, "CA-missing", "x")
        with pytest.raises(InvalidInput, match="cursor"):
            search_interactions(s, cursor="not-a-cursor")
        with pytest.raises(InvalidInput, match="limit"):
            search_interactions(s, limit=0)


@pytest.fixture
def history(db: Database, account: Account) -> list[int]:
    """40 interactions an hour apart: voice/sms alternating, two phones, some on the account."""
    ids = []
    with db.transaction() as s:
        for i in range(40):
            row = start_interaction(
                s,
                channel="voice" if i % 2 == 0 else "sms",
                direction="inbound" if i % 4 < 2 else "outbound",
                provider_sid=f"SID{i:04d}",
                phone="+79031234567" if i % 3 == 0 else "+79161112233",
                account_id=account.id if i < 10 else None,
                started_at=T0 + timedelta(hours=i),
            )
            finish_interaction(
                s,
                row.id,
                outcome="human" if i % 5 == 0 else "no_answer",
                summary=f"звонок номер {i}",
            )
            if i == 7:
                add_transcript(s, row.id, "menu", "Хочу ПЕРЕДАТЬ показания", confidence=0.9)
            ids.append(row.id)
    return ids


def test_search_filters(db: Database, account: Account, history: list[int]) -> None:
    with db.transaction() as s:

        def found(**kw: object) -> set[int]:
            page = search_interactions(s, InteractionQuery(**kw), limit=500)  # type: ignore[arg-type]
            return {history.index(r.id) for r in page.items}

        assert found(account_id=account.id) == set(range(10))
        assert found(phone="8 903 123 45 67") == {i for i in range(40) if i % 3 == 0}
        assert found(channel="sms", direction="outbound") == {i for i in range(40) if i % 4 == 3}
        assert found(outcome="human") == {0, 5, 10, 15, 20, 25, 30, 35}
        assert found(since=T0 + timedelta(hours=5), until=T0 + timedelta(hours=8)) == {5, 6, 7}
        assert found(text="номер 3") == {3, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39}
        assert found(text="передать показания") == {7}  # transcript, Cyrillic case-insensitive
        assert found(text="100%") == set()  # LIKE wildcards are literal
        assert found(account_id=account.id, outcome="human", channel="voice") == {0}
        assert count_interactions(s, InteractionQuery(outcome="human")) == 8


def test_keyset_pagination_walks_everything_once(db: Database, history: list[int]) -> None:
    seen: list[int] = []
    cursor = None
    pages = 0
    with db.transaction() as s:
        while True:
            page = search_interactions(s, InteractionQuery(), limit=7, cursor=cursor)
            seen.extend(r.id for r in page.items)
            pages += 1
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    assert pages == 6
    assert seen == list(reversed(history))  # newest first, no gaps, no repeats


def test_pagination_breaks_ties_on_equal_start_times(db: Database) -> None:
    with db.transaction() as s:
        for i in range(5):
            start_interaction(
                s, channel="email", direction="outbound", started_at=T0, provider_sid=f"MAIL{i}"
            )
    with db.transaction() as s:
        first = search_interactions(s, limit=3)
        second = search_interactions(s, limit=3, cursor=first.next_cursor)
        ids = [r.id for r in first.items + second.items]
        assert len(ids) == len(set(ids)) == 5
        assert second.next_cursor is None
        assert all(isinstance(r, Interaction) for r in first.items)


def test_append_steps_stores_a_webhooks_path_once(db: Database) -> None:
    with db.transaction() as s:
        row = start_interaction(s, channel="voice", direction="inbound", provider_sid=SID)
        path = [NewStep(seq=1, step="greet"), NewStep(seq=2, step="menu", event="input", input="1")]
        assert append_steps(s, row.id, path) == 2
        # a retried webhook repeats step 2 and adds step 3: only 3 is new
        assert append_steps(s, row.id, [path[1], NewStep(seq=3, step="balance")]) == 1
        assert append_steps(s, row.id, []) == 0
        stored = s.execute(
            select(InteractionStep.seq, InteractionStep.step, InteractionStep.input)
            .where(InteractionStep.interaction_id == row.id)
            .order_by(InteractionStep.seq)
        ).all()
    assert [tuple(r) for r in stored] == [
        (1, "greet", None),
        (2, "menu", "1"),
        (3, "balance", None),
    ]


def test_a_new_summary_replaces_the_old_one_in_search_text(db: Database) -> None:
    with db.transaction() as s:
        row = start_interaction(s, channel="voice", direction="inbound", provider_sid=SID)
        update_interaction(s, SID, summary="Звонок. Путь: greet")
        add_transcript(s, SID, "ask", "ДВЕНАДЦАТЬ тысяч")
        update_interaction(s, SID, summary="Звонок. Путь: greet → Меню")
        assert row.search_text == "звонок. путь: greet → меню\nдвенадцать тысяч"
        # a search_text that does not start with the summary is rebuilt from the rows
        row.search_text = "stale"
        update_interaction(s, SID, summary="Итог")
        assert row.search_text == "итог\nдвенадцать тысяч"
