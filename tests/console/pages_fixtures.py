"""Test data of the console pages' tests: consumers in regions, calls, SMS, readings, campaigns.

Two regions, ``Москва`` and ``Тверь``: every test that checks region scoping puts the same
kinds of rows in both and looks for the other region's ones to be absent.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from campaigns.definition import parse_definition
from crm_store.access import Scope, scope_for
from crm_store.interactions import add_transcript, append_step, start_interaction
from crm_store.models import (
    Account,
    AccountPhone,
    CallRecording,
    Campaign,
    CampaignTarget,
    Charge,
    Consumer,
    ContactAttempt,
    Interaction,
    Meter,
    MeterReading,
    Payment,
    PhoneNumber,
)

MOSCOW, TVER = "Москва", "Тверь"
NOW = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)  # 12:00 in Moscow, a Friday
MOSCOW_TZ = ZoneInfo("Europe/Moscow")


def earlier_today(minutes: float) -> dt.datetime:
    """``minutes`` before the real now, but never before today's midnight in Moscow.

    For data a live dashboard must count as today's (its day starts at 21:00 UTC).
    """
    now = dt.datetime.now(dt.UTC)
    midnight = now.astimezone(MOSCOW_TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(now - dt.timedelta(minutes=minutes), midnight.astimezone(dt.UTC))


def everyone() -> Scope:
    """A supervisor of every region."""
    return scope_for("boss", ["supervisor"], None)


def moscow_only(role: str = "supervisor") -> Scope:
    """A user of Moscow only."""
    return scope_for("anna", [role], [MOSCOW])


def add_account(
    session: Session,
    name: str,
    region: str,
    number: str,
    *,
    phone: str | None = None,
    ivr_code: str | None = None,
    timezone: str | None = "Europe/Moscow",
    consumer: Consumer | None = None,
) -> Account:
    """A consumer (new unless given) with an account in ``region`` and, optionally, a phone."""
    owner = consumer or Consumer(full_name=name)
    account = Account(
        consumer=owner,
        number_raw=number,
        number=number,
        region=region,
        timezone=timezone,
        ivr_code=ivr_code,
        service_address=f"{region}, ул. Ленина, 1",
    )
    session.add(account)
    session.flush()
    if phone is not None:
        number_row = session.query(PhoneNumber).filter_by(e164=phone).one_or_none()
        if number_row is None:
            number_row = PhoneNumber(e164=phone)
            session.add(number_row)
            session.flush()
        session.add(AccountPhone(account_id=account.id, phone_id=number_row.id))
        session.flush()
    return account


def add_call(
    session: Session,
    account: Account | None,
    *,
    started_at: dt.datetime = NOW,
    status: str = "completed",
    outcome: str | None = "completed_in_ivr",
    direction: str = "inbound",
    phone: str | None = "+79161234567",
    ended: bool = True,
    steps: tuple[str, ...] = ("greeting", "main_menu"),
    heard: tuple[tuple[str, float], ...] = (),
    handoff: dict[str, Any] | None = None,
    sid: str | None = None,
    summary: str = "",
    campaign_id: int | None = None,
    attempt_id: int | None = None,
) -> Interaction:
    """A voice interaction with its IVR path and recognition results."""
    row = start_interaction(
        session,
        channel="voice",
        direction=direction,
        provider_sid=sid,
        phone=phone,
        account_id=account.id if account is not None else None,
        consumer_id=account.consumer_id if account is not None else None,
        started_at=started_at,
        status=status,
        campaign_id=campaign_id,
        attempt_id=attempt_id,
    )
    row.outcome = outcome
    row.summary = summary
    if ended:
        row.ended_at = started_at + dt.timedelta(minutes=2)
    if handoff is not None:
        row.data = {**(row.data or {}), "handoff": handoff}
    session.flush()
    for n, step in enumerate(steps, start=1):
        append_step(session, row.id, step, seq=n, at=started_at + dt.timedelta(seconds=n))
    for text, confidence in heard:
        add_transcript(
            session,
            row.id,
            steps[-1] if steps else "step",
            text,
            confidence=confidence,
            at=started_at,
        )
    return row


def add_sms(
    session: Session,
    account: Account | None,
    *,
    started_at: dt.datetime = NOW,
    status: str = "delivered",
    direction: str = "outbound",
    phone: str | None = "+79161234567",
    body: str = "Показания приняты",
) -> Interaction:
    """An SMS interaction."""
    row = start_interaction(
        session,
        channel="sms",
        direction=direction,
        phone=phone,
        account_id=account.id if account is not None else None,
        consumer_id=account.consumer_id if account is not None else None,
        started_at=started_at,
        status=status,
    )
    row.summary = body
    session.flush()
    return row


def add_meter(session: Session, account: Account, serial: str = "M-1", zones: int = 1) -> Meter:
    """A meter of ``account`` with ``zones`` tariff zones (T1, T2, T3)."""
    meter = Meter(
        account_id=account.id,
        serial=serial,
        capacity=6,
        zones=[f"T{n}" for n in range(1, zones + 1)],
    )
    session.add(meter)
    session.flush()
    return meter


def add_reading(
    session: Session,
    meter: Meter,
    value: int,
    *,
    zone: str = "T1",
    source: str = "ivr_voice",
    submitted_at: dt.datetime = NOW,
    period: dt.date = dt.date(2026, 11, 1),
    confidence: float | None = None,
) -> MeterReading:
    """A reading of ``meter``."""
    reading = MeterReading(
        meter_id=meter.id,
        zone=zone,
        value=value,
        period=period,
        source=source,
        confidence=confidence,
        submitted_at=submitted_at,
    )
    session.add(reading)
    session.flush()
    return reading


def add_ledger(
    session: Session, account: Account, *, charged: str = "1500.00", paid: str = "500.00"
) -> None:
    """A charge due a month before :data:`NOW` and a payment after it."""
    session.add(
        Charge(
            account_id=account.id,
            period=dt.date(2026, 9, 1),
            amount=Decimal(charged),
            due_date=dt.date(2026, 10, 10),
        )
    )
    session.add(
        Payment(
            account_id=account.id,
            amount=Decimal(paid),
            paid_on=dt.date(2026, 10, 20),
            channel="bank",
        )
    )
    session.flush()


def definition_for(
    name: str, regions: list[str] | None, *, channel: str = "sms", **extra: Any
) -> dict[str, Any]:
    """A valid stored campaign definition whose audience names ``regions``."""
    audience: dict[str, Any] = {"min_debt": 100}
    if regions is not None:
        audience["regions"] = regions
    data: dict[str, Any] = {"name": name, "channel": channel, "audience": audience, **extra}
    if channel in ("sms", "voice_then_sms") and "sms" not in data:
        data["sms"] = {"template": "{supplier}: долг {amount} руб. по ЛС {account}."}
    return parse_definition(data).to_json()


def add_campaign(
    session: Session,
    name: str,
    regions: list[str] | None,
    *,
    status: str = "running",
    channel: str = "sms",
    launched_at: dt.datetime | None = NOW,
) -> Campaign:
    """A stored campaign whose audience names ``regions`` (None: every region)."""
    campaign = Campaign(
        name=name,
        channel=channel,
        status=status,
        definition=definition_for(name, regions, channel=channel),
        created_by="test",
        created_at=NOW - dt.timedelta(hours=1),
        launched_at=launched_at,
    )
    session.add(campaign)
    session.flush()
    return campaign


def add_target(
    session: Session,
    campaign: Campaign,
    account: Account,
    *,
    state: str = "pending",
    skip_reason: str | None = None,
    control_group: bool = False,
    phone: str | None = "+79161234567",
) -> CampaignTarget:
    """A target of ``campaign``."""
    target = CampaignTarget(
        campaign_id=campaign.id,
        account_id=account.id,
        phone=phone,
        state=state,
        skip_reason=skip_reason,
        control_group=control_group,
    )
    session.add(target)
    session.flush()
    return target


def add_attempt(
    session: Session,
    target: CampaignTarget,
    *,
    attempt_no: int = 1,
    channel: str = "sms",
    status: str = "completed",
    outcome: str | None = "delivered",
    created_at: dt.datetime = NOW,
) -> ContactAttempt:
    """A contact attempt of ``target``."""
    attempt = ContactAttempt(
        campaign_id=target.campaign_id,
        target_id=target.id,
        attempt_no=attempt_no,
        channel=channel,
        idempotency_key=f"test-{target.id}-{attempt_no}",
        status=status,
        outcome=outcome,
        provider_sid=f"SM{target.id:016d}{attempt_no:016d}",
        created_at=created_at,
        updated_at=created_at,
    )
    session.add(attempt)
    session.flush()
    return attempt


def add_recording(
    session: Session, call: Interaction, sid: str, storage_path: str | None
) -> CallRecording:
    """A downloaded (``storage_path``) or not yet downloaded recording of ``call``."""
    row = CallRecording(
        interaction_id=call.id,
        sid=sid,
        url=f"https://api.example/Recordings/{sid}",
        duration_s=3,
        channels=2,
        status="completed",
        storage_path=storage_path,
    )
    session.add(row)
    session.flush()
    return row
