"""ORM models of the CRM store (SQLAlchemy 2 typed declarative).

Conventions used by every table:

* Timestamps are ``DateTime(timezone=True)`` and always tz-aware UTC in Python
  (:class:`UTCDateTime` attaches UTC on SQLite, which stores no offset, and refuses naive
  datetimes on the way in).
* Money is ``Numeric(14, 2)`` and :class:`~decimal.Decimal` in Python.
* JSON is ``JSON`` (``JSONB`` on PostgreSQL).
* Enum-like columns are short strings guarded by a CHECK constraint; the allowed values are
  exported as tuples (``ACCOUNT_STATUSES`` …) so other packages can reuse them.
* Phones are E.164 strings (see :mod:`contactcenter.phones`).

Changes to consumers, accounts, phones, account-phone links, meters, readings and consents
are written to :class:`AuditLog` automatically by :mod:`crm_store.audit` (which imports this
module; its listeners are installed when the ``crm_store`` package is imported).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from contactcenter.phones import InvalidPhoneError, normalize_phone

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# ---------------------------------------------------------------------------- value sets
CONSUMER_KINDS = ("person", "organization")
ACCOUNT_STATUSES = ("active", "closed", "suspended", "restricted")
PHONE_SOURCES = ("import", "ivr", "operator", "web", "sms", "demo")
CHARGE_SOURCES = ("billing", "import", "demo", "adjustment")
READING_SOURCES = ("ivr_voice", "ivr_dtmf", "sms", "web", "operator", "ami", "import")
PAYMENT_CHANNELS = ("bank", "card", "sbp", "cash", "ivr", "web")
IMPORT_KINDS = ("consumers", "payments", "charges")
IMPORT_STATUSES = ("queued", "running", "completed", "failed")
INTERACTION_CHANNELS = ("voice", "sms", "email")
DIRECTIONS = ("inbound", "outbound")
CASE_TYPES = (
    "callback",
    "already_paid",
    "outage",
    "meter_service",
    "complaint",
    "voicemail",
    "reading_dispute",
)
CASE_STATUSES = ("open", "in_progress", "resolved", "closed")
CONTACT_KINDS = ("phone", "email")
CONSENT_PURPOSES = ("service_notice", "debt_notice", "marketing", "robot_calls", "e_receipt")
DNC_CHANNELS = ("voice", "sms", "any")
DNC_REASONS = ("sms_stop", "ivr_opt_out", "supervisor", "provider_opt_out")
CAMPAIGN_CHANNELS = ("voice", "sms", "voice_then_sms")
CAMPAIGN_STATUSES = ("draft", "planned", "running", "paused", "cancelled", "completed")
TARGET_STATES = (
    "pending",
    "scheduled",
    "in_progress",
    "retry",
    "done",
    "skipped",
    "failed",
    "cancelled",
)
ATTEMPT_CHANNELS = ("voice", "sms")
#: ``RecordingStatus`` values of the provider's recording status callback.
RECORDING_STATUSES = ("in-progress", "completed", "absent", "failed")
ATTEMPT_STATUSES = ("intent", "dialing", "in_progress", "completed", "failed", "skipped")
ROLE_NAMES = ("admin", "supervisor", "operator", "auditor", "developer")
AUDIT_ACTIONS = ("insert", "update", "delete")

METER_MIN_CAPACITY = 4
METER_MAX_CAPACITY = 9
#: The supplier's own clock: billing periods, reading windows and operator hours of an account
#: whose service-address time zone is unknown are counted in Moscow time (the convention of
#: Russian suppliers' published schedules). Never used for contact windows: campaigns fall
#: back to every zone of the phone number instead.
SUPPLIER_TIMEZONE = "Europe/Moscow"


def utcnow() -> datetime:
    """The current time, tz-aware UTC (used as the default of every timestamp column)."""
    return datetime.now(UTC)


def _in(column: str, values: tuple[str, ...]) -> CheckConstraint:
    """A named CHECK constraint ``column IN (values)``."""
    quoted = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({quoted})", name=column)


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that only accepts and always returns aware UTC datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes; convert aware ones to UTC."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: use a tz-aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach UTC to values read back from databases that store no offset (SQLite)."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


Money = Numeric(14, 2)
JSONType = JSON().with_variant(JSONB(), "postgresql")
# 64-bit keys for the big append-only tables; SQLite only auto-increments INTEGER keys.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def _created() -> Mapped[datetime]:
    return mapped_column(UTCDateTime(), default=utcnow, nullable=False)


def _updated() -> Mapped[datetime]:
    return mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False)


class Base(DeclarativeBase):
    """Declarative base with a constraint naming convention (stable Alembic diffs)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# ---------------------------------------------------------------------------- customers
