"""A small CRM in two regions for the REST API tests: consumers, accounts, history, cases,
campaigns, do-not-contact entries, and users of every role scoped to all, one or the other
region."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy.orm import Session

from crm_store.cases import open_case
from crm_store.consent import add_do_not_contact, grant_consent
from crm_store.db import Database
from crm_store.interactions import add_transcript, append_step, finish_interaction
from crm_store.interactions import start_interaction as begin
from crm_store.models import (
    Account,
    AccountPhone,
    CallRecording,
    Campaign,
    Charge,
    Consumer,
    Meter,
    MeterReading,
    Payment,
    PhoneNumber,
)
from crm_store.users import create_user, issue_api_token

MOSCOW, TVER = "Москва", "Тверь"
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
ROLES = ("admin", "supervisor", "operator", "auditor", "developer")
#: A user's regions as the matrix names them: every region, the probed row's, another one.
REGION_KINDS: dict[str, list[str] | None] = {"all": None, "own": [MOSCOW], "other": [TVER]}
CAMPAIGN = {
    "name": "Долг",
    "channel": "sms",
    "audience": {"min_debt": 1, "regions": [MOSCOW]},
    "sms": {"template": "Долг {amount} по ЛС {account}"},
}


def wav(seconds: float = 0.1) -> bytes:
    """A silent 8 kHz mono 16-bit WAV file."""
    frames = int(8000 * seconds)
    data = b"\x00\x00" * frames
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
    return header + b"data" + struct.pack("<I", len(data)) + data


@dataclass
class World:
    """What :func:`build_world` stored (ids, numbers, SIDs)."""

    moscow_consumer: int
    tver_consumer: int
    both_consumer: int
    moscow_account: str
    tver_account: str
    both_moscow_account: str
    both_tver_account: str
    moscow_calls: list[int]
    moscow_recording: str
    tver_interaction: int
    tver_recording: str
    moscow_case: int
    tver_case: int
    moscow_campaign: int
    tver_campaign: int
    everywhere_campaign: int
    moscow_phone: str
    tver_phone: str


def _account(
    session: Session, consumer: Consumer, number: str, region: str, ivr: str, phone: str
) -> Account:
    account = Account(
        consumer=consumer,
        number_raw=number,
        number=number,
        ivr_code=ivr,
        region=region,
        timezone="Europe/Moscow",
        service_address=f"{region}, ул. Ленина, 1",
    )
    session.add(account)
    session.flush()
    row = PhoneNumber(e164=phone, source="import", verified=True)
    session.add(row)
    session.flush()
    session.add(AccountPhone(account_id=account.id, phone_id=row.id))
    return account


def _call(
    session: Session,
    account: Account,
    sid: str,
    at: datetime,
    recordings: Path,
    *,
    recorded: bool = False,
) -> tuple[int, str | None]:
    row = begin(
        session,
        channel="voice",
        direction="inbound",
        provider_sid=sid,
        phone=None,
        account_id=account.id,
        consumer_id=account.consumer_id,
        started_at=at,
    )
    append_step(session, row.id, "menu", at=at)
    append_step(session, row.id, "reading", input="12345", at=at)
    add_transcript(session, row.id, "reading", "двенадцать тысяч", confidence=0.9, at=at)
    finish_interaction(
        session,
        row.id,
        outcome="reading_submitted",
        summary="показания переданы",
        ended_at=at + timedelta(minutes=2),
    )
    recording = None
    if recorded:
        recording = "RE" + sid[2:]
        path = recordings / f"{recording}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(wav())
        session.add(
            CallRecording(
                interaction_id=row.id,
                sid=recording,
                url=f"https://api.example/{recording}",
                duration_s=1,
                status="completed",
                storage_path=str(path),
            )
        )
    return int(row.id), recording


def build_world(db: Database, recordings: Path) -> World:
    """Store the two-region CRM (see the module)."""
    with db.transaction() as s:
        moscow = Consumer(full_name="Петров Пётр Петрович", email="petrov@example.ru")
        tver = Consumer(full_name="Сидорова Анна")
        both = Consumer(full_name="Петрова Мария")
        msk = _account(s, moscow, "МСК0001", MOSCOW, "1001", "+79161110001")
        tvr = _account(s, tver, "ТВР0001", TVER, "2001", "+79162220002")
        _account(s, both, "МСК0002", MOSCOW, "1002", "+79161110003")
        both_tvr = _account(s, both, "ТВР0002", TVER, "2002", "+79162220004")
        meter = Meter(account_id=msk.id, serial="M-1", capacity=6, zones=["T1"])
        s.add(meter)
        s.flush()
        for n, value in enumerate((1000, 1150)):
            s.add(
                MeterReading(
                    meter_id=meter.id,
                    zone="T1",
                    value=value,
                    period=date(2026, 9 + n, 1),
                    source="ivr_dtmf",
                    submitted_at=NOW - timedelta(days=40 - 30 * n),
                )
            )
        for month in (9, 10):
            s.add(
                Charge(
                    account_id=msk.id,
                    period=date(2026, month, 1),
                    amount=Decimal("1500.00"),
                    due_date=date(2026, month + 1, 10),
                )
            )
        s.add(
            Payment(
                account_id=msk.id,
                amount=Decimal("1000.00"),
                paid_on=date(2026, 11, 1),
                channel="sbp",
            )
        )
        calls = []
        recording = None
        for n in range(3):
            call, rec = _call(
                s, msk, f"CA{n:032d}", NOW - timedelta(hours=3 - n), recordings, recorded=n == 2
            )
            calls.append(call)
            recording = rec or recording
        tver_call, tver_recording = _call(
            s, tvr, f"CA{9:032d}", NOW - timedelta(hours=1), recordings, recorded=True
        )
        begin(
            s,
            channel="voice",
            direction="inbound",
            provider_sid="CA" + "7" * 32,
            account_id=both_tvr.id,
            consumer_id=both.id,
            started_at=NOW,
        )
        moscow_case = open_case(
            s, case_type="callback", subject="перезвонить", account_id=msk.id,
            consumer_id=moscow.id, now=NOW,
        )  # fmt: skip
        tver_case = open_case(
            s, case_type="complaint", subject="жалоба", account_id=tvr.id,
            consumer_id=tver.id, now=NOW,
        )  # fmt: skip
        campaigns = []
        for regions in ([MOSCOW], [TVER], None):
            audience: dict[str, object] = {"min_debt": 1}
            if regions:
                audience["regions"] = regions
            campaign = Campaign(
                name=f"кампания {regions}",
                channel="sms",
                status="draft",
                definition={**CAMPAIGN, "audience": audience},
            )
            s.add(campaign)
            s.flush()
            campaigns.append(campaign.id)
        add_do_not_contact(s, "+79161110001", channel="any", reason="supervisor")
        add_do_not_contact(s, "+79162220002", channel="any", reason="supervisor")
        grant_consent(
            s, contact="phone", value="+79162220002", purpose="marketing", source="t", at=NOW
        )
        grant_consent(
            s, contact="phone", value="+79161110001", purpose="marketing", source="t", at=NOW
        )
        assert recording is not None
        assert tver_recording is not None
        return World(
            moscow_consumer=moscow.id,
            tver_consumer=tver.id,
            both_consumer=both.id,
            moscow_account="МСК0001",
            tver_account="ТВР0001",
            both_moscow_account="МСК0002",
            both_tver_account="ТВР0002",
            moscow_calls=calls,
            moscow_recording=recording,
            tver_interaction=tver_call,
            tver_recording=tver_recording,
            moscow_case=moscow_case.id,
            tver_case=tver_case.id,
            moscow_campaign=campaigns[0],
            tver_campaign=campaigns[1],
            everywhere_campaign=campaigns[2],
            moscow_phone="+79161110001",
            tver_phone="+79162220002",
        )


def make_token(db: Database, username: str, roles: list[str], regions: list[str] | None) -> str:
    """A user with ``roles`` and ``regions`` and their API token."""
    with db.transaction() as s:
        create_user(s, username, roles=roles, regions=regions)
        return issue_api_token(s, username)
