"""Outages: stored from files and the API, matched to addresses and grids, reported by callers.

**Outages.** :func:`parse_outage` checks one outage given as text fields (a file row, an API
item; :data:`OUTAGE_FIELDS`) and raises :class:`~crm_store.errors.InvalidOutage` listing every
problem; :func:`upsert_outage` stores it idempotently by ``external_id`` (the sender's id, or
a digest of kind, place and start when it sent none, so a re-sent row with a new expected end
updates the outage it describes). The place is a settlement, a street and a house
specification (:mod:`crm_store.addresses`); an outage of a whole settlement has no street.
An outage may instead (or as well) name a feeder and/or a substation; one naming no place at
all is refused.

**Grid names.** :func:`grid_key` reduces a feeder or substation name to a comparable key:
case, «ё», punctuation and spaces do not count, Latin letters typed for the Cyrillic ones
they look like («TП») are read as Cyrillic, a voltage («110 кВ», «110/10 кВ») and the
generic words «фидер», «ф.», «ПС», «подстанция», «п/ст», «ТП», «КТП», «РП» are dropped, so
«Ф-12», «фидер 12», «ф.12» and «12» agree, and so do «ПС 110 кВ Северная», «Северная
подстанция» and «Северная». A name is compared whole: «Северная Ф-12» is not «Ф-12». Feeder
numbers repeat from one substation to the next, so a supplier whose feeders share numbers
writes them with their substation («Северная Ф-12») in both the consumer and the outage files.

**Matching.** :func:`active_outages_for` gives the outages concerning an account at a moment:
those whose place covers its free-text address, those whose feeder is the account's feeder,
and those given by a substation without a feeder whose substation is the account's
substation (an outage with a feeder concerns that feeder only, not its whole substation); an
outage given by address and feeder concerns both. In effect means started and not yet over
(``expected_end_at`` is exclusive), plus the ones starting within ``horizon`` (planned works
announced ahead). An outage whose expected end has passed is never returned, so it stops
being announced by itself.

**Reports.** :func:`report_outage` records a caller's «no power» report. Reports of one
building (:func:`~crm_store.addresses.address_key`: settlement, street, house; the flat
ignored) are grouped: while the building's outage case (a :class:`~crm_store.models.Case` of
type ``outage``) is open and younger than ``window`` (default 12 hours), a new report joins
it (an :class:`~crm_store.models.OutageReport` and a note in the case's history); otherwise a
new case is opened. ``OutageCase.open_key`` is unique, so two first reports at the same
moment agree on one case.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from crm_store.addresses import (
    Address,
    HouseSpecError,
    address_key,
    parse_address,
    parse_house_spec,
    settlement_key,
    street_key,
)
from crm_store.cases import add_note, open_case
from crm_store.db import insert_or_existing
from crm_store.errors import InvalidInput, InvalidOutage
from crm_store.import_files import parse_moment as parse_file_moment
from crm_store.models import (
    OUTAGE_SOURCES,
    SUPPLIER_TIMEZONE,
    Outage,
    OutageCase,
    OutageReport,
)

__all__ = [
    "DEFAULT_REPORT_WINDOW",
    "MAX_DURATION",
    "OUTAGE_FIELDS",
    "OutageInput",
    "OutageReportResult",
    "active_outages_for",
    "covers",
    "grid_key",
    "list_outages",
    "on_grid",
    "outage_as_dict",
    "parse_moment",
    "parse_outage",
    "report_outage",
    "upsert_outage",
]

#: The fields of an outage in a file or an API item; ``kind``, ``starts_at`` and
#: ``expected_end_at`` are required, and a place: a settlement, a street, a feeder or a
#: substation.
OUTAGE_FIELDS: tuple[str, ...] = (
    "external_id",
    "kind",
    "settlement",
    "street",
    "houses",
    "feeder",
    "substation",
    "starts_at",
    "expected_end_at",
    "timezone",
    "reason",
)
#: Reports of one building join its case within this time from the case's first report.
DEFAULT_REPORT_WINDOW = timedelta(hours=12)
#: An outage longer than this is a typo in a date (refused).
MAX_DURATION = timedelta(days=31)
_KINDS = {
    "planned": "planned",
    "плановое": "planned",
    "плановая": "planned",
    "плановое отключение": "planned",
    "план": "planned",
    "emergency": "emergency",
    "аварийное": "emergency",
    "аварийная": "emergency",
    "аварийное отключение": "emergency",
    "авария": "emergency",
}
_LIMITS = {
    "external_id": 128,
    "settlement": 200,
    "street": 200,
    "houses": 500,
    "feeder": 100,
    "substation": 100,
    "reason": 500,
    "timezone": 64,
}
_OPEN_STATUSES = ("open", "in_progress")
#: Words naming what a grid object is, not which one: dropped from grid keys.
_GRID_WORDS = frozenset({"фидер", "фид", "ф", "пс", "подстанция", "подст", "тп", "ктп", "рп"})
_VOLTAGE = re.compile(r"\d+(?:[.,/]\d+)*\s*кв(?![^\W\d_])")
_GRID_TOKEN = re.compile(r"[^\W\d_]+|\d+")
#: Latin letters typed for the Cyrillic ones they look like («TП», «ПC»).
_LOOKALIKES = str.maketrans("aeopcxykmthb", "аеорсхукмтнв")


def _grid_tokens(text: str) -> list[str]:
    tokens = _GRID_TOKEN.findall(text)
    out: list[str] = []
    index = 0
    while index < len(tokens):
        if tokens[index] == "п" and tokens[index + 1 : index + 2] == ["ст"]:  # «п/ст»
            index += 2
            continue
        if tokens[index] not in _GRID_WORDS:
            out.append(tokens[index])
        index += 1
    return out


def grid_key(name: str | None) -> str:
    """The comparable key of a feeder or substation name ("" for none; see the module).

    «Ф-12», «фидер 12», «ф.12» → ``12``; «ПС 110 кВ Северная», «Северная» → ``северная``.
    A name made only of generic words or a voltage keeps them («ТП» → ``тп``).
    """
    if not name:
        return ""
    text = name.casefold().replace("ё", "е").translate(_LOOKALIKES)
    tokens = _grid_tokens(_VOLTAGE.sub(" ", text)) or _GRID_TOKEN.findall(text)
    return "".join(tokens)[:100]


@dataclass(frozen=True)
class OutageInput:
    """A checked outage, ready to store."""

    external_id: str
    kind: str
    settlement: str
    street: str
    houses: str
    feeder: str | None
    substation: str | None
    starts_at: datetime
    expected_end_at: datetime
    reason: str

    @property
    def settlement_key(self) -> str:
        """The comparable key of the settlement ("" for none)."""
        return settlement_key(self.settlement)

    @property
    def street_parts(self) -> tuple[str, str]:
        """``(street type, street key)`` ("" for none)."""
        return street_key(self.street)

    @property
    def feeder_key(self) -> str:
        """The comparable key of the feeder ("" for none, :func:`grid_key`)."""
        return grid_key(self.feeder)

    @property
    def substation_key(self) -> str:
        """The comparable key of the substation ("" for none, :func:`grid_key`)."""
        return grid_key(self.substation)


def parse_moment(text: str, timezone: str) -> datetime:
    """A date and time as files and APIs write them, as tz-aware UTC.

    The notations of :func:`crm_store.import_files.parse_moment` (``DD.MM.YYYY HH:MM``,
    ISO 8601 with or without an offset or ``Z`` …); a time without an offset is local time in
    ``timezone``. Raises ``ValueError`` with a Russian reason, also for a date without a time.
    """
    value = text.strip()
    _day, moment = parse_file_moment(value, ZoneInfo(timezone))
    if moment is None:
        raise ValueError(f"«{value}»: нужны дата и время, например 05.12.2026 10:00")
    return moment.astimezone(UTC)


def _text(fields: Mapping[str, object], name: str, problems: list[tuple[str, str]]) -> str:
    value = fields.get(name)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        problems.append((name, "должно быть строкой"))
        return ""
    text = re.sub(r"\s+", " ", str(value)).strip()
    limit = _LIMITS.get(name)
    if limit is not None and len(text) > limit:
        problems.append((name, f"слишком длинно: {len(text)} символов, допустимо {limit}"))
        return ""
    return text


def _zone(fields: Mapping[str, object], problems: list[tuple[str, str]]) -> str:
    name = _text(fields, "timezone", problems) or SUPPLIER_TIMEZONE
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(("timezone", f"неизвестный часовой пояс «{name}»; пример: Europe/Moscow"))
        return SUPPLIER_TIMEZONE
    return name


def parse_outage(fields: Mapping[str, object]) -> OutageInput:
    """Check one outage given as :data:`OUTAGE_FIELDS` (texts; unknown keys are refused).

    Raises :class:`~crm_store.errors.InvalidOutage` with every problem found, each as
    ``(field, reason)``; reasons are Russian.
    """
    problems: list[tuple[str, str]] = []
    for name in fields:
        if name not in OUTAGE_FIELDS:
            problems.append((name, "неизвестное поле; допустимы: " + ", ".join(OUTAGE_FIELDS)))
    text = {name: _text(fields, name, problems) for name in OUTAGE_FIELDS if name != "timezone"}
    zone = _zone(fields, problems)
    kind = _KINDS.get(text["kind"].lower().replace("ё", "е"))
    if not text["kind"]:
        problems.append(("kind", "не заполнено: planned (плановое) или emergency (аварийное)"))
    elif kind is None:
        problems.append(("kind", f"«{text['kind']}» — нужно planned (плановое) или emergency"))
    moments: dict[str, datetime] = {}
    for name in ("starts_at", "expected_end_at"):
        if not text[name]:
            problems.append((name, "не заполнено"))
            continue
        try:
            moments[name] = parse_moment(text[name], zone)
        except ValueError as exc:
            problems.append((name, str(exc)))
    starts, ends = moments.get("starts_at"), moments.get("expected_end_at")
    if starts is not None and ends is not None:
        if ends <= starts:
            problems.append(("expected_end_at", "окончание должно быть позже начала"))
        elif ends - starts > MAX_DURATION:
            problems.append(("expected_end_at", "отключение длиннее 31 дня: проверьте даты"))
    _check_place(text, problems)
    if problems or kind is None or starts is None or ends is None:
        raise InvalidOutage(problems)
    external_id = text["external_id"] or _digest(kind, text, starts)
    return OutageInput(
        external_id=external_id,
        kind=kind,
        settlement=text["settlement"],
        street=text["street"],
        houses=text["houses"],
        feeder=text["feeder"] or None,
        substation=text["substation"] or None,
        starts_at=starts,
        expected_end_at=ends,
        reason=text["reason"],
    )


def _check_place(text: Mapping[str, str], problems: list[tuple[str, str]]) -> None:
    has_settlement = bool(settlement_key(text["settlement"]))
    has_street = bool(street_key(text["street"])[1])
    if text["settlement"] and not has_settlement:
        problems.append(("settlement", f"нет названия населённого пункта: «{text['settlement']}»"))
    if text["street"] and not has_street:
        problems.append(("street", f"нет названия улицы: «{text['street']}»"))
    grid_place = bool(grid_key(text["feeder"]) or grid_key(text["substation"]))
    if not text["settlement"] and not text["street"] and not grid_place:
        given = [(name, text[name]) for name in ("feeder", "substation") if text[name]]
        if given:
            name, value = given[0]
            problems.append((name, f"нет ни названия, ни номера: «{value}»"))
        else:
            problems.append(
                (
                    "settlement",
                    "не указано место: населённый пункт, улица, фидер или подстанция",
                )
            )
    if text["houses"]:
        if not text["street"]:
            problems.append(("houses", "номера домов указаны без улицы"))
        try:
            parse_house_spec(text["houses"])
        except HouseSpecError as exc:
            problems.append(("houses", str(exc)))


def _digest(kind: str, text: Mapping[str, str], starts: datetime) -> str:
    street_type, street = street_key(text["street"])
    spec = parse_house_spec(text["houses"])
    place = "|".join((kind, settlement_key(text["settlement"]), street_type, street, repr(spec)))
    if not text["settlement"] and not text["street"]:  # a place on the grid only
        place += f"|{grid_key(text['feeder'])}|{grid_key(text['substation'])}"
    digest = hashlib.sha256(f"{place}|{starts.isoformat()}".encode()).hexdigest()
    return f"auto:{digest[:40]}"


def upsert_outage(session: Session, outage: OutageInput, *, source: str) -> tuple[Outage, str]:
    """Store ``outage`` by its ``external_id``: ``created``, ``updated`` or ``unchanged``."""
    if source not in OUTAGE_SOURCES:
        raise InvalidInput(f"unknown outage source {source!r}")
    street_type, street = outage.street_parts
    values: dict[str, Any] = {
        "kind": outage.kind,
        "settlement": outage.settlement,
        "street": outage.street,
        "houses": outage.houses,
        "settlement_key": outage.settlement_key,
        "street_key": street,
        "street_type": street_type,
        "feeder": outage.feeder,
        "substation": outage.substation,
        "feeder_key": outage.feeder_key,
        "substation_key": outage.substation_key,
        "starts_at": outage.starts_at,
        "expected_end_at": outage.expected_end_at,
        "reason": outage.reason,
    }

    def existing() -> Outage | None:
        return session.scalars(
            select(Outage).where(Outage.external_id == outage.external_id)
        ).one_or_none()

    found = existing()
    if found is None:
        new = Outage(external_id=outage.external_id, source=source, **values)
        stored, inserted = insert_or_existing(session, new, existing)
        if inserted or stored is None:
            return new, "created"
        found = stored
    row: Outage = found
    changed = [name for name, value in values.items() if getattr(row, name) != value]
    if not changed:
        return row, "unchanged"
    for name in changed:
        setattr(row, name, values[name])
    row.source = source
    session.flush()
    return row, "updated"


def covers(outage: Outage, address: Address) -> bool:
    """True when ``outage``'s place includes ``address`` (see :mod:`crm_store.addresses`).

    Settlements must agree when both are known (an account address written without its
    settlement matches on the street: suppliers of one town write them so); an outage of a
    whole settlement needs the address's settlement. A street written without a type matches
    any type; an address without a house number is not in a house range.
    """
    known = outage.settlement_key and address.settlement
    if known and outage.settlement_key != address.settlement:
        return False
    if not outage.street_key:
        return bool(outage.settlement_key) and outage.settlement_key == address.settlement
    if outage.street_key != address.street:
        return False
    if outage.street_type and address.street_type and outage.street_type != address.street_type:
        return False
    try:
        spec = parse_house_spec(outage.houses)
    except HouseSpecError:
        return False
    return spec.covers(address.house)


def on_grid(outage: Outage, feeder_key: str, substation_key: str) -> bool:
    """True when ``outage`` concerns an account on the feeder and substation of these keys
    (:func:`grid_key`; "" for unknown): its feeder is the account's, or it names a substation
    and no feeder and its substation is the account's."""
    if outage.feeder_key:
        return outage.feeder_key == feeder_key
    return bool(outage.substation_key) and outage.substation_key == substation_key


