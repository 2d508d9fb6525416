"""Consumer 360 and the operator desk: what the console shows of one consumer, within a
:class:`~crm_store.access.Scope`, and the operator's notes.

A consumer is visible when one of their accounts is (:func:`crm_store.visibility.consumer_clause`);
otherwise every function here raises :class:`~crm_store.errors.NotFound`, as for a consumer
that does not exist. Of a visible consumer only the visible accounts are shown.

**The timeline** (:func:`timeline`) is every interaction of the consumer, newest first, in
keyset pages: those on their visible accounts, those naming the consumer but no account, and
those naming neither account nor consumer but made from or to a phone of their visible
accounts (an SMS the IVR sent to the caller, a call from a caller who never gave an account
number: ``matched_by_phone``). The same rule decides whether a user may play a recording
(:func:`visible_recording`). Each item carries its IVR path, recognition results,
recordings, its campaign and, for an operator's note, the note.

**Campaigns** (:func:`campaign_targets`): the consumer's accounts as campaign targets, with
their state, skip reason and attempts — attempts that never reached the provider have no
interaction, so they appear here only.

**Operator notes** (:func:`record_operator_note`): a note and an outcome from
:data:`OPERATOR_OUTCOMES` become an interaction (channel ``voice``; the direction of the call
it follows, else ``inbound``; ``operator`` the user; ``data.kind = "operator_note"``; linked
to the call in ``data.call_interaction_id``), audited as entity ``interaction``.

**Handoffs** (:func:`transferred_calls`): calls the IVR handed to people (outcome
``transferred_*``) with the context it gathered (``Interaction.data["handoff"]``: account,
reason, last step, the values collected), newest first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select, true
from sqlalchemy.orm import Session

from crm_store import audit
from crm_store.access import Scope
from crm_store.audit import acting_as
from crm_store.consumer_queries import ConsumerCard, get_consumer
from crm_store.contact_lists import ConsentEntry, DncEntry, list_consents, list_dnc
from crm_store.errors import InvalidInput, NotFound
from crm_store.interactions import finish_interaction, start_interaction
from crm_store.ledger import Balance, balance
from crm_store.models import (
    Account,
    AccountPhone,
    CallRecording,
    Campaign,
    CampaignTarget,
    Case,
    Charge,
    Consumer,
    ContactAttempt,
    Interaction,
    InteractionStep,
    Meter,
    MeterReading,
    Payment,
    PhoneNumber,
    Transcript,
)
from crm_store.paging import KeysetPage, after, check_limit, decode_cursor, page_of
from crm_store.visibility import case_clause, interaction_clause

#: What an operator may record as the outcome of their work with a consumer.
OPERATOR_OUTCOMES: tuple[str, ...] = (
    "operator_consulted",
    "operator_reading_taken",
    "operator_payment_promised",
    "operator_complaint",
    "operator_callback",
    "operator_escalated",
    "operator_wrong_person",
)
NOTE_KIND = "operator_note"
MAX_NOTE_LENGTH = 4000
AUDIT_ENTITY = "interaction"
#: Readings and ledger rows shown per account on the 360 page.
RECENT_READINGS = 12
RECENT_LEDGER = 12
#: How far back the desk lists transferred calls.
HANDOFF_HOURS = 12


# ---------------------------------------------------------------------------- phones


def _visible_account_ids(scope: Scope, consumer_id: int) -> Select[int]:
    return select(Account.id).where(
        Account.consumer_id == consumer_id, scope.region_clause(Account.region)
    )


def consumer_phones(session: Session, scope: Scope, consumer_id: int) -> list[str]:
    """The phones (E.164) of the consumer's visible accounts, verified first."""
    rows = session.execute(
        select(PhoneNumber.e164, PhoneNumber.verified)
        .join(AccountPhone, AccountPhone.phone_id == PhoneNumber.id)
        .where(AccountPhone.account_id.in_(_visible_account_ids(scope, consumer_id)))
        .order_by(PhoneNumber.verified.desc(), PhoneNumber.id)
    ).all()
    return list(dict.fromkeys(e164 for e164, _ in rows))


def _phone_clause(scope: Scope) -> ColumnElement[bool]:
    """Interactions naming no account or consumer, made from or to a visible account's phone."""
    phones = (
        select(PhoneNumber.e164)
        .join(AccountPhone, AccountPhone.phone_id == PhoneNumber.id)
        .join(Account, Account.id == AccountPhone.account_id)
        .where(scope.region_clause(Account.region))
    )
    return and_(
        Interaction.account_id.is_(None),
        Interaction.consumer_id.is_(None),
        Interaction.phone.in_(phones),
    )


