"""REST API over the CRM: consumers, accounts, their history (machinery of :mod:`web.api_common`).

Every route needs ``consumers.read`` and answers within the user's regions
(:mod:`crm_store.consumer_queries`): a consumer or account of another region is 404, exactly
like one that does not exist, and never appears in a search.

Routes::

    GET /api/consumers?q=                     search: account number, phone, IVR code, name
    GET /api/consumers/<id>                   a consumer with their accounts
    GET /api/consumers/<id>/interactions      their contact history, newest first (keyset)
    GET /api/accounts/<number>                consumer, address, region, phones, meters, balance
    GET /api/accounts/<number>/readings       meter readings, newest first (?meter=serial)
    GET /api/accounts/<number>/balance        the balance (?as_of=YYYY-MM-DD)
    GET /api/accounts/<number>/charges        charges, latest due first
    GET /api/accounts/<number>/payments       payments, latest first
    GET /api/interactions/<id>                one interaction: IVR path, transcripts, recordings
    GET /api/recordings/<sid>                 a recording's audio (WAV; Range requests work)
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from flask import Response, request
from pydantic import AwareDatetime, BaseModel, Field
from spectree import Response as Responses

from crm_store import consumer_queries as crm
from crm_store.interactions import InteractionQuery
from ivr.recordings import read_recording
from web.api_common import (
    ErrorBody,
    PageQuery,
    api_blueprint,
    api_services,
    current_scope,
    operation,
    page_body,
    page_model,
)

bp = api_blueprint("crm_api", __name__, "/api")
CONSUMER_TAGS = ["consumers"]
ACCOUNT_TAGS = ["accounts"]
HISTORY_TAGS = ["interactions"]
READ = "consumers.read"
NOT_FOUND = (ErrorBody, "no such row, or not in your regions")


# ---------------------------------------------------------------------------- models


class AccountBrief(BaseModel):
    """An account (лицевой счёт) as lists show it."""

    number: str = Field(description="normalised")
    number_raw: str = Field(description="as the billing system writes it")
    status: Literal["active", "closed", "suspended", "restricted"]
    region: str
    timezone: str | None
    service_address: str
    ivr_code: str | None
    e_receipt: bool


class ConsumerOut(BaseModel):
    """A consumer with the accounts of theirs you see."""

    id: int
    kind: Literal["person", "organization"]
    full_name: str
    inn: str | None
    email: str | None
    created_at: datetime
    accounts: list[AccountBrief]


class ConsumerSearch(PageQuery):
    """What to look for."""

    q: str | None = Field(
        default=None,
        max_length=200,
        description="an account number, a phone (any notation), an IVR code, or part of the "
        "name (2+ characters); omit for every consumer",
    )


class ConsumerRef(BaseModel):
    """Whose account it is."""

    id: int
    kind: Literal["person", "organization"]
    full_name: str


class PhoneOut(BaseModel):
    """A phone linked to the account."""

    phone: str = Field(description="E.164")
    verified: bool
    source: str


class MeterOut(BaseModel):
    """An electricity meter of the account."""

    id: int
    serial: str
    capacity: int = Field(description="digits the meter shows")
    zones: list[str]
    remote_read: bool
    verification_due: date | None
    installed_at: date | None


class BalanceOut(BaseModel):
    """An account's ledger on a date (money in roubles, as decimal strings)."""

    as_of: date
    charged: Decimal
    paid: Decimal
    debt: Decimal
    credit: Decimal
    overdue: Decimal
    earliest_unpaid_due: date | None
    days_overdue: int
    aging_bucket: Literal["current", "1-30", "31-90", "91+"]
    last_payment_on: date | None
    last_payment_amount: Decimal | None


class AccountOut(AccountBrief):
    """An account with its consumer, phones, meters and balance today."""

    consumer: ConsumerRef
    phones: list[PhoneOut]
    meters: list[MeterOut]
    balance: BalanceOut
    created_at: datetime


class BalanceQuery(BaseModel):
    """The date of the balance."""

    as_of: date | None = Field(default=None, description="default: today in the account's zone")


class ReadingQuery(PageQuery):
    """Which meter's readings."""

    meter: str | None = Field(default=None, max_length=64, description="a meter serial")


class ReadingOut(BaseModel):
    """One zone's reading of a meter."""

    id: int
    meter: str = Field(description="the meter's serial")
    zone: str
    value: int
    period: date = Field(description="the billing month (its first day)")
    source: str
    confidence: float | None
    consumption: int | None
    anomaly: bool
    override: bool
    rollover: bool
    submitted_at: datetime
    interaction_id: int | None


