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

**Cost.** A page is a fixed number of queries whatever the consumer's history: the timeline
is read per account and per phone, each part one range of its index, and merged, so the
10,000th interaction costs what the first does; the 360 blocks take one query each for all
accounts (docs/benchmarks.md, "Consumer 360 and the CRM API").

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    exists,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session, outerjoin

from crm_store import audit
from crm_store.access import Scope
from crm_store.audit import AUDITED, acting_as
from crm_store.consent import contact_kind, normalize_contact
from crm_store.consumer_queries import (
    MERGE_LIMIT,
    ConsumerCard,
    account_params,
    account_parts,
    after_key,
    get_consumer,
    newest_parts,
)
from crm_store.contact_lists import ConsentEntry, DncEntry, consent_entry
from crm_store.errors import InvalidInput, NotFound
from crm_store.interactions import finish_interaction, start_interaction
from crm_store.ledger import Balance, compute_balance, to_money
from crm_store.models import (
    Account,
    AccountPhone,
    AuditLog,
    CallRecording,
    Campaign,
    CampaignTarget,
    Case,
    Charge,
    Consent,
    Consumer,
    ContactAttempt,
    DoNotContact,
    Interaction,
    InteractionStep,
    Meter,
    MeterReading,
    Payment,
    PhoneNumber,
    Transcript,
    utcnow,
)
from crm_store.paging import KeysetPage, check_limit, decode_cursor, page_of
from crm_store.visibility import interaction_clause

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
#: Do-not-contact entries and consent records shown per contact value.
CONTACT_ENTRIES = 100

L = TypeVar("L", Charge, Payment)


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


@dataclass(frozen=True)
class _Visible:
    """A visible consumer with their visible accounts (``card``), the phones of each account
    and of all of them each once (as :func:`consumer_phones`), verified first."""

    card: ConsumerCard
    phones_of: dict[int, list[str]]
    phones: list[str]


def _visible(session: Session, scope: Scope, consumer_id: int) -> _Visible:
    """What :func:`~crm_store.consumer_queries.get_consumer` gives (:class:`NotFound` the
    same way) and the accounts' phones, in one query."""
    joined = (
        outerjoin(
            Consumer,
            Account,
            and_(Account.consumer_id == Consumer.id, scope.region_clause(Account.region)),
        )
        .outerjoin(AccountPhone, AccountPhone.account_id == Account.id)
        .outerjoin(PhoneNumber, PhoneNumber.id == AccountPhone.phone_id)
    )
    rows = session.execute(
        select(Consumer, Account, PhoneNumber.e164, PhoneNumber.verified, PhoneNumber.id)
        .select_from(joined)
        .where(Consumer.id == consumer_id)
        .order_by(Account.id)
    ).all()
    if not rows or (rows[0][1] is None and not scope.all_regions):
        raise NotFound(f"consumer {consumer_id} does not exist")
    accounts = list({row[1].id: row[1] for row in rows if row[1] is not None}.values())
    linked = sorted(
        (not verified, phone_id, account.id, e164)
        for _, account, e164, verified, phone_id in rows
        if e164 is not None
    )
    phones_of: dict[int, list[str]] = {account.id: [] for account in accounts}
    for _, _, account_id, e164 in linked:
        phones_of[account_id].append(e164)
    return _Visible(
        ConsumerCard(rows[0][0], accounts),
        phones_of,
        list(dict.fromkeys(e164 for *_, e164 in linked)),
    )


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


def _row_clause(scope: Scope) -> ColumnElement[bool]:
    """:func:`timeline_clause` for looking up one interaction: the same three cases as
    correlated ``EXISTS`` (a few index probes for the row, where the ``IN`` lists of the
    list form would collect every visible account and phone first)."""
    if scope.all_regions:
        return true()
    region = scope.region_clause(Account.region)
    unlinked = Interaction.account_id.is_(None)
    return or_(
        and_(
            Interaction.account_id.is_not(None),
            exists().where(Account.id == Interaction.account_id, region),
        ),
        and_(
            unlinked,
            Interaction.consumer_id.is_not(None),
            exists().where(Account.consumer_id == Interaction.consumer_id, region),
        ),
        and_(
            unlinked,
            Interaction.consumer_id.is_(None),
            select(PhoneNumber.id)
            .join(AccountPhone, AccountPhone.phone_id == PhoneNumber.id)
            .join(Account, Account.id == AccountPhone.account_id)
            .where(PhoneNumber.e164 == Interaction.phone, region)
            .exists(),
        ),
    )


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