def active_outages_for(
    session: Session,
    address: str,
    at: datetime,
    *,
    horizon: timedelta = timedelta(0),
    feeder: str | None = None,
    substation: str | None = None,
) -> list[Outage]:
    """Outages concerning an account at ``address`` on ``feeder`` and ``substation`` (its
    grid link, None when unknown; see the module) in effect at ``at`` or starting within
    ``horizon`` after it, earliest start first; expired ones (``expected_end_at <= at``)
    never."""
    if at.tzinfo is None:
        raise InvalidInput("at must be tz-aware")
    parsed = parse_address(address)
    feeder_key, substation_key = grid_key(feeder), grid_key(substation)
    places: list[ColumnElement[bool]] = []
    if parsed.known:
        streets = [parsed.street, ""] if parsed.street else [""]
        places.append(Outage.street_key.in_(streets))
    if feeder_key:
        places.append(Outage.feeder_key == feeder_key)
    if substation_key:
        places.append(Outage.substation_key == substation_key)
    if not places:
        return []
    stmt = (
        select(Outage)
        .where(
            or_(*places),
            Outage.expected_end_at > at,
            Outage.starts_at <= at + horizon,
        )
        .order_by(Outage.starts_at, Outage.id)
    )
    return [
        o
        for o in session.scalars(stmt)
        if (parsed.known and covers(o, parsed)) or on_grid(o, feeder_key, substation_key)
    ]