class ChargeOut(BaseModel):
    """A charge (a bill for a period)."""

    id: int
    period: date
    amount: Decimal
    due_date: date
    source: str
    created_at: datetime


class PaymentOut(BaseModel):
    """A payment."""

    id: int
    amount: Decimal
    paid_on: date
    paid_at: datetime | None
    channel: str
    agent: str | None
    external_id: str | None


class InteractionFilter(PageQuery):
    """Filters of the contact history (all optional; times with their offset, e.g.
    2026-11-20T10:00:00%2B03:00 or …Z)."""

    channel: Literal["voice", "sms", "email"] | None = None
    direction: Literal["inbound", "outbound"] | None = None
    outcome: str | None = Field(default=None, max_length=64)
    campaign_id: int | None = None
    since: AwareDatetime | None = Field(default=None, description="inclusive")
    until: AwareDatetime | None = Field(default=None, description="exclusive")
    text: str | None = Field(
        default=None, max_length=200, description="a part of the summary or of a transcript"
    )


class InteractionOut(BaseModel):
    """One contact: a call, an SMS, an e-mail."""

    id: int
    channel: Literal["voice", "sms", "email"]
    direction: Literal["inbound", "outbound"]
    status: str
    outcome: str | None
    started_at: datetime
    ended_at: datetime | None
    phone: str | None
    account_number: str | None
    consumer_id: int | None
    campaign_id: int | None
    operator: str | None
    summary: str = Field(description="for an SMS, its text")
    has_recording: bool


class StepOut(BaseModel):
    """One step of the IVR path."""

    seq: int
    step: str
    event: str
    input: str | None
    outcome: str | None
    at: datetime


class TranscriptOut(BaseModel):
    """What the recogniser heard at a step."""

    step: str
    text: str
    confidence: float | None
    decision: str | None
    at: datetime


class RecordingOut(BaseModel):
    """A whole-call recording; its audio is GET /api/recordings/{sid} while available."""

    sid: str
    status: str
    duration_s: int
    channels: int
    created_at: datetime
    available: bool
    deleted_at: datetime | None


class InteractionDetail(InteractionOut):
    """An interaction with its IVR path, transcripts and recordings."""

    data: dict[str, Any]
    steps: list[StepOut]
    transcripts: list[TranscriptOut]
    recordings: list[RecordingOut]


# ---------------------------------------------------------------------------- consumers


@bp.get("/consumers")
@operation(permission=READ, resp=Responses(HTTP_200=page_model(ConsumerOut)), tags=CONSUMER_TAGS)
def search_consumers(query: ConsumerSearch) -> dict[str, Any]:
    """Find consumers by account number, phone, IVR code or name.

    An exact account number, IVR code or phone of an account in your regions wins; otherwise
    `q` is a case-insensitive part of the name. Consumers come by id.
    """
    with api_services().db.transaction() as s:
        page = crm.search_consumers(
            s, current_scope(), query.q, limit=query.limit, cursor=query.cursor
        )
        return page_body(page, crm.consumer_as_dict)


@bp.get("/consumers/<int:consumer_id>")
@operation(
    permission=READ,
    resp=Responses(HTTP_200=ConsumerOut, HTTP_404=NOT_FOUND),
    tags=CONSUMER_TAGS,
)
def get_consumer(consumer_id: int) -> dict[str, Any]:
    """A consumer with the accounts of theirs you see."""
    with api_services().db.transaction() as s:
        return crm.consumer_as_dict(crm.get_consumer(s, current_scope(), consumer_id))


@bp.get("/consumers/<int:consumer_id>/interactions")
@operation(
    permission=READ,
    resp=Responses(HTTP_200=page_model(InteractionOut), HTTP_404=NOT_FOUND),
    tags=HISTORY_TAGS,
)
def consumer_interactions(consumer_id: int, query: InteractionFilter) -> dict[str, Any]:
    """A consumer's contact history (calls, SMS, campaign attempts), newest first."""
    filters = InteractionQuery(
        since=query.since,
        until=query.until,
        channel=query.channel,
        direction=query.direction,
        outcome=query.outcome,
        campaign_id=query.campaign_id,
        text=query.text,
    )
    with api_services().db.transaction() as s:
        page = crm.consumer_interactions(
            s, current_scope(), consumer_id, filters, limit=query.limit, cursor=query.cursor
        )
        return page_body(page, lambda item: item)