@lru_cache(maxsize=256)
def _timeline_statement(
    accounts: int, phones: int, channel: str | None, after: bool
) -> Select[Interaction]:
    """The timeline's SELECT for ``accounts`` visible accounts and ``phones`` phones (``-1``:
    more than :data:`~crm_store.consumer_queries.MERGE_LIMIT`, given as the lists
    ``accounts`` / ``phones``), built once per shape; the values are bind parameters:
    ``a0``…, ``p0``…, ``consumer``, ``channel``, ``after_at``/``after_id`` (with ``after``:
    the cursor's key) and ``limit``.

    The interactions are read in parts, each newest first from one index range: per visible
    account (``(account_id, started_at)``), those naming the consumer but no account
    (``ix_interactions_consumer_unlinked``), those naming nobody made from or to a phone of
    the visible accounts (``ix_interactions_phone_unlinked``, per phone), merged by
    :func:`~crm_store.consumer_queries.newest_first`.
    """
    unlinked = Interaction.account_id.is_(None)
    nobody = and_(unlinked, Interaction.consumer_id.is_(None))
    wheres = account_parts(accounts)
    wheres.append(and_(unlinked, Interaction.consumer_id == bindparam("consumer")))
    if phones < 0:
        wheres.append(and_(nobody, Interaction.phone.in_(bindparam("phones", expanding=True))))
    else:
        wheres.extend(and_(nobody, Interaction.phone == bindparam(f"p{n}")) for n in range(phones))
    conditions: list[ColumnElement[bool]] = []
    if channel == "note":
        conditions.append(_is_note())
    elif channel is not None:
        conditions.append(Interaction.channel == bindparam("channel"))
    if after:
        conditions.append(after_key())
    return newest_parts(wheres, conditions)


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
    visible = _visible(session, scope, consumer_id)
    card, phones = visible.card, visible.phones
    if channel not in (None, "note", "voice", "sms", "email"):
        raise InvalidInput(f"unknown channel {channel!r}")
    params: dict[str, Any] = {"consumer": card.consumer.id, "limit": limit + 1}
    if channel is not None:
        params["channel"] = channel
    if cursor:
        params["after_at"], params["after_id"] = decode_cursor(cursor, (datetime, int))
    accounts = [a.id for a in card.accounts]
    params.update(account_params(accounts))
    if len(phones) > MERGE_LIMIT:
        params["phones"] = phones
    else:
        params.update({f"p{n}": phone for n, phone in enumerate(phones)})
    statement = _timeline_statement(
        len(accounts) if len(accounts) <= MERGE_LIMIT else -1,
        len(phones) if len(phones) <= MERGE_LIMIT else -1,
        "note" if channel == "note" else ("value" if channel else None),
        bool(cursor),
    )
    rows = list(session.scalars(statement, params))
    page = page_of(rows, limit, lambda r: (r.started_at, r.id))
    numbers = {a.id: a.number for a in card.accounts}
    return KeysetPage(timeline_items(session, page.items, numbers), page.next_cursor)


def _is_note() -> ColumnElement[bool]:
    return and_(
        Interaction.operator.is_not(None), Interaction.data["kind"].as_string() == NOTE_KIND
    )