def timeline_clause(scope: Scope) -> ColumnElement[bool]:
    """Interactions ``scope`` sees in timelines (:func:`interaction_clause`, and those
    naming nobody made from or to a phone of a visible account)."""
    if scope.all_regions:
        return true()
    return or_(interaction_clause(scope), _phone_clause(scope))


# ---------------------------------------------------------------------------- the timeline


@dataclass(frozen=True)
class TimelineItem:
    """One interaction of a consumer's timeline with what the page shows of it."""

    interaction: Interaction
    account_number: str | None
    campaign_name: str | None
    steps: list[InteractionStep] = field(default_factory=list)
    transcripts: list[Transcript] = field(default_factory=list)
    recordings: list[CallRecording] = field(default_factory=list)
    matched_by_phone: bool = False

    @property
    def kind(self) -> str:
        """``note`` (an operator's note), ``call``, ``sms`` or ``email``."""
        data = self.interaction.data or {}
        if data.get("kind") == NOTE_KIND:
            return "note"
        return {"voice": "call"}.get(self.interaction.channel, self.interaction.channel)

    @property
    def handoff(self) -> dict[str, Any] | None:
        """The context the IVR handed the call to people with (None: not transferred)."""
        context = (self.interaction.data or {}).get("handoff")
        return dict(context) if isinstance(context, dict) else None


def _timeline_where(scope: Scope, consumer_id: int) -> ColumnElement[bool]:
    mine = _visible_account_ids(scope, consumer_id)
    phones = (
        select(PhoneNumber.e164)
        .join(AccountPhone, AccountPhone.phone_id == PhoneNumber.id)
        .where(AccountPhone.account_id.in_(mine))
    )
    return or_(
        Interaction.account_id.in_(mine),
        and_(Interaction.account_id.is_(None), Interaction.consumer_id == consumer_id),
        and_(
            Interaction.account_id.is_(None),
            Interaction.consumer_id.is_(None),
            Interaction.phone.in_(phones),
        ),
    )