@bp.get("/interactions/<int(max=9223372036854775807):interaction_id>")
@operation(
    permission=READ,
    resp=Responses(HTTP_200=InteractionDetail, HTTP_404=NOT_FOUND),
    tags=HISTORY_TAGS,
)
def get_interaction(interaction_id: int) -> dict[str, Any]:
    """One interaction with its IVR path (steps), transcripts and recordings."""
    with api_services().db.transaction() as s:
        row = crm.get_interaction(s, current_scope(), interaction_id)
        return crm.interaction_as_dict(s, row)


@bp.get("/recordings/<sid>")
@operation(
    permission=READ,
    resp=Responses(
        HTTP_200=(None, "the WAV audio (audio/wav)"),
        HTTP_206=(None, "a byte range of it"),
        HTTP_404=(ErrorBody, "no such recording, not in your regions, or not stored (any more)"),
    ),
    tags=HISTORY_TAGS,
)
def get_recording_audio(sid: str) -> Response:
    """The audio of a call recording (WAV), from our stored copy; Range requests work.

    404 says why when there is no copy: not downloaded yet, or deleted by the retention.
    """
    services = api_services()
    with services.db.transaction() as s:
        crm.get_recording(s, current_scope(), sid)
    audio = read_recording(services, sid)
    response = Response(audio, mimetype="audio/wav")
    response.headers["Content-Disposition"] = f'inline; filename="{sid}.wav"'
    response.headers["Cache-Control"] = "private, no-store"
    response.make_conditional(request.environ, accept_ranges=True, complete_length=len(audio))
    return response


# ---------------------------------------------------------------------------- accounts


@bp.get("/accounts/<number>")
@operation(
    permission=READ,
    resp=Responses(HTTP_200=AccountOut, HTTP_404=NOT_FOUND),
    tags=ACCOUNT_TAGS,
)
def get_account(number: str) -> dict[str, Any]:
    """An account: consumer, address, region, phones, meters and the balance today."""
    services = api_services()
    with services.db.transaction() as s:
        account = crm.get_account(s, current_scope(), number)
        return crm.account_as_dict(s, account, crm.account_today(account, services.clock()))


@bp.get("/accounts/<number>/balance")
@operation(
    permission=READ,
    resp=Responses(HTTP_200=BalanceOut, HTTP_404=NOT_FOUND),
    tags=ACCOUNT_TAGS,
)
def get_balance(number: str, query: BalanceQuery) -> dict[str, Any]:
    """The account's balance: debt or credit, overdue part, aging, last payment."""
    services = api_services()
    with services.db.transaction() as s:
        account = crm.get_account(s, current_scope(), number)
        as_of = query.as_of or crm.account_today(account, services.clock())
        return crm.account_balance(s, account, as_of)


@bp.get("/accounts/<number>/readings")
@operation(
    permission=READ,
    resp=Responses(HTTP_200=page_model(ReadingOut), HTTP_404=NOT_FOUND),
    tags=ACCOUNT_TAGS,
)
def list_readings(number: str, query: ReadingQuery) -> dict[str, Any]:
    """Meter readings of the account, newest submitted first."""
    with api_services().db.transaction() as s:
        account = crm.get_account(s, current_scope(), number)
        page = crm.readings_page(
            s, account, meter=query.meter, limit=query.limit, cursor=query.cursor
        )
        return page_body(page, lambda item: item)


@bp.get("/accounts/<number>/charges")
@operation(
    permission=READ,
    resp=Responses(HTTP_200=page_model(ChargeOut), HTTP_404=NOT_FOUND),
    tags=ACCOUNT_TAGS,
)
def list_charges(number: str, query: PageQuery) -> dict[str, Any]:
    """Charges of the account, latest due date first."""
    with api_services().db.transaction() as s:
        account = crm.get_account(s, current_scope(), number)
        page = crm.charges_page(s, account, limit=query.limit, cursor=query.cursor)
        return page_body(page, lambda item: item)


@bp.get("/accounts/<number>/payments")
@operation(
    permission=READ,
    resp=Responses(HTTP_200=page_model(PaymentOut), HTTP_404=NOT_FOUND),
    tags=ACCOUNT_TAGS,
)
def list_payments(number: str, query: PageQuery) -> dict[str, Any]:
    """Payments on the account, latest first."""
    with api_services().db.transaction() as s:
        account = crm.get_account(s, current_scope(), number)
        page = crm.payments_page(s, account, limit=query.limit, cursor=query.cursor)
        return page_body(page, lambda item: item)