def timeline_items(
    session: Session, rows: Sequence[Interaction], numbers: Mapping[int, str] | None = None
) -> list[TimelineItem]:
    """The interactions with their steps, transcripts, recordings, accounts and campaigns
    (a few queries for the whole page; ``numbers``: account numbers known already)."""
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
    known = dict(numbers or {})
    missing = {r.account_id for r in rows if r.account_id is not None} - set(known)
    if missing:
        for key, number in session.execute(
            select(Account.id, Account.number).where(Account.id.in_(missing))
        ):
            known[key] = number
    campaign_ids = {r.campaign_id for r in rows if r.campaign_id is not None}
    names: dict[int, str] = {}
    if campaign_ids:
        for key, name in session.execute(
            select(Campaign.id, Campaign.name).where(Campaign.id.in_(campaign_ids))
        ):
            names[key] = name
    return [
        TimelineItem(
            interaction=r,
            account_number=known.get(r.account_id) if r.account_id is not None else None,
            campaign_name=names.get(r.campaign_id) if r.campaign_id is not None else None,
            steps=steps.get(r.id, []),
            transcripts=heard.get(r.id, []),
            recordings=recorded.get(r.id, []),
            matched_by_phone=r.account_id is None and r.consumer_id is None,
        )
        for r in rows
    ]