class Consumer(Base):
    """A person or organisation that holds one or more accounts."""

    __tablename__ = "consumers"
    __table_args__ = (
        _in("kind", CONSUMER_KINDS),
        # Name search (ILIKE) on PostgreSQL; empty on SQLite, as the search_text index.
        Index(
            "ix_consumers_full_name_trgm",
            "full_name",
            postgresql_using="gin",
            postgresql_ops={"full_name": "gin_trgm_ops"},
            sqlite_where=sql_text("0"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="person", nullable=False)
    full_name: Mapped[str] = mapped_column(String(300), nullable=False)
    inn: Mapped[str | None] = mapped_column(String(12))
    email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()

    accounts: Mapped[list[Account]] = relationship(back_populates="consumer")


class Account(Base):
    """A лицевой счёт: what the supplier bills, with its service address and time zone."""

    __tablename__ = "accounts"
    __table_args__ = (
        _in("status", ACCOUNT_STATUSES),
        CheckConstraint("ivr_code IS NULL OR length(ivr_code) > 0", name="ivr_code"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    consumer_id: Mapped[int] = mapped_column(
        ForeignKey("consumers.id", ondelete="RESTRICT"), index=True, nullable=False
    )
    number_raw: Mapped[str] = mapped_column(String(64), nullable=False)
    number: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    ivr_code: Mapped[str | None] = mapped_column(String(32), unique=True)
    service_address: Mapped[str] = mapped_column(String(500), default="", nullable=False)
    region: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    #: IANA zone of the service address; ``None`` when unknown (never guessed as Moscow).
    timezone: Mapped[str | None] = mapped_column(String(64))
    #: The grid link as the billing system names it («Ф-12», «ПС Северная»); outages given
    #: by feeder or substation reach the account through it (:mod:`crm_store.outages`).
    feeder: Mapped[str | None] = mapped_column(String(100))
    substation: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default="active", nullable=False)
    e_receipt: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()

    consumer: Mapped[Consumer] = relationship(back_populates="accounts")
    meters: Mapped[list[Meter]] = relationship(
        back_populates="account", order_by="Meter.id", cascade="all, delete-orphan"
    )
    phone_links: Mapped[list[AccountPhone]] = relationship(
        back_populates="account", cascade="all, delete-orphan"
    )

    @validates("timezone")
    def _check_timezone(self, _key: str, value: str | None) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value or value.startswith("Etc/Unknown"):
            raise ValueError(f"unknown time zone {value!r}")
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @validates("ivr_code")
    def _check_ivr_code(self, _key: str, value: str | None) -> str | None:
        if value is not None and not (value.isascii() and value.isdigit()):
            raise ValueError(f"ivr_code must be digits only, got {value!r}")
        return value

    @property
    def local_timezone(self) -> str:
        """The zone for the account's calendar dates: its own, else :data:`SUPPLIER_TIMEZONE`.

        For billing periods and reading windows only; contact windows must not use it (an
        unknown zone there means every zone of the phone number).
        """
        return self.timezone or SUPPLIER_TIMEZONE

    @property
    def zoneinfo(self) -> ZoneInfo:
        """:attr:`local_timezone` as a ``ZoneInfo``."""
        return ZoneInfo(self.local_timezone)


class PhoneNumber(Base):
    """A phone number in E.164, linked to any number of accounts."""

    __tablename__ = "phone_numbers"
    __table_args__ = (_in("source", PHONE_SOURCES),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    e164: Mapped[str] = mapped_column(String(16), unique=True, nullable=False)
    source: Mapped[str] = mapped_column(String(16), default="import", nullable=False)
    verified: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    created_at: Mapped[datetime] = _created()

    account_links: Mapped[list[AccountPhone]] = relationship(
        back_populates="phone", cascade="all, delete-orphan"
    )

    @validates("e164")
    def _check_e164(self, _key: str, value: str) -> str:
        try:
            normalized = normalize_phone(value, require_russian=False)
        except InvalidPhoneError as exc:
            raise ValueError(str(exc)) from None
        if normalized != value:
            raise ValueError(f"phone must be stored in E.164, got {value!r}")
        return value


class AccountPhone(Base):
    """Link between an account and a phone number (many-to-many)."""

    __tablename__ = "account_phones"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    phone_id: Mapped[int] = mapped_column(
        ForeignKey("phone_numbers.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = _created()

    account: Mapped[Account] = relationship(back_populates="phone_links")
    phone: Mapped[PhoneNumber] = relationship(back_populates="account_links")


# ---------------------------------------------------------------------------- meters
class Meter(Base):
    """An electricity meter: digit count (capacity), ordered zone labels, remote-read flag."""

    __tablename__ = "meters"
    __table_args__ = (
        UniqueConstraint("account_id", "serial"),
        CheckConstraint(
            f"capacity >= {METER_MIN_CAPACITY} AND capacity <= {METER_MAX_CAPACITY}",
            name="capacity",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    )
    serial: Mapped[str] = mapped_column(String(64), nullable=False)
    capacity: Mapped[int] = mapped_column(Integer, nullable=False)
    zones: Mapped[list[str]] = mapped_column(JSONType, nullable=False)
    remote_read: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    verification_due: Mapped[date | None] = mapped_column(Date)
    installed_at: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = _created()

    account: Mapped[Account] = relationship(back_populates="meters")

    @validates("capacity")
    def _check_capacity(self, _key: str, value: int) -> int:
        if not METER_MIN_CAPACITY <= int(value) <= METER_MAX_CAPACITY:
            raise ValueError(
                f"meter capacity must be {METER_MIN_CAPACITY}..{METER_MAX_CAPACITY} digits,"
                f" got {value}"
            )
        return int(value)

    @validates("zones")
    def _check_zones(self, _key: str, value: list[str]) -> list[str]:
        labels = [str(z).strip() for z in value]
        if not labels or any(not z for z in labels) or len(set(labels)) != len(labels):
            raise ValueError(f"meter zones must be distinct non-empty labels, got {value!r}")
        return labels


class MeterReading(Base):
    """One zone's reading of a meter for a billing period (integer part only)."""

    __tablename__ = "meter_readings"
    __table_args__ = (
        _in("source", READING_SOURCES),
        CheckConstraint("value >= 0", name="value"),
        # One row per value and period: re-submitting the same reading stores nothing new.
        UniqueConstraint("meter_id", "zone", "period", "value"),
        Index("ix_meter_readings_meter_submitted", "meter_id", "submitted_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    meter_id: Mapped[int] = mapped_column(
        ForeignKey("meters.id", ondelete="CASCADE"), nullable=False
    )
    zone: Mapped[str] = mapped_column(String(32), nullable=False)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False)
    period: Mapped[date] = mapped_column(Date, nullable=False)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    confidence: Mapped[float | None] = mapped_column(Float)
    audio_ref: Mapped[str | None] = mapped_column(String(500))
    anomaly: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    override: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    rollover: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    consumption: Mapped[int | None] = mapped_column(BigInteger)
    submitted_at: Mapped[datetime] = _created()
    interaction_id: Mapped[int | None] = mapped_column(
        ForeignKey("interactions.id", ondelete="SET NULL"), index=True
    )

    meter: Mapped[Meter] = relationship()


# ---------------------------------------------------------------------------- ledger
class Charge(Base):
    """A bill for a period, due on ``due_date``.

    ``source`` tells where the charge came from (:data:`CHARGE_SOURCES`). ``external_key``
    (unique when set) makes a charge addressable by its producer, e.g. the debt an import file
    stated for one due date is kept under ``import:<account>:<due date>``; for such a keyed
    import charge ``stated_balance`` remembers the balance the file stated when the charge was
    last set, so a repeated import can tell "same statement" from "changed statement".
    """

    __tablename__ = "charges"
    __table_args__ = (
        _in("source", CHARGE_SOURCES),
        Index("ix_charges_account_due", "account_id", "due_date"),
        Index("ix_charges_external_key", "external_key", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    )
    period: Mapped[date] = mapped_column(Date, nullable=False)
    amount: Mapped[Decimal] = mapped_column(Money, nullable=False)
    due_date: Mapped[date] = mapped_column(Date, nullable=False)
    source: Mapped[str] = mapped_column(
        String(16), default="billing", server_default="billing", nullable=False
    )
    external_key: Mapped[str | None] = mapped_column(String(128))
    stated_balance: Mapped[Decimal | None] = mapped_column(Money)
    created_at: Mapped[datetime] = _created()


class Payment(Base):
    """A payment received on an account.

    ``paid_on`` is the payment's date (what the ledger counts); an imported registry also
    gives the moment (``paid_at``, UTC) and the bank or payment agent that took it
    (``agent``, as the registry names it; ``channel`` is its kind).
    """

    __tablename__ = "payments"
    __table_args__ = (
        _in("channel", PAYMENT_CHANNELS),
        Index("ix_payments_account_paid", "account_id", "paid_on"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    )
    amount: Mapped[Decimal] = mapped_column(Money, nullable=False)
    paid_on: Mapped[date] = mapped_column(Date, nullable=False)
    channel: Mapped[str] = mapped_column(String(8), nullable=False)
    external_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = _created()
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    agent: Mapped[str | None] = mapped_column(String(128))


class UnmatchedPayment(Base):
    """A registry payment whose account number is not (yet) in the CRM, kept aside.

    Unique by the registry's payment id (``external_id``). When an account with this number
    appears (a consumer import, a later payments import), the payment is recorded on it:
    ``payment_id`` and ``matched_at`` are set and the row stays as the trace.
    """

    __tablename__ = "unmatched_payments"
    __table_args__ = (
        _in("channel", PAYMENT_CHANNELS),
        Index("ix_unmatched_payments_account_number", "account_number"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: Normalised like ``Account.number``; ``account_number_raw`` as the registry wrote it.
    account_number: Mapped[str] = mapped_column(String(64), nullable=False)
    account_number_raw: Mapped[str] = mapped_column(String(64), nullable=False)
    external_id: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    amount: Mapped[Decimal] = mapped_column(Money, nullable=False)
    paid_on: Mapped[date] = mapped_column(Date, nullable=False)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    channel: Mapped[str] = mapped_column(String(8), nullable=False)
    agent: Mapped[str | None] = mapped_column(String(128))
    #: The file and its row the payment came from.
    source: Mapped[str] = mapped_column(String(500), default="", nullable=False)
    source_row: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = _created()
    matched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id", ondelete="SET NULL"))


class ImportRun(Base):
    """One import of a data file (consumers, payments, charges) and how far it got.

    Each committed batch of rows advances ``rows_done`` and ``batches_committed`` in the
    batch's own transaction, so after a crash the row says exactly which batches landed;
    ``summary`` holds the final report (counts and the first problem rows).
    """

    __tablename__ = "import_runs"
    __table_args__ = (
        _in("kind", IMPORT_KINDS),
        _in("status", IMPORT_STATUSES),
        Index("ix_import_runs_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    source: Mapped[str] = mapped_column(String(500), nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="queued", nullable=False)
    actor: Mapped[str] = mapped_column(String(128), default="system", nullable=False)
    created_at: Mapped[datetime] = _created()
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rows_done: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    batches_committed: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    summary: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    error: Mapped[str | None] = mapped_column(Text)


# ---------------------------------------------------------------------------- contacts
class Interaction(Base):
    """Append-only record of one contact (call, SMS, e-mail)."""

    __tablename__ = "interactions"
    __table_args__ = (
        _in("channel", INTERACTION_CHANNELS),
        _in("direction", DIRECTIONS),
        Index("ix_interactions_account_started", "account_id", "started_at"),
        Index("ix_interactions_phone_started", "phone", "started_at"),
        Index("ix_interactions_channel_started", "channel", "started_at"),
        Index("ix_interactions_started", "started_at"),
        # Trigram index for substring search (PostgreSQL, pg_trgm). On SQLite it is declared
        # with an always-false partial predicate: the index exists (schema parity, no
        # autogenerate drift) but is empty and costs nothing; SQLite search scans.
        Index(
            "ix_interactions_search_text_trgm",
            "search_text",
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
            sqlite_where=sql_text("0"),
        ),
        # A consumer's timeline: contacts naming the consumer but no account, and contacts
        # naming nobody, matched by phone.
        Index(
            "ix_interactions_consumer_unlinked",
            "consumer_id",
            "started_at",
            postgresql_where=sql_text("account_id IS NULL"),
            sqlite_where=sql_text("account_id IS NULL"),
        ),
        Index(
            "ix_interactions_phone_unlinked",
            "phone",
            "started_at",
            postgresql_where=sql_text("account_id IS NULL AND consumer_id IS NULL"),
            sqlite_where=sql_text("account_id IS NULL AND consumer_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    consumer_id: Mapped[int | None] = mapped_column(
        ForeignKey("consumers.id", ondelete="SET NULL"), index=True
    )
    phone: Mapped[str | None] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(8), nullable=False)
    direction: Mapped[str] = mapped_column(String(8), nullable=False)
    provider_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(32), default="started", nullable=False)
    outcome: Mapped[str | None] = mapped_column(String(64), index=True)
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="SET NULL"), index=True
    )
    attempt_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact_attempts.id", ondelete="SET NULL"), index=True
    )
    operator: Mapped[str | None] = mapped_column(String(128))
    recording_ref: Mapped[str | None] = mapped_column(String(500))
    summary: Mapped[str] = mapped_column(Text, default="", nullable=False)
    # Lower-cased summary and transcript texts, one per line, maintained by
    # crm_store.interactions (the target of the text filter and its trigram index).
    search_text: Mapped[str] = mapped_column(Text, default="", server_default="", nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)

    steps: Mapped[list[InteractionStep]] = relationship(
        order_by="InteractionStep.seq", cascade="all, delete-orphan"
    )
    transcripts: Mapped[list[Transcript]] = relationship(
        order_by="Transcript.id", cascade="all, delete-orphan"
    )


class InteractionStep(Base):
    """One transition of the IVR path of an interaction."""

    __tablename__ = "interaction_steps"
    __table_args__ = (UniqueConstraint("interaction_id", "seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    interaction_id: Mapped[int] = mapped_column(
        ForeignKey("interactions.id", ondelete="CASCADE"), nullable=False
    )
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    step: Mapped[str] = mapped_column(String(128), nullable=False)
    event: Mapped[str] = mapped_column(String(64), default="enter", nullable=False)
    input: Mapped[str | None] = mapped_column(String(500))
    outcome: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = _created()


class Transcript(Base):
    """What the recogniser heard at a step, with its confidence and the decision taken."""

    __tablename__ = "transcripts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    interaction_id: Mapped[int] = mapped_column(
        ForeignKey("interactions.id", ondelete="CASCADE"), index=True, nullable=False
    )
    step: Mapped[str] = mapped_column(String(128), nullable=False)
    text: Mapped[str] = mapped_column(Text, default="", nullable=False)
    confidence: Mapped[float | None] = mapped_column(Float)
    audio_ref: Mapped[str | None] = mapped_column(String(500))
    decision: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = _created()


class CallRecording(Base):
    """A whole-call recording of an interaction: the provider's SID, URL and status, and
    where our copy is stored (``storage_path``; null until downloaded). ``deleted_at`` is set
    when the retention job deleted our copy."""

    __tablename__ = "call_recordings"
    __table_args__ = (_in("status", RECORDING_STATUSES),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    interaction_id: Mapped[int] = mapped_column(
        ForeignKey("interactions.id", ondelete="CASCADE"), index=True, nullable=False
    )
    sid: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    url: Mapped[str] = mapped_column(String(500), nullable=False)
    duration_s: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    channels: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    storage_path: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = _created()
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Case(Base):
    """An обращение (request) with an SLA due time and a status history."""

    __tablename__ = "cases"
    __table_args__ = (
        _in("type", CASE_TYPES),
        _in("status", CASE_STATUSES),
        Index("ix_cases_status_sla", "status", "sla_due_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), index=True
    )
    consumer_id: Mapped[int | None] = mapped_column(
        ForeignKey("consumers.id", ondelete="SET NULL"), index=True
    )
    type: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="open", nullable=False)
    subject: Mapped[str] = mapped_column(String(300), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    sla_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = _created()
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    interaction_id: Mapped[int | None] = mapped_column(
        ForeignKey("interactions.id", ondelete="SET NULL"), index=True
    )

    events: Mapped[list[CaseEvent]] = relationship(
        order_by="CaseEvent.id", cascade="all, delete-orphan"
    )


class CaseEvent(Base):
    """One status change or note on a case."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), index=True, nullable=False
    )
    at: Mapped[datetime] = _created()
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="", nullable=False)


# ---------------------------------------------------------------------------- outages
OUTAGE_KINDS = ("planned", "emergency")
OUTAGE_SOURCES = ("import", "api")


class Outage(Base):
    """A planned or emergency power outage at a place (see :mod:`crm_store.outages`).

    The place is a settlement, a street and a house specification as given (``settlement``,
    ``street``, ``houses``: «1-15», «2-20 чётные», empty for the whole street) plus their
    comparable keys (:mod:`crm_store.addresses`); an empty ``street_key`` is the whole
    settlement. ``feeder``/``substation`` as given, with their comparable keys
    (:func:`crm_store.outages.grid_key`, "" for none) matched to the accounts' grid links.
    ``external_id`` (the sender's id, or a digest of the place, kind and start when it sent
    none) makes imports idempotent.
    """

    __tablename__ = "outages"
    __table_args__ = (
        _in("kind", OUTAGE_KINDS),
        _in("source", OUTAGE_SOURCES),
        CheckConstraint("expected_end_at > starts_at", name="period"),
        Index("ix_outages_street_end", "street_key", "expected_end_at"),
        Index("ix_outages_feeder_end", "feeder_key", "expected_end_at"),
        Index("ix_outages_substation_end", "substation_key", "expected_end_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    settlement: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    street: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    houses: Mapped[str] = mapped_column(String(500), default="", nullable=False)
    settlement_key: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    street_key: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    street_type: Mapped[str] = mapped_column(String(16), default="", nullable=False)
    feeder: Mapped[str | None] = mapped_column(String(100))
    substation: Mapped[str | None] = mapped_column(String(100))
    feeder_key: Mapped[str] = mapped_column(
        String(100), default="", server_default="", nullable=False
    )
    substation_key: Mapped[str] = mapped_column(
        String(100), default="", server_default="", nullable=False
    )
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    expected_end_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    reason: Mapped[str] = mapped_column(Text, default="", nullable=False)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class OutageCase(Base):
    """The outage case (a :class:`Case` of type ``outage``) of one building.

    Reports for the same building (``address_key``) join the case while it is open and
    younger than the grouping window; ``open_key`` (unique, the address key while the case
    takes reports, NULL after) lets concurrent first reports agree on one case.
    """

    __tablename__ = "outage_cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), unique=True, nullable=False
    )
    address_key: Mapped[str] = mapped_column(String(300), index=True, nullable=False)
    address: Mapped[str] = mapped_column(String(500), nullable=False)
    open_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)

    case: Mapped[Case] = relationship()
    reports: Mapped[list[OutageReport]] = relationship(
        order_by="OutageReport.id", cascade="all, delete-orphan"
    )


class OutageReport(Base):
    """One caller's report of no power, on the outage case of its building."""

    __tablename__ = "outage_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    outage_case_id: Mapped[int] = mapped_column(
        ForeignKey("outage_cases.id", ondelete="CASCADE"), index=True, nullable=False
    )
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), index=True
    )
    phone: Mapped[str | None] = mapped_column(String(16))
    interaction_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("interactions.id", ondelete="SET NULL")
    )
    address: Mapped[str] = mapped_column(String(500), nullable=False)
    reported_at: Mapped[datetime] = _created()


class Consent(Base):
    """Consent (or its refusal) of a phone or e-mail for one purpose, from a given time."""

    __tablename__ = "consents"
    __table_args__ = (
        _in("contact", CONTACT_KINDS),
        _in("purpose", CONSENT_PURPOSES),
        Index("ix_consents_value_purpose_given", "value", "purpose", "given_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact: Mapped[str] = mapped_column(String(8), nullable=False)
    value: Mapped[str] = mapped_column(String(254), nullable=False)
    purpose: Mapped[str] = mapped_column(String(32), nullable=False)
    granted: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    source: Mapped[str] = mapped_column(String(64), nullable=False)
    given_at: Mapped[datetime] = _created()
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class DoNotContact(Base):
    """An opt-out: never contact ``value`` on ``channel`` (``any`` = every channel)."""

    __tablename__ = "do_not_contact"
    __table_args__ = (
        UniqueConstraint("value", "channel"),
        _in("channel", DNC_CHANNELS),
        _in("reason", DNC_REASONS),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[str] = mapped_column(String(16), nullable=False)
    channel: Mapped[str] = mapped_column(String(8), nullable=False)
    reason: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = _created()
    created_by: Mapped[str] = mapped_column(String(128), default="system", nullable=False)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))


# ---------------------------------------------------------------------------- campaigns
class Campaign(Base):
    """An outbound campaign (debt reminders, notices) and its definition."""

    __tablename__ = "campaigns"
    __table_args__ = (
        _in("channel", CAMPAIGN_CHANNELS),
        _in("status", CAMPAIGN_STATUSES),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="draft", nullable=False)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    created_by: Mapped[str] = mapped_column(String(128), default="system", nullable=False)
    created_at: Mapped[datetime] = _created()
    launched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CampaignTarget(Base):
    """One account targeted by a campaign, with its scheduling state."""

    __tablename__ = "campaign_targets"
    __table_args__ = (
        UniqueConstraint("campaign_id", "account_id"),
        _in("state", TARGET_STATES),
        Index("ix_campaign_targets_campaign_state_next", "campaign_id", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False
    )
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True, nullable=False
    )
    phone: Mapped[str | None] = mapped_column(String(16))
    #: The account's zone when planned; ``None``: unknown, every zone of ``phone`` applies.
    timezone: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="pending", nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_outcome: Mapped[str | None] = mapped_column(String(32))
    skip_reason: Mapped[str | None] = mapped_column(String(64))
    control_group: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class ContactAttempt(Base):
    """One call or SMS attempt to a campaign target (idempotent by ``idempotency_key``)."""

    __tablename__ = "contact_attempts"
    __table_args__ = (
        UniqueConstraint("target_id", "attempt_no"),
        _in("channel", ATTEMPT_CHANNELS),
        _in("status", ATTEMPT_STATUSES),
        Index("ix_contact_attempts_campaign_created", "campaign_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False
    )
    target_id: Mapped[int] = mapped_column(
        ForeignKey("campaign_targets.id", ondelete="CASCADE"), nullable=False
    )
    attempt_no: Mapped[int] = mapped_column(Integer, nullable=False)
    channel: Mapped[str] = mapped_column(String(8), nullable=False)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="intent", nullable=False)
    provider_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    outcome: Mapped[str | None] = mapped_column(String(32))
    answered_by: Mapped[str | None] = mapped_column(String(32))
    duration_s: Mapped[int | None] = mapped_column(Integer)
    sms_segments: Mapped[int | None] = mapped_column(Integer)
    cost: Mapped[Decimal | None] = mapped_column(Money)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()
    last_sequence: Mapped[int] = mapped_column(Integer, default=0, nullable=False)


# ---------------------------------------------------------------------------- users
class Role(Base):
    """A role a user can hold."""

    __tablename__ = "roles"
    __table_args__ = (_in("name", ROLE_NAMES),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(16), unique=True, nullable=False)


class UserRole(Base):
    """Link between users and roles."""

    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role_id: Mapped[int] = mapped_column(
        ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True
    )


class User(Base):
    """A supervisor, operator or developer of the system (API and console users)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    display_name: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    password_hash: Mapped[str | None] = mapped_column(String(256))
    api_token_hash: Mapped[str | None] = mapped_column(String(128), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    created_at: Mapped[datetime] = _created()
    #: The regions (``Account.region`` values) whose data the user sees; ``None``: all.
    regions: Mapped[list[str] | None] = mapped_column(JSONType)
    #: Bumped when the password changes or the user is disabled: older console sessions end.
    session_epoch: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0", nullable=False
    )
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    api_token_issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    roles: Mapped[list[Role]] = relationship(secondary="user_roles", order_by="Role.name")

    @property
    def role_names(self) -> list[str]:
        """Names of the user's roles, sorted."""
        return sorted(r.name for r in self.roles)


# ---------------------------------------------------------------------------- audit
class AuditLog(Base):
    """Who changed which audited row when, with the values before and after."""

    __tablename__ = "audit_log"
    __table_args__ = (
        _in("action", AUDIT_ACTIONS),
        Index("ix_audit_log_entity", "entity", "entity_id", "at"),
        Index("ix_audit_log_at", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = _created()
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    entity: Mapped[str] = mapped_column(String(64), nullable=False)
    entity_id: Mapped[str] = mapped_column(String(64), nullable=False)
    action: Mapped[str] = mapped_column(String(8), nullable=False)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    #: Why the change was made, when the actor said (``acting_as(actor, reason=…)``).
    reason: Mapped[str | None] = mapped_column(String(500))
