"""Do-not-contact entries and consents managed by people: who, why, before and after."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import select

from crm_store import contact_lists
from crm_store.audit import acting_as, current_reason
from crm_store.consent import add_do_not_contact, consent_status, is_do_not_contact
from crm_store.db import Database
from crm_store.dnc_import import import_dnc, read_dnc_rows
from crm_store.errors import ImportFileError, InvalidInput
from crm_store.models import AuditLog, DoNotContact

PHONE = "+79161234567"


def audit_rows(db: Database, entity: str) -> list[AuditLog]:
    with db.transaction() as s:
        rows = list(
            s.scalars(select(AuditLog).where(AuditLog.entity == entity).order_by(AuditLog.id))
        )
        s.expunge_all()
        return rows


def test_add_and_remove_are_audited_with_actor_reason_before_and_after(db: Database) -> None:
    with db.transaction() as s:
        entry, added = contact_lists.add_dnc(
            s, "8 (916) 123-45-67", reason="жалоба абонента", actor="cli:anna"
        )
    assert added
    assert (entry.phone, entry.channel, entry.source) == (PHONE, "any", "supervisor")
    assert (entry.reason, entry.created_by) == ("жалоба абонента", "cli:anna")
    with db.transaction() as s:
        assert is_do_not_contact(s, PHONE, "voice")
        assert is_do_not_contact(s, PHONE, "sms")
        again, added = contact_lists.add_dnc(s, PHONE, reason="повтор", actor="cli:boris")
    assert not added
    assert again.id == entry.id
    with db.transaction() as s:
        removed = contact_lists.remove_dnc(
            s, "+7 916 123 45 67", reason="абонент попросил звонить", actor="api:boris"
        )
    assert [r.id for r in removed] == [entry.id]
    with db.transaction() as s:
        assert not is_do_not_contact(s, PHONE, "voice")
        assert contact_lists.remove_dnc(s, PHONE, reason="ещё раз", actor="cli:anna") == []
    insert, delete = audit_rows(db, "do_not_contact")
    assert (insert.action, insert.actor, insert.reason) == ("insert", "cli:anna", "жалоба абонента")
    assert insert.before is None
    assert insert.after is not None
    assert insert.after["value"] == PHONE
    assert (delete.action, delete.actor, delete.reason) == (
        "delete",
        "api:boris",
        "абонент попросил звонить",
    )
    assert delete.before is not None
    assert delete.before["value"] == PHONE
    assert delete.after is None


def test_removal_by_channel_and_automatic_entries(db: Database) -> None:
    with db.transaction() as s:
        add_do_not_contact(s, PHONE, channel="sms", reason="sms_stop")
        contact_lists.add_dnc(s, PHONE, channel="voice", reason="по телефону", actor="cli:anna")
        page = contact_lists.list_dnc(s, phone=PHONE)
        assert [(e.channel, e.source, e.reason) for e in page.items] == [
            ("voice", "supervisor", "по телефону"),
            ("sms", "sms_stop", None),
        ]
        removed = contact_lists.remove_dnc(
            s, PHONE, channel="voice", reason="ошибка", actor="cli:anna"
        )
        assert [e.channel for e in removed] == ["voice"]
        assert is_do_not_contact(s, PHONE, "sms")
    # An automatic entry (an SMS STOP) is in the audit log too, as its actor.
    actors = [(r.actor, r.action, r.reason) for r in audit_rows(db, "do_not_contact")]
    assert actors == [
        ("system", "insert", None),
        ("cli:anna", "insert", "по телефону"),
        ("cli:anna", "delete", "ошибка"),
    ]


def test_bad_input_is_a_clear_error(db: Database) -> None:
    with db.transaction() as s:
        with pytest.raises(InvalidInput, match="некорректный номер телефона"):
            contact_lists.add_dnc(s, "12345", reason="x", actor="cli:anna")
        with pytest.raises(InvalidInput, match="причину"):
            contact_lists.add_dnc(s, PHONE, reason="  ", actor="cli:anna")
        with pytest.raises(InvalidInput, match="канал"):
            contact_lists.add_dnc(s, PHONE, channel="fax", reason="x", actor="cli:anna")
        with pytest.raises(InvalidInput, match="цель согласия"):
            contact_lists.grant(s, PHONE, purpose="spam", reason="x", actor="cli:anna")
        with pytest.raises(InvalidInput, match="электронной почты"):
            contact_lists.grant(s, "a@b", purpose="marketing", reason="x", actor="cli:anna")
        with pytest.raises(InvalidInput, match="limit"):
            contact_lists.list_dnc(s, limit=0)
        with pytest.raises(InvalidInput, match="cursor"):
            contact_lists.list_consents(s, cursor="abc")
    assert audit_rows(db, "do_not_contact") == []


def test_lists_page_newest_first_without_gaps(db: Database) -> None:
    with db.transaction() as s:
        for n in range(5):
            contact_lists.add_dnc(s, f"+7916000000{n}", reason="список", actor="cli:anna")
    seen: list[str] = []
    cursor = None
    with db.transaction() as s:
        while True:
            page = contact_lists.list_dnc(s, limit=2, cursor=cursor)
            seen.extend(e.phone for e in page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    assert seen == [f"+7916000000{n}" for n in reversed(range(5))]


def test_consents_granted_and_withdrawn_with_reasons(db: Database) -> None:
    with db.transaction() as s:
        granted, changed = contact_lists.grant(
            s, "8-916-123-45-67", purpose="marketing", reason="анкета 12", actor="cli:anna"
        )
        assert changed
        assert (granted.value, granted.status, granted.source) == (PHONE, "granted", "cli:anna")
        _, changed = contact_lists.grant(
            s, PHONE, purpose="marketing", reason="повтор", actor="cli:anna"
        )
        assert not changed
        withdrawn, changed = contact_lists.withdraw(
            s, PHONE, purpose="marketing", reason="звонок в КЦ", actor="api:boris"
        )
        assert changed
        assert (withdrawn.id, withdrawn.status, withdrawn.reason) == (
            granted.id,
            "withdrawn",
            "звонок в КЦ",
        )
        assert withdrawn.changed_by == "api:boris"
        assert consent_status(s, PHONE, "marketing") == "withdrawn"
        # Withdrawing what was never given records a refusal (remembered for campaigns).
        refusal, changed = contact_lists.withdraw(
            s, "Ivan@Example.ru", purpose="e_receipt", reason="письмо", actor="cli:anna"
        )
        assert changed
        assert (refusal.contact, refusal.value, refusal.status) == (
            "email",
            "ivan@example.ru",
            "withdrawn",
        )
        page = contact_lists.list_consents(s, value=PHONE)
        assert [c.id for c in page.items] == [granted.id]
        assert len(contact_lists.list_consents(s, purpose="e_receipt").items) == 1
    insert, update = audit_rows(db, "consent")[:2]
    assert (insert.action, insert.reason, insert.actor) == ("insert", "анкета 12", "cli:anna")
    assert (update.action, update.reason, update.actor) == ("update", "звонок в КЦ", "api:boris")
    assert update.before is not None
    assert update.after is not None
    assert update.before["withdrawn_at"] is None
    assert update.after["withdrawn_at"] is not None


# ---------------------------------------------------------------------------- import


def _listed(db: Database) -> dict[str, str]:
    with db.transaction() as s:
        return {r.value: r.channel for r in s.scalars(select(DoNotContact))}


def test_import_csv_with_header_reasons_bad_rows_and_duplicates(
    db: Database, tmp_path: Path
) -> None:
    path = tmp_path / "stop.csv"
    path.write_text(
        "Телефон;Причина;Город\n"
        "+7 916 123-45-67;жалоба;Москва\n"
        "\n"
        "89161234568;;Тверь\n"
        "12345;опечатка;Тверь\n"
        "8 (916) 123-45-67;повтор;Москва\n"
        ";;Тверь\n",
        encoding="cp1251",
    )
    report = import_dnc(db, path, actor="cli:anna", reason="список от юристов")
    assert (report.rows_read, report.added, report.already_listed) == (5, 2, 0)
    assert [(e.row, "некорректный" in e.reason) for e in report.errors] == [(5, True), (7, False)]
    assert [(d.row, d.reason) for d in report.duplicates] == [
        (6, "номер +79161234567 уже был в строке 2")
    ]
    assert (report.batches_total, report.batches_committed) == (1, 1)
    assert _listed(db) == {"+79161234567": "any", "+79161234568": "any"}
    reasons = {(r.after or {})["value"]: r.reason for r in audit_rows(db, "do_not_contact")}
    assert reasons == {"+79161234567": "жалоба", "+79161234568": "список от юристов"}
    # Idempotent: the same file again changes nothing and audits nothing.
    again = import_dnc(db, path, actor="cli:anna", reason="список от юристов")
    assert (again.added, again.already_listed) == (0, 2)
    assert len(audit_rows(db, "do_not_contact")) == 2
    assert "Отклонено строк: 2" in again.lines()


def test_import_plain_list_and_xlsx_in_batches(db: Database, tmp_path: Path) -> None:
    plain = tmp_path / "numbers.txt"
    plain.write_text("\ufeff+79160000001\n+79160000002\n+79160000003\n", encoding="utf-8")
    report = import_dnc(db, plain, actor="cli:anna", reason="r", channel="sms", batch_size=2)
    assert (report.added, report.batches_total, report.batches_committed) == (3, 2, 2)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append([79160000004, "просьба"])
    sheet.append([89160000001, None])
    book.save(tmp_path / "list.xlsx")
    report = import_dnc(db, tmp_path / "list.xlsx", actor="cli:anna", reason="r", channel="sms")
    assert (report.added, report.already_listed, report.errors) == (1, 1, [])
    assert len(_listed(db)) == 4


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "файл пуст"),
        (b"\n;\n", "файл пуст"),
        (b"\x00\x01\x02PNG", "двоичные"),
        ("имя;город\nИван;Тверь\n".encode(), "нет столбца с номером"),
        (b"PK\x03\x04broken", "Excel"),
    ],
)
def test_files_that_are_not_lists_are_refused(
    db: Database, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(content)
    with pytest.raises(ImportFileError, match=message):
        import_dnc(db, path, actor="cli:anna", reason="r")
    assert _listed(db) == {}


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="не найден"):
        read_dnc_rows(tmp_path / "nope.csv")


def test_acting_as_carries_a_reason_to_nested_blocks(db: Database) -> None:
    with acting_as("ivr", reason="  отказ в звонке  "), db.transaction() as s:
        add_do_not_contact(s, PHONE, channel="voice", reason="ivr_opt_out")
        with acting_as("ivr:inner"):
            add_do_not_contact(s, PHONE, channel="sms", reason="ivr_opt_out")
        assert current_reason() == "отказ в звонке"
    assert current_reason() is None
    rows = [(r.actor, r.reason) for r in audit_rows(db, "do_not_contact")]
    assert rows == [("ivr", "отказ в звонке"), ("ivr:inner", "отказ в звонке")]


def test_a_broken_xlsx_book_is_refused(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "list.xlsx"
    path.write_bytes(b"PK\x03\x04broken")
    with pytest.raises(ImportFileError, match="XLSX"):
        import_dnc(db, path, actor="cli:anna", reason="r")