def visible_recording(session: Session, scope: Scope, sid: str) -> CallRecording:
    """Recording ``sid`` when its call is in a timeline ``scope`` sees, else :class:`NotFound`.

    A SID with a NUL (PostgreSQL cannot compare it) is not looked up: :class:`NotFound`.
    """
    if "\x00" in sid:
        raise NotFound(f"recording {sid!r} does not exist")
    row = session.scalars(
        select(CallRecording)
        .join(Interaction, Interaction.id == CallRecording.interaction_id)
        .where(CallRecording.sid == sid, _row_clause(scope))
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


def _account_views(
    session: Session, accounts: Sequence[Account], phones: Mapping[int, list[str]], today: date
) -> list[AccountView]:
    """The views of the accounts: meters with each zone's :data:`RECENT_READINGS` readings,
    the :data:`RECENT_LEDGER` latest charges and payments and the balance as of ``today``
    (what :func:`crm_store.ledger.balance` gives), a few queries for all of them."""
    ids = [a.id for a in accounts]
    if not ids:
        return []
    meters, readings = _meters(session, ids)
    charged = _ledger(
        session, Charge, Charge.due_date, lambda c: c.due_date, lambda c: c.period <= today, ids
    )
    paid = _ledger(
        session, Payment, Payment.paid_on, lambda p: p.paid_on, lambda p: p.paid_on <= today, ids
    )
    return [
        AccountView(
            account=account,
            phones=phones.get(account.id, []),
            balance=compute_balance(
                account.id, charged.counted[account.id], paid.counted[account.id], today
            ),
            meters=[
                MeterView(
                    meter, [ZoneReadings(z, readings.get((meter.id, z), [])) for z in meter.zones]
                )
                for meter in meters[account.id]
            ],
            charges=charged.recent[account.id],
            payments=paid.recent[account.id],
        )
        for account in accounts
    ]


def _meters(
    session: Session, account_ids: list[int]
) -> tuple[dict[int, list[Meter]], dict[tuple[int, str], list[MeterReading]]]:
    """The accounts' meters, and the :data:`RECENT_READINGS` latest readings of each meter
    and zone, newest first (one query: each meter joined to its ranked readings)."""
    rank = (
        func.row_number()
        .over(
            partition_by=(MeterReading.meter_id, MeterReading.zone),
            order_by=(MeterReading.submitted_at.desc(), MeterReading.id.desc()),
        )
        .label("rank")
    )
    ranked = (
        select(MeterReading.id, MeterReading.meter_id, rank)
        .join(Meter, Meter.id == MeterReading.meter_id)
        .where(Meter.account_id.in_(account_ids))
        .subquery()
    )
    rows = session.execute(
        select(Meter, MeterReading)
        .outerjoin(ranked, and_(ranked.c.meter_id == Meter.id, ranked.c.rank <= RECENT_READINGS))
        .outerjoin(MeterReading, MeterReading.id == ranked.c.id)
        .where(Meter.account_id.in_(account_ids))
        .order_by(
            Meter.account_id, Meter.id, MeterReading.submitted_at.desc(), MeterReading.id.desc()
        )
    ).all()
    meters: dict[int, list[Meter]] = defaultdict(list)
    readings: dict[tuple[int, str], list[MeterReading]] = defaultdict(list)
    for meter, reading in rows:
        group = meters[meter.account_id]
        if not group or group[-1] is not meter:
            group.append(meter)
        if reading is not None:
            readings[(meter.id, reading.zone)].append(reading)
    return meters, readings


@dataclass(frozen=True)
class _Ledger(Generic[L]):
    """Charges or payments of some accounts: the rows a balance counts, the latest rows."""

    counted: dict[int, list[tuple[date, Decimal]]]
    recent: dict[int, list[L]]


def _ledger(
    session: Session,
    model: type[L],
    dated: Any,
    date_of: Callable[[L], date],
    counted: Callable[[L], bool],
    account_ids: list[int],
) -> _Ledger[L]:
    """Charges or payments of the accounts, in one query (``dated``: the column they are
    dated by, ``date_of`` its value): ``(date, amount)`` of the rows the balance counts
    (``counted``), in the order :func:`crm_store.ledger.balance` reads them, and the
    :data:`RECENT_LEDGER` latest rows of each account (by date and id, descending)."""
    rows: dict[int, list[L]] = {i: [] for i in account_ids}
    for row in session.scalars(
        select(model).where(model.account_id.in_(account_ids)).order_by(dated, model.id)
    ):
        rows[row.account_id].append(row)
    return _Ledger(
        {
            i: [(date_of(row), to_money(row.amount)) for row in ledger if counted(row)]
            for i, ledger in rows.items()
        },
        {i: ledger[::-1][:RECENT_LEDGER] for i, ledger in rows.items()},
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
    visible = CampaignTarget.account_id.in_(_visible_account_ids(scope, consumer_id))
    return _targets(session, visible, limit)


def _targets(session: Session, accounts: ColumnElement[bool], limit: int) -> list[TargetView]:
    """Campaign targets of the ``accounts`` (a condition on the target), newest first, with
    their attempts (one query: the page of targets joined to their attempts)."""
    page = (
        select(CampaignTarget.id)
        .where(accounts)
        .order_by(CampaignTarget.id.desc())
        .limit(limit)
        .subquery()
    )
    rows = session.execute(
        select(CampaignTarget, Campaign, Account.number, ContactAttempt)
        .join(page, page.c.id == CampaignTarget.id)
        .join(Campaign, Campaign.id == CampaignTarget.campaign_id)
        .join(Account, Account.id == CampaignTarget.account_id)
        .outerjoin(ContactAttempt, ContactAttempt.target_id == CampaignTarget.id)
        .order_by(CampaignTarget.id.desc(), ContactAttempt.attempt_no.desc())
    ).all()
    views: dict[int, TargetView] = {}
    for target, campaign, number, attempt in rows:
        view = views.setdefault(target.id, TargetView(target, campaign, str(number), []))
        if attempt is not None:
            view.attempts.append(attempt)
    return list(views.values())


def consumer_contacts(session: Session, scope: Scope, consumer_id: int) -> Contacts:
    """The consumer's phones and e-mail with their do-not-contact entries and consents."""
    visible = _visible(session, scope, consumer_id)
    return _contacts(session, visible.phones, visible.card.consumer.email or None)


def _contacts(session: Session, phones: list[str], email: str | None) -> Contacts:
    """The entries :func:`~crm_store.contact_lists.list_dnc` gives for each phone and
    :func:`~crm_store.contact_lists.list_consents` for each phone and the e-mail (their
    first :data:`CONTACT_ENTRIES`, with the reasons from the audit log), in three queries
    for all of them instead of two per value."""
    stored: dict[str, str] = {}
    for value in [*phones, *([email] if email else [])]:
        try:
            stored[value] = normalize_contact(contact_kind(value), value)
        except InvalidInput:
            continue  # a malformed stored e-mail (old data) has no entries: the page still shows
    values = list(stored)
    checked = [p for p in phones if p in stored]
    dnc_rows: dict[str, list[DoNotContact]] = defaultdict(list)
    if checked:
        for entry in session.scalars(
            select(DoNotContact)
            .where(DoNotContact.value.in_({stored[p] for p in checked}))
            .order_by(DoNotContact.id.desc())
        ):
            dnc_rows[entry.value].append(entry)
    consent_rows: dict[str, list[Consent]] = defaultdict(list)
    for row in session.scalars(
        select(Consent).where(Consent.value.in_(set(stored.values()))).order_by(Consent.id.desc())
    ):
        consent_rows[row.value].append(row)
    dnc_of = {p: dnc_rows[stored[p]][:CONTACT_ENTRIES] for p in checked}
    consents_of = {v: consent_rows[stored[v]][:CONTACT_ENTRIES] for v in values}
    audits = _last_audits(
        session,
        {r.id for rows in dnc_of.values() for r in rows},
        {r.id for rows in consents_of.values() for r in rows},
    )
    dnc = [
        DncEntry(
            id=r.id,
            phone=r.value,
            channel=r.channel,
            source=r.reason,
            reason=logged.reason if (logged := audits.get((DoNotContact, r.id))) else None,
            created_by=r.created_by,
            created_at=r.created_at,
            campaign_id=r.campaign_id,
        )
        for phone in checked
        for r in dnc_of[phone]
    ]
    now = utcnow()
    consents = [
        consent_entry(r, audits.get((Consent, r.id)), now)
        for value in values
        for r in consents_of[value]
    ]
    dnc.sort(key=lambda e: e.created_at, reverse=True)
    consents.sort(key=lambda e: (e.given_at, e.id), reverse=True)
    return Contacts(phones, email, dnc, consents)


def _last_audits(
    session: Session, dnc_ids: set[int], consent_ids: set[int]
) -> dict[tuple[type[Any], int], AuditLog]:
    """The latest audit row of each do-not-contact entry (its insert, which carries the
    reason given) and of each consent record, by ``(model, id)``."""
    where = []
    if dnc_ids:
        where.append(
            and_(
                AuditLog.entity == AUDITED[DoNotContact],
                AuditLog.entity_id.in_([str(i) for i in dnc_ids]),
                AuditLog.action == "insert",
            )
        )
    if consent_ids:
        where.append(
            and_(
                AuditLog.entity == AUDITED[Consent],
                AuditLog.entity_id.in_([str(i) for i in consent_ids]),
            )
        )
    if not where:
        return {}
    models = {AUDITED[DoNotContact]: DoNotContact, AUDITED[Consent]: Consent}
    latest: dict[tuple[type[Any], int], AuditLog] = {}
    for row in session.scalars(select(AuditLog).where(or_(*where)).order_by(AuditLog.id)):
        latest[(models[row.entity], int(row.entity_id))] = row  # ordered: the last one wins
    return latest


def consumer_cases(
    session: Session, scope: Scope, consumer_id: int, *, limit: int = 50
) -> list[Case]:
    """Visible cases of the consumer (on their visible accounts, or naming them), newest first."""
    accounts = list(session.scalars(_visible_account_ids(scope, consumer_id)))
    return _cases(session, consumer_id, accounts, scope.all_regions or bool(accounts), limit)


def _cases(
    session: Session, consumer_id: int, accounts: list[int], consumer_visible: bool, limit: int
) -> list[Case]:
    """Cases on ``accounts`` (visible ones), and, when the consumer is visible, those naming
    the consumer but no account (what :func:`crm_store.visibility.case_clause` lets through),
    newest first."""
    where: list[ColumnElement[bool]] = []
    if accounts:
        where.append(Case.account_id.in_(accounts))
    if consumer_visible:
        where.append(and_(Case.account_id.is_(None), Case.consumer_id == consumer_id))
    if not where:
        return []
    return list(
        session.scalars(select(Case).where(or_(*where)).order_by(Case.id.desc()).limit(limit))
    )


def consumer_360(session: Session, scope: Scope, consumer_id: int, today: date) -> Consumer360:
    """The consumer (visible, else :class:`NotFound`) with accounts, cases, campaigns and
    contacts; balances as of ``today``. A few queries in all, however many accounts, meters
    and interactions the consumer has."""
    visible = _visible(session, scope, consumer_id)
    card = visible.card
    ids = [a.id for a in card.accounts]
    return Consumer360(
        card=card,
        accounts=_account_views(session, card.accounts, visible.phones_of, today),
        cases=_cases(session, consumer_id, ids, True, 50),
        targets=_targets(session, CampaignTarget.account_id.in_(ids), 20),
        contacts=_contacts(session, visible.phones, card.consumer.email or None),
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
            _row_clause(scope),
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