def list_outages(
    session: Session, *, active_at: datetime | None = None, limit: int = 200
) -> list[Outage]:
    """Outages in effect at ``active_at`` (all when None), newest start first."""
    stmt = select(Outage)
    if active_at is not None:
        stmt = stmt.where(Outage.starts_at <= active_at, Outage.expected_end_at > active_at)
    return list(
        session.scalars(stmt.order_by(Outage.starts_at.desc(), Outage.id.desc()).limit(limit))
    )


def outage_as_dict(outage: Outage) -> dict[str, Any]:
    """``outage`` as JSON-ready values (times in ISO 8601, UTC)."""
    return {
        "id": outage.id,
        "external_id": outage.external_id,
        "kind": outage.kind,
        "source": outage.source,
        "settlement": outage.settlement,
        "street": outage.street,
        "houses": outage.houses,
        "feeder": outage.feeder,
        "substation": outage.substation,
        "starts_at": outage.starts_at.isoformat(),
        "expected_end_at": outage.expected_end_at.isoformat(),
        "reason": outage.reason,
    }


@dataclass(frozen=True)
class OutageReportResult:
    """Where a report went: its case, whether it joined an existing one, reports on it."""

    case_id: int
    joined: bool
    reports: int


def _open_group(session: Session, key: str, at: datetime, window: timedelta) -> OutageCase | None:
    group = session.scalars(select(OutageCase).where(OutageCase.open_key == key)).one_or_none()
    if group is None:
        return None
    if group.case.status in _OPEN_STATUSES and at - group.opened_at < window:
        return group
    group.open_key = None  # closed or too old: later reports open a new case
    session.flush()
    return None


