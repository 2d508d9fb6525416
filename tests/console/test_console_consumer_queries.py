"""Consumer 360 and the operator desk (crm_store.console_consumers), region scoping included."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select

from crm_store.cases import open_case
from crm_store.console_consumers import (
    consumer_360,
    record_operator_note,
    timeline,
    transferred_calls,
    visible_call,
    visible_recording,
)
from crm_store.contact_lists import add_dnc, grant
from crm_store.db import Database
from crm_store.errors import InvalidInput, NotFound
from crm_store.models import AuditLog, Consumer, Interaction
from tests.console.pages_fixtures import (
    MOSCOW,
    NOW,
    TVER,
    add_account,
    add_attempt,
    add_call,
    add_campaign,
    add_ledger,
    add_meter,
    add_reading,
    add_recording,
    add_sms,
    add_target,
    everyone,
    moscow_only,
)

MSK_PHONE, TVER_PHONE = "+79161110000", "+79162220000"


def _people(db: Database) -> dict[str, int]:
    """A Moscow consumer with a Tver account too, a Tver consumer, their contacts."""
    with db.transaction() as s:
        msk = add_account(s, "Иванов Иван", MOSCOW, "1001", phone=MSK_PHONE)
        tver_of_msk = add_account(s, "", TVER, "1002", phone=TVER_PHONE, consumer=msk.consumer)
        tver = add_account(s, "Петров Пётр", TVER, "2001", phone="+79163330000")
        ids = {
            "ivanov": msk.consumer_id,
            "petrov": tver.consumer_id,
            "msk_account": msk.id,
            "tver_account_of_ivanov": tver_of_msk.id,
        }
        t = NOW
        ids["call"] = add_call(
            s,
            msk,
            phone=MSK_PHONE,
            started_at=t,
            heard=(("двенадцать тысяч", 0.91),),
            steps=("greeting", "reading_collect", "transfer"),
            outcome="transferred_queue",
            handoff={"account_number": "1001", "reason": "caller_request", "last_step": "menu"},
        ).id
        ids["sms_by_phone"] = add_sms(
            s, None, phone=MSK_PHONE, started_at=t + dt.timedelta(minutes=1)
        ).id
        ids["tver_call_of_ivanov"] = add_call(
            s, tver_of_msk, phone=TVER_PHONE, started_at=t + dt.timedelta(minutes=2)
        ).id
        ids["sms_to_tver_phone"] = add_sms(
            s, None, phone=TVER_PHONE, started_at=t + dt.timedelta(minutes=3)
        ).id
        ids["petrov_call"] = add_call(
            s,
            tver,
            phone="+79163330000",
            outcome="transferred_queue",
            handoff={"account_number": "2001", "reason": "debt"},
        ).id
        add_recording(s, s.get(Interaction, ids["call"]), "RE" + "1" * 32, "recordings/a.wav")
        add_recording(
            s, s.get(Interaction, ids["tver_call_of_ivanov"]), "RE" + "2" * 32, "recordings/b.wav"
        )
        add_recording(
            s, s.get(Interaction, ids["petrov_call"]), "RE" + "3" * 32, "recordings/c.wav"
        )
        meter = add_meter(s, msk, zones=2)
        add_reading(s, meter, 100, zone="T1", submitted_at=t - dt.timedelta(days=30))
        add_reading(s, meter, 150, zone="T1", submitted_at=t)
        add_reading(s, meter, 70, zone="T2", source="ivr_dtmf", submitted_at=t)
        add_ledger(s, msk)
        campaign = add_campaign(s, "Долги", [MOSCOW])
        target = add_target(s, campaign, msk, state="skipped", skip_reason="opted_out")
        add_attempt(s, target, status="skipped", outcome=None)
        add_target(s, add_campaign(s, "Тверь", [TVER]), tver_of_msk, state="done")
        open_case(s, case_type="callback", subject="Перезвонить", account_id=msk.id, now=t)
        open_case(s, case_type="complaint", subject="Тверь", account_id=tver_of_msk.id, now=t)
        open_case(s, case_type="complaint", subject="Петров", account_id=tver.id, now=t)
        add_dnc(s, MSK_PHONE, channel="sms", reason="просьба абонента", actor="console:boss")
        add_dnc(s, TVER_PHONE, reason="жалоба", actor="console:boss")
        grant(s, MSK_PHONE, purpose="robot_calls", reason="в офисе", actor="console:boss")
        return ids


def test_the_timeline_of_a_moscow_user_holds_only_moscow_rows(db: Database) -> None:
    ids = _people(db)
    with db.session() as s:
        every = timeline(s, everyone(), ids["ivanov"])
        mine = timeline(s, moscow_only(), ids["ivanov"])
        assert [i.interaction.id for i in every.items] == [
            ids["sms_to_tver_phone"],
            ids["tver_call_of_ivanov"],
            ids["sms_by_phone"],
            ids["call"],
        ]
        assert [i.interaction.id for i in mine.items] == [ids["sms_by_phone"], ids["call"]]
        call = mine.items[1]
        assert call.kind == "call"
        assert call.account_number == "1001"
        assert [st.step for st in call.steps] == ["greeting", "reading_collect", "transfer"]
        assert [t.text for t in call.transcripts] == ["двенадцать тысяч"]
        assert [r.sid for r in call.recordings] == ["RE" + "1" * 32]
        assert call.handoff == {
            "account_number": "1001",
            "reason": "caller_request",
            "last_step": "menu",
        }
        sms = mine.items[0]
        assert (sms.kind, sms.matched_by_phone) == ("sms", True)
        assert [i.kind for i in timeline(s, everyone(), ids["ivanov"], channel="sms").items] == [
            "sms",
            "sms",
        ]
        with pytest.raises(NotFound):
            timeline(s, moscow_only(), ids["petrov"])
        with pytest.raises(InvalidInput):
            timeline(s, everyone(), ids["ivanov"], channel="fax")


def test_the_timeline_pages_by_keyset(db: Database) -> None:
    ids = _people(db)
    with db.session() as s:
        first = timeline(s, everyone(), ids["ivanov"], limit=3)
        assert len(first.items) == 3
        assert first.next_cursor
        rest = timeline(s, everyone(), ids["ivanov"], limit=3, cursor=first.next_cursor)
    assert [i.interaction.id for i in rest.items] == [ids["call"]]
    assert rest.next_cursor is None


def test_recordings_are_reachable_only_within_the_region(db: Database) -> None:
    ids = _people(db)
    with db.session() as s:
        assert visible_recording(s, moscow_only(), "RE" + "1" * 32).interaction_id == ids["call"]
        for sid in ("RE" + "2" * 32, "RE" + "3" * 32, "RE" + "9" * 32):
            with pytest.raises(NotFound):
                visible_recording(s, moscow_only(), sid)
        assert visible_recording(s, everyone(), "RE" + "3" * 32)


def test_the_360_view_shows_only_visible_accounts_cases_and_contacts(db: Database) -> None:
    ids = _people(db)
    with db.session() as s:
        view = consumer_360(s, moscow_only(), ids["ivanov"], dt.date(2026, 11, 20))
        assert [a.account.number for a in view.accounts] == ["1001"]
        account = view.accounts[0]
        assert account.phones == [MSK_PHONE]
        assert account.balance.debt == Decimal("1000.00")
        [meter] = account.meters
        assert [(z.zone, [r.value for r in z.readings]) for z in meter.zones] == [
            ("T1", [150, 100]),
            ("T2", [70]),
        ]
        assert [c.amount for c in account.charges] == [Decimal("1500.00")]
        assert [p.amount for p in account.payments] == [Decimal("500.00")]
        assert [c.subject for c in view.cases] == ["Перезвонить"]
        assert [(t.campaign.name, t.target.skip_reason) for t in view.targets] == [
            ("Долги", "opted_out")
        ]
        assert [a.status for a in view.targets[0].attempts] == ["skipped"]
        assert view.contacts.phones == [MSK_PHONE]
        assert [(e.phone, e.channel) for e in view.contacts.dnc] == [(MSK_PHONE, "sms")]
        assert [(c.value, c.purpose) for c in view.contacts.consents] == [
            (MSK_PHONE, "robot_calls")
        ]
        full = consumer_360(s, everyone(), ids["ivanov"], dt.date(2026, 11, 20))
        assert [a.account.number for a in full.accounts] == ["1001", "1002"]
        assert sorted(c.subject for c in full.cases) == ["Перезвонить", "Тверь"]
        assert len(full.contacts.dnc) == 2
        assert len(full.targets) == 2
        with pytest.raises(NotFound):
            consumer_360(s, moscow_only(), ids["petrov"], dt.date(2026, 11, 20))


def test_a_malformed_stored_email_does_not_break_the_360_view(db: Database) -> None:
    """An e-mail loaded long ago without a check (or edited in the database) is shown as it
    is; it simply has no consents, and the rest of the page is there."""
    ids = _people(db)
    with db.transaction() as s:
        consumer = s.get(Consumer, ids["ivanov"])
        assert consumer is not None
        consumer.email = "not-an-email@"
    with db.session() as s:
        view = consumer_360(s, moscow_only(), ids["ivanov"], dt.date(2026, 11, 20))
    assert view.contacts.email == "not-an-email@"
    assert view.contacts.phones == [MSK_PHONE]
    assert [(e.phone, e.channel) for e in view.contacts.dnc] == [(MSK_PHONE, "sms")]
    assert [c.value for c in view.contacts.consents] == [MSK_PHONE]


def test_the_desk_lists_transferred_calls_of_the_users_regions(db: Database) -> None:
    ids = _people(db)
    later = NOW + dt.timedelta(hours=1)
    with db.session() as s:
        every = transferred_calls(s, everyone(), later)
        mine = transferred_calls(s, moscow_only(), later)
        assert {h.interaction.id for h in every} == {ids["call"], ids["petrov_call"]}
        [handoff] = mine
        assert handoff.interaction.id == ids["call"]
        assert (handoff.account_number, handoff.consumer_id) == ("1001", ids["ivanov"])
        assert handoff.consumer_name == "Иванов Иван"
        assert handoff.context["reason"] == "caller_request"
        assert handoff.handled is False
        assert transferred_calls(s, everyone(), later + dt.timedelta(hours=13)) == []


def test_an_operator_note_becomes_an_audited_interaction(db: Database) -> None:
    ids = _people(db)
    with db.transaction() as s:
        note = record_operator_note(
            s,
            moscow_only("operator"),
            actor="console:anna",
            operator="anna",
            consumer_id=ids["ivanov"],
            outcome="operator_reading_taken",
            note="Показания <b>приняты</b>",
            call_id=ids["call"],
            now=NOW + dt.timedelta(minutes=10),
        )
        note_id = note.id
    with db.session() as s:
        row = s.get(Interaction, note_id)
        assert row is not None
        assert (row.channel, row.direction, row.operator) == ("voice", "inbound", "anna")
        assert (row.outcome, row.summary) == ("operator_reading_taken", "Показания <b>приняты</b>")
        assert row.account_id == ids["msk_account"]
        assert row.consumer_id == ids["ivanov"]
        assert row.data == {"kind": "operator_note", "call_interaction_id": ids["call"]}
        [entry] = s.scalars(select(AuditLog).where(AuditLog.entity == "interaction")).all()
        assert (entry.actor, entry.entity_id, entry.action) == (
            "console:anna",
            str(note_id),
            "insert",
        )
        assert entry.after is not None
        assert entry.after["outcome"] == "operator_reading_taken"
        [handoff] = transferred_calls(s, moscow_only(), NOW + dt.timedelta(hours=1))
        assert handoff.handled is True
        notes = timeline(s, moscow_only(), ids["ivanov"], channel="note").items
        assert [(i.kind, i.interaction.id) for i in notes] == [("note", note_id)]


def test_operator_notes_are_checked(db: Database) -> None:
    ids = _people(db)
    scope = moscow_only("operator")

    def note(**changes: object) -> None:
        args: dict[str, object] = {
            "actor": "console:anna",
            "operator": "anna",
            "consumer_id": ids["ivanov"],
            "outcome": "operator_consulted",
            "note": "ok",
            "now": NOW,
        }
        args.update(changes)
        with db.transaction() as s:
            record_operator_note(s, scope, **args)  # type: ignore[arg-type]

    with pytest.raises(InvalidInput, match="итог"):
        note(outcome="hacked")
    with pytest.raises(InvalidInput, match="длиннее"):
        note(note="x" * 4001)
    with pytest.raises(InvalidInput, match="лицевой счёт"):
        note(account_number="1002")  # Ivanov's, but in Tver
    with pytest.raises(NotFound):
        note(consumer_id=ids["petrov"])
    with pytest.raises(NotFound):
        note(call_id=ids["petrov_call"])
    with db.session() as s:
        assert visible_call(s, scope, ids["call"]).id == ids["call"]
        assert s.scalars(select(AuditLog).where(AuditLog.entity == "interaction")).all() == []