def timeline(
    session: Session,
    scope: Scope,
    consumer_id: int,
    *,
    channel: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> KeysetPage[TimelineItem]:
    """The consumer's interactions, newest first (``channel``: ``voice``, ``sms``, ``email``
    or ``note``: operators' notes only)."""
    check_limit(limit)
    get_consumer(session, scope, consumer_id)
    query = select(Interaction).where(_timeline_where(scope, consumer_id))
    if channel == "note":
        query = query.where(_is_note())
    elif channel is not None:
        if channel not in ("voice", "sms", "email"):
            raise InvalidInput(f"unknown channel {channel!r}")
        query = query.where(Interaction.channel == channel)
    columns = (Interaction.started_at, Interaction.id)
    if cursor:
        query = query.where(after(columns, decode_cursor(cursor, (datetime, int))))
    rows = list(session.scalars(query.order_by(*(c.desc() for c in columns)).limit(limit + 1)))
    page = page_of(rows, limit, lambda r: (r.started_at, r.id))
    return KeysetPage(timeline_items(session, page.items), page.next_cursor)


def _is_note() -> ColumnElement[bool]:
    return and_(
        Interaction.operator.is_not(None), Interaction.data["kind"].as_string() == NOTE_KIND
    )


def timeline_items(session: Session, rows: Sequence[Interaction]) -> list[TimelineItem]:
    """The interactions with their steps, transcripts, recordings, accounts and campaigns
    (a few queries for the whole page)."""
    ids = [r.id for r in rows]
    if not ids:
        return []
    steps: dict[int, list[InteractionStep]] = defaultdict(list)
    for step in session.scalars(
        select(InteractionStep)
        .where(InteractionStep.interaction_id.in_(ids))
        .order_by(InteractionStep.interaction_id, InteractionStep.seq)
    ):
        steps[step.interaction_id].append(step)
    heard: dict[int, list[Transcript]] = defaultdict(list)
    for transcript in session.scalars(
        select(Transcript).where(Transcript.interaction_id.in_(ids)).order_by(Transcript.id)
    ):
        heard[transcript.interaction_id].append(transcript)
    recorded: dict[int, list[CallRecording]] = defaultdict(list)
    for recording in session.scalars(
        select(CallRecording)
        .where(CallRecording.interaction_id.in_(ids))
        .order_by(CallRecording.id)
    ):
        recorded[recording.interaction_id].append(recording)
    account_ids = {r.account_id for r in rows if r.account_id is not None}
    numbers: dict[int, str] = {
        key: value
        for key, value in session.execute(
            select(Account.id, Account.number).where(Account.id.in_(account_ids))
        )
    }
    campaign_ids = {r.campaign_id for r in rows if r.campaign_id is not None}
    names: dict[int, str] = {
        key: value
        for key, value in session.execute(
            select(Campaign.id, Campaign.name).where(Campaign.id.in_(campaign_ids))
        )
    }
    return [
        TimelineItem(
            interaction=r,
            account_number=numbers.get(r.account_id) if r.account_id is not None else None,
            campaign_name=names.get(r.campaign_id) if r.campaign_id is not None else None,
            steps=steps.get(r.id, []),
            transcripts=heard.get(r.id, []),
            recordings=recorded.get(r.id, []),
            matched_by_phone=r.account_id is None and r.consumer_id is None,
        )
        for r in rows
    ]


def visible_recording(session: Session, scope: Scope, sid: str) -> CallRecording:
    """Recording ``sid`` when its call is in a timeline ``scope`` sees, else :class:`NotFound`."""
    row = session.scalars(
        select(CallRecording)
        .join(Interaction, Interaction.id == CallRecording.interaction_id)
        .where(CallRecording.sid == sid, timeline_clause(scope))
    ).one_or_none()
    if row is None:
        raise NotFound(f"recording {sid!r} does not exist")
    return row


# ---------------------------------------------------------------------------- accounts


@dataclass(frozen=True)
class ZoneReadings:
    """A meter zone's latest readings, newest first."""

    zone: str
    readings: list[MeterReading]


@dataclass(frozen=True)
class MeterView:
    """A meter with its readings by zone."""

    meter: Meter
    zones: list[ZoneReadings]


@dataclass(frozen=True)
class AccountView:
    """One visible account of the consumer: phones, balance, meters, charges, payments."""

    account: Account
    phones: list[str]
    balance: Balance
    meters: list[MeterView]
    charges: list[Charge]
    payments: list[Payment]


def _account_view(session: Session, account: Account, today: date) -> AccountView:
    phones = list(
        session.scalars(
            select(PhoneNumber.e164)
            .join(AccountPhone, AccountPhone.phone_id == PhoneNumber.id)
            .where(AccountPhone.account_id == account.id)
            .order_by(PhoneNumber.verified.desc(), PhoneNumber.id)
        )
    )
    meters = []
    for meter in account.meters:
        zones = []
        for zone in meter.zones:
            readings = list(
                session.scalars(
                    select(MeterReading)
                    .where(MeterReading.meter_id == meter.id, MeterReading.zone == zone)
                    .order_by(MeterReading.submitted_at.desc(), MeterReading.id.desc())
                    .limit(RECENT_READINGS)
                )
            )
            zones.append(ZoneReadings(zone, readings))
        meters.append(MeterView(meter, zones))
    charges = list(
        session.scalars(
            select(Charge)
            .where(Charge.account_id == account.id)
            .order_by(Charge.due_date.desc(), Charge.id.desc())
            .limit(RECENT_LEDGER)
        )
    )
    payments = list(
        session.scalars(
            select(Payment)
            .where(Payment.account_id == account.id)
            .order_by(Payment.paid_on.desc(), Payment.id.desc())
            .limit(RECENT_LEDGER)
        )
    )
    return AccountView(
        account=account,
        phones=phones,
        balance=balance(session, account.id, today),
        meters=meters,
        charges=charges,
        payments=payments,
    )


@dataclass(frozen=True)
class TargetView:
    """The consumer's account as a campaign target, with its attempts (newest first)."""

    target: CampaignTarget
    campaign: Campaign
    account_number: str
    attempts: list[ContactAttempt]


@dataclass(frozen=True)
class Contacts:
    """The consumer's contacts (phones of visible accounts, e-mail) and their entries on the
    do-not-contact list and in consents."""

    phones: list[str]
    email: str | None
    dnc: list[DncEntry]
    consents: list[ConsentEntry]

    @property
    def values(self) -> list[str]:
        """Every contact value (phones, then the e-mail)."""
        return self.phones + ([self.email] if self.email else [])


@dataclass(frozen=True)
class Consumer360:
    """Everything the 360 page shows besides the timeline."""

    card: ConsumerCard
    accounts: list[AccountView]
    cases: list[Case]
    targets: list[TargetView]
    contacts: Contacts


def campaign_targets(
    session: Session, scope: Scope, consumer_id: int, *, limit: int = 20
) -> list[TargetView]:
    """The consumer's visible accounts as campaign targets, newest first, with attempts."""
    rows = session.execute(
        select(CampaignTarget, Campaign, Account.number)
        .join(Campaign, Campaign.id == CampaignTarget.campaign_id)
        .join(Account, Account.id == CampaignTarget.account_id)
        .where(CampaignTarget.account_id.in_(_visible_account_ids(scope, consumer_id)))
        .order_by(CampaignTarget.id.desc())
        .limit(limit)
    ).all()
    ids = [target.id for target, _, _ in rows]
    attempts: dict[int, list[ContactAttempt]] = defaultdict(list)
    if ids:
        for attempt in session.scalars(
            select(ContactAttempt)
            .where(ContactAttempt.target_id.in_(ids))
            .order_by(ContactAttempt.attempt_no.desc())
        ):
            attempts[attempt.target_id].append(attempt)
    return [
        TargetView(target, campaign, str(number), attempts.get(target.id, []))
        for target, campaign, number in rows
    ]


def consumer_contacts(session: Session, scope: Scope, consumer_id: int) -> Contacts:
    """The consumer's phones and e-mail with their do-not-contact entries and consents."""
    card = get_consumer(session, scope, consumer_id)
    phones = consumer_phones(session, scope, consumer_id)
    email = card.consumer.email or None
    dnc: list[DncEntry] = []
    consents: list[ConsentEntry] = []
    for phone in phones:
        dnc.extend(list_dnc(session, phone=phone, limit=100).items)
    for value in phones + ([email] if email else []):
        consents.extend(list_consents(session, value=value, limit=100).items)
    dnc.sort(key=lambda e: e.created_at, reverse=True)
    consents.sort(key=lambda e: (e.given_at, e.id), reverse=True)
    return Contacts(phones, email, dnc, consents)


def consumer_cases(
    session: Session, scope: Scope, consumer_id: int, *, limit: int = 50
) -> list[Case]:
    """Visible cases of the consumer (on their visible accounts, or naming them), newest first."""
    return list(
        session.scalars(
            select(Case)
            .where(
                case_clause(scope),
                or_(
                    Case.account_id.in_(_visible_account_ids(scope, consumer_id)),
                    and_(Case.account_id.is_(None), Case.consumer_id == consumer_id),
                ),
            )
            .order_by(Case.id.desc())
            .limit(limit)
        )
    )


def consumer_360(session: Session, scope: Scope, consumer_id: int, today: date) -> Consumer360:
    """The consumer (visible, else :class:`NotFound`) with accounts, cases, campaigns and
    contacts; balances as of ``today``."""
    card = get_consumer(session, scope, consumer_id)
    return Consumer360(
        card=card,
        accounts=[_account_view(session, a, today) for a in card.accounts],
        cases=consumer_cases(session, scope, consumer_id),
        targets=campaign_targets(session, scope, consumer_id),
        contacts=consumer_contacts(session, scope, consumer_id),
    )


# ---------------------------------------------------------------------------- operator desk


@dataclass(frozen=True)
class TransferredCall:
    """A call the IVR handed to people, with the context it gathered."""

    interaction: Interaction
    context: dict[str, Any]
    account_number: str | None
    consumer_id: int | None
    consumer_name: str | None
    handled: bool


def _consumer_of_call(
    session: Session, scope: Scope, row: Interaction, context: dict[str, Any]
) -> tuple[int | None, str | None, str | None]:
    """The visible account and consumer a call is about: its own, else the account number
    the IVR gathered."""
    query = select(Account.consumer_id, Account.number).where(scope.region_clause(Account.region))
    if row.account_id is not None:
        found = session.execute(query.where(Account.id == row.account_id)).first()
    elif context.get("account_number"):
        found = session.execute(
            query.where(Account.number == str(context["account_number"]))
        ).first()
    else:
        found = None
    if found is None:
        return (row.consumer_id if row.consumer_id is not None else None), None, None
    consumer_id, number = found
    name = session.scalar(select(Consumer.full_name).where(Consumer.id == consumer_id))
    return int(consumer_id), str(number), name


def transferred_calls(
    session: Session,
    scope: Scope,
    now: datetime,
    *,
    hours: int = HANDOFF_HOURS,
    limit: int = 50,
) -> list[TransferredCall]:
    """Calls handed to people in the last ``hours`` that ``scope`` sees, newest first."""
    since = now - timedelta(hours=hours)
    rows = list(
        session.scalars(
            select(Interaction)
            .where(
                Interaction.channel == "voice",
                Interaction.outcome.like("transferred\\_%", escape="\\"),
                Interaction.started_at >= since,
                timeline_clause(scope),
            )
            .order_by(Interaction.started_at.desc(), Interaction.id.desc())
            .limit(limit)
        )
    )
    handled = _handled_calls(session, since, [r.id for r in rows])
    result = []
    for row in rows:
        context = (row.data or {}).get("handoff")
        context = dict(context) if isinstance(context, dict) else {}
        consumer_id, number, name = _consumer_of_call(session, scope, row, context)
        result.append(TransferredCall(row, context, number, consumer_id, name, row.id in handled))
    return result


def _handled_calls(session: Session, since: datetime, ids: list[int]) -> set[int]:
    """Of the calls ``ids``, those an operator's note follows."""
    if not ids:
        return set()
    followed = Interaction.data["call_interaction_id"].as_integer()
    return {
        int(call)
        for call in session.scalars(
            select(followed).where(_is_note(), Interaction.started_at >= since, followed.in_(ids))
        )
    }


def visible_call(session: Session, scope: Scope, interaction_id: int) -> Interaction:
    """The voice interaction ``interaction_id`` when ``scope`` sees it, else NotFound."""
    row = session.scalars(
        select(Interaction).where(
            Interaction.id == interaction_id,
            Interaction.channel == "voice",
            timeline_clause(scope),
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"call {interaction_id} does not exist")
    return row


def record_operator_note(
    session: Session,
    scope: Scope,
    *,
    actor: str,
    operator: str,
    consumer_id: int,
    outcome: str,
    note: str,
    account_number: str | None = None,
    call_id: int | None = None,
    now: datetime,
) -> Interaction:
    """Store an operator's note and outcome as an interaction of the consumer (audited as
    ``actor``). ``account_number``: one of the consumer's visible accounts (default: the
    call's, else the consumer's only one); ``call_id``: the transferred call it follows.
    Raises :class:`InvalidInput` for a bad outcome, note or account, :class:`NotFound` for a
    consumer or call the scope does not see."""
    if outcome not in OPERATOR_OUTCOMES:
        raise InvalidInput("выберите итог из списка")
    text = (note or "").strip()
    if len(text) > MAX_NOTE_LENGTH:
        raise InvalidInput(f"заметка длиннее {MAX_NOTE_LENGTH} символов")
    card = get_consumer(session, scope, consumer_id)
    call = visible_call(session, scope, call_id) if call_id is not None else None
    accounts = {a.number: a for a in card.accounts}
    account: Account | None = None
    if account_number:
        account = accounts.get(account_number)
        if account is None:
            raise InvalidInput("это не лицевой счёт потребителя")
    elif call is not None and call.account_id is not None:
        account = next((a for a in card.accounts if a.id == call.account_id), None)
    elif len(card.accounts) == 1:
        account = card.accounts[0]
    data: dict[str, Any] = {"kind": NOTE_KIND}
    if call is not None:
        data["call_interaction_id"] = call.id
    with acting_as(actor):
        row = start_interaction(
            session,
            channel="voice",
            direction=call.direction if call is not None else "inbound",
            phone=call.phone if call is not None else None,
            account_id=account.id if account is not None else None,
            consumer_id=consumer_id,
            operator=operator,
            started_at=now,
            status="completed",
            data=data,
        )
        finish_interaction(
            session, row.id, status="completed", outcome=outcome, ended_at=now, summary=text
        )
        audit.record(
            session,
            AUDIT_ENTITY,
            str(row.id),
            "insert",
            None,
            {
                "kind": NOTE_KIND,
                "consumer_id": consumer_id,
                "account_id": row.account_id,
                "call_interaction_id": data.get("call_interaction_id"),
                "operator": operator,
                "outcome": outcome,
                "note": text,
            },
        )
    return row