def report_outage(
    session: Session,
    *,
    address: str,
    at: datetime,
    account_id: int | None = None,
    consumer_id: int | None = None,
    account_number: str | None = None,
    phone: str | None = None,
    interaction_id: int | None = None,
    timezone: str = SUPPLIER_TIMEZONE,
    actor: str = "ivr",
    window: timedelta = DEFAULT_REPORT_WINDOW,
) -> OutageReportResult:
    """Record a «no power» report for ``address`` (see the module): a new outage case, or
    the open case of the same building when younger than ``window``. ``timezone`` is the
    one the case text gives the time in."""
    if at.tzinfo is None:
        raise InvalidInput("at must be tz-aware")
    if not address.strip():
        raise InvalidInput("адрес сообщения об отключении не может быть пустым")
    key = address_key(address)
    local = at.astimezone(ZoneInfo(timezone)).strftime("%d.%m.%Y %H:%M")
    who = ", ".join(
        part
        for part in (
            f"телефон {phone}" if phone else "",
            f"лицевой счёт {account_number}" if account_number else "",
        )
        if part
    )
    group = _open_group(session, key, at, window)
    joined = group is not None
    if group is None:
        try:
            with session.begin_nested():
                case = open_case(
                    session,
                    case_type="outage",
                    subject=f"Нет электроэнергии: {address}"[:300],
                    account_id=account_id,
                    consumer_id=consumer_id,
                    description=(
                        f"Сообщение об отключении электроэнергии.\nАдрес: {address}\n"
                        f"Время: {local} ({timezone})\n" + (f"Сообщил: {who}\n" if who else "")
                    ),
                    interaction_id=interaction_id,
                    actor=actor,
                    now=at,
                )
                group = OutageCase(
                    case_id=case.id,
                    address_key=key,
                    address=address[:500],
                    open_key=key,
                    opened_at=at,
                )
                session.add(group)
        except IntegrityError:
            # Another caller of the same building opened the case a moment ago: join it.
            group = session.scalars(select(OutageCase).where(OutageCase.open_key == key)).one()
            joined = True
    if joined:
        add_note(
            session,
            group.case_id,
            actor=actor,
            note=f"Ещё одно сообщение об отключении: {local}" + (f", {who}" if who else ""),
            now=at,
        )
    session.add(
        OutageReport(
            outage_case_id=group.id,
            account_id=account_id,
            phone=phone,
            interaction_id=interaction_id,
            address=address[:500],
            reported_at=at,
        )
    )
    session.flush()
    reports = session.scalar(
        select(func.count())
        .select_from(OutageReport)
        .where(OutageReport.outage_case_id == group.id)
    )
    return OutageReportResult(case_id=group.case_id, joined=joined, reports=int(reports or 0))
