"""Payments registry import: the daily files banks and payment agents send.

``contactcenter import payments FILE`` (CSV or XLSX, see ``docs/import.md`` for the accepted
headers). Each row is one payment: account number, amount, date (and time) of payment, the
registry's payment id and, optionally, the bank or agent. The import is idempotent on the
payment id: a file imported twice changes nothing; the same id again with another account,
amount or date is a located conflict error. A payment is written straight into the ledger
(``payments``), so the balance the hotline reads and the campaigns' dial-time debt check see
it at once.

A payment for an account number the CRM does not know is not lost: it is kept aside in
``unmatched_payments`` and reported; when an account with that number appears (a consumer
import, :func:`match_kept_payments`, or this import run again after the account exists) the
payment is recorded on it.

Rows are streamed and written in batches (:mod:`crm_store.import_batches`): per batch one
query finds the accounts, one ``INSERT … ON CONFLICT DO NOTHING RETURNING`` writes the new
payments, and only the ids already stored are read back to tell "unchanged" from "conflict".
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from crm_store.accounts import DEFAULT_RULES, normalize_account_number
from crm_store.db import Database, dialect_insert
from crm_store.errors import InvalidInput
from crm_store.import_batches import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_LISTED,
    DUPLICATE,
    ERROR,
    BatchImport,
    BatchReport,
    BulkInsert,
    ParseFn,
    Tally,
    run_batches,
    select_in,
)
from crm_store.import_files import (
    CellError,
    Column,
    FileFormat,
    Header,
    MomentReader,
    ProblemLog,
    ProgressFn,
    Shape,
    parse_amount,
    parse_time,
)
from crm_store.ledger import record_payment, to_money
from crm_store.models import (
    PAYMENT_CHANNELS,
    SUPPLIER_TIMEZONE,
    Account,
    Payment,
    UnmatchedPayment,
)

log = logging.getLogger(__name__)

PAYMENTS = Shape(
    "реестр платежей",
    (
        Column(
            "account",
            "Лицевой счёт",
            (
                "лицевой счет",
                "лицевой счет абонента",
                "номер лицевого счета",
                "лиц счет",
                "лс",
                "л с",
                "номер лс",
                "номер л с",
                "account",
                "account number",
                "account no",
            ),
        ),
        Column(
            "amount",
            "Сумма",
            (
                "сумма платежа",
                "сумма оплаты",
                "сумма операции",
                "оплачено",
                "amount",
                "sum",
                "payment amount",
            ),
        ),
        Column(
            "paid_at",
            "Дата платежа",
            (
                "дата оплаты",
                "дата и время платежа",
                "дата время платежа",
                "дата и время оплаты",
                "дата операции",
                "дата",
                "paid at",
                "paid on",
                "payment date",
                "date",
            ),
        ),
        Column(
            "payment_id",
            "Номер платежа",
            (
                "id платежа",
                "идентификатор платежа",
                "уникальный номер платежа",
                "номер операции",
                "id",
                "payment id",
                "transaction id",
                "external id",
            ),
        ),
        Column(
            "paid_time",
            "Время платежа",
            ("время оплаты", "время операции", "время", "time", "payment time"),
            required=False,
        ),
        Column(
            "agent",
            "Агент",
            (
                "платежный агент",
                "банк",
                "канал",
                "канал оплаты",
                "способ оплаты",
                "agent",
                "channel",
                "bank",
                "payment channel",
            ),
            required=False,
        ),
    ),
)

#: Largest single payment accepted (a typo guard; the column holds far more).
MAX_PAYMENT = Decimal(100_000_000)
#: A registry's clock may run ahead of ours by this much before a time counts as future.
FUTURE_TOLERANCE = timedelta(hours=1)
EARLIEST = date(2000, 1, 1)
#: Account ids remembered across the batches of one import (at most ~30 MiB).
ACCOUNT_CACHE = 200_000
#: An account number already in the stored form of the default rules (no normalising needed).
_CLEAN_ACCOUNT = re.compile(DEFAULT_RULES.pattern)
UNMATCHED = "unmatched"

# Words in an agent's name that say the channel (checked in this order; default ``bank``).
_CHANNEL_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sbp", ("сбп", "sbp", "быстрых платеж", "qr")),
    ("card", ("карт", "card", "эквайр")),
    ("cash", ("касс", "налич", "cash", "почта")),
    ("web", ("личный кабинет", "сайт", "web")),
    ("ivr", ("ivr", "голосов")),
)


def channel_of(agent: str) -> str:
    """The ledger channel (:data:`~crm_store.models.PAYMENT_CHANNELS`) of an agent's name.

    A channel name itself (``sbp``, ``card`` …) is taken as is; otherwise words in the name
    decide (``СБП`` → sbp, ``Эквайринг карт`` → card, ``Почта России`` → cash, ``Личный
    кабинет`` → web); any other bank or agent is ``bank``.
    """
    folded = agent.strip().lower().replace("ё", "е")
    if folded in PAYMENT_CHANNELS:
        return folded
    for channel, words in _CHANNEL_WORDS:
        if any(word in folded for word in words):
            return channel
    return "bank"


@dataclass(slots=True)
class RegistryPayment:
    """A valid registry row, in stored form."""

    row: int
    account_raw: str
    account: str
    amount: Decimal
    paid_on: date
    paid_at: datetime | None
    external_id: str
    channel: str
    agent: str | None

    def same_as(self, account: str, amount: Decimal, paid_on: date) -> bool:
        """True when a stored payment with this id has the same account, amount and date."""
        return self.account == account and self.amount == amount and self.paid_on == paid_on


class PaymentsReport(BatchReport):
    """What a payments import did (counts by outcome, first problem rows, batches)."""

    RECORDED = "recorded"
    MATCHED = "matched"
    UNCHANGED = "unchanged"
    KEPT_ASIDE = "kept_aside"
    STILL_ASIDE = "still_aside"

    @property
    def recorded(self) -> int:
        """New payments written to the ledger (including ones kept aside before)."""
        return self.counts[self.RECORDED]

    @property
    def unchanged(self) -> int:
        """Payments already imported with the same values (a file imported again)."""
        return self.counts[self.UNCHANGED]

    @property
    def kept_aside(self) -> int:
        """Payments for unknown accounts newly kept aside."""
        return self.counts[self.KEPT_ASIDE]

    def lines(self) -> list[str]:
        """The report as printable Russian lines."""
        out = self.head_lines()
        would = "Можно записать" if self.dry_run else "Записано"
        out.append(f"{would} платежей: {self.recorded} на сумму {self.amount(self.RECORDED)} руб.")
        if self.counts[self.MATCHED]:
            out.append(
                f"  из них ранее отложенных (лицевой счёт появился): {self.counts[self.MATCHED]}"
            )
        out.append(f"Уже были загружены (без изменений): {self.unchanged}")
        aside = self.kept_aside + self.counts[self.STILL_ASIDE]
        if aside:
            out.append(
                f"Отложено — лицевой счёт не найден: {aside} на сумму "
                f"{self.amount(self.KEPT_ASIDE) + self.amount(self.STILL_ASIDE)} руб. "
                "(сохранены и будут зачислены, когда счёт появится)"
            )
            if self.counts[self.STILL_ASIDE]:
                out.append(f"  из них отложены ещё раньше: {self.counts[self.STILL_ASIDE]}")
            out.extend(self.problems.lines(UNMATCHED, "Лицевые счета не найдены")[1:])
        out.extend(self.tail_lines())
        return out


def import_payments(
    db: Database,
    source: Path | str,
    *,
    progress: ProgressFn | None = None,
    file_format: FileFormat | None = None,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    timezone: str = SUPPLIER_TIMEZONE,
    now: datetime | None = None,
    run_id: int | None = None,
    problems_file: Path | None = None,
    listed: int = DEFAULT_LISTED,
) -> PaymentsReport:
    """Import a payments registry (CSV or XLSX) into the ledger; returns the report.

    ``timezone`` is the zone of times written without an offset (the registry's clock,
    Moscow by default); ``now`` bounds dates in the future. ``progress`` is called after
    every batch; ``run_id`` (an :class:`~crm_store.models.ImportRun`) is advanced in each
    batch's transaction and finished with the report. ``problems_file`` receives every
    problem row as CSV (the report lists the first ``listed`` of each kind). ``dry_run``
    checks everything against the database and writes nothing.
    Raises :class:`~crm_store.errors.ImportFileError` when the file cannot be read or is not
    a payments registry (nothing is written then).
    """
    source = Path(source)
    moment = now or datetime.now(UTC)
    zone = ZoneInfo(timezone)
    report = PaymentsReport(
        kind="payments",
        source=str(source),
        dry_run=dry_run,
        problems=ProblemLog(listed, problems_file),
    )
    name = source.name

    def parser(header: Header) -> ParseFn[RegistryPayment]:
        return _parser(header, zone, moment)

    accounts: dict[str, int] = {}

    def apply(session: Session, batch: list[RegistryPayment], tally: Tally) -> None:
        _apply(session, batch, tally, name, moment, accounts)

    run_batches(
        db,
        source,
        BatchImport([PAYMENTS], parser, apply),
        report,
        file_format=file_format,
        batch_size=batch_size,
        progress=progress,
        run_id=run_id,
    )
    log.info(
        "payments import of %s: %d rows, %d recorded, %d unchanged, %d kept aside, %d rejected",
        name,
        report.rows_read,
        report.recorded,
        report.unchanged,
        report.kept_aside,
        report.rows_rejected,
    )
    return report


# --------------------------------------------------------------------------- parsing


def _parser(header: Header, zone: ZoneInfo, now: datetime) -> ParseFn[RegistryPayment]:
    """The row parser for a registry with this header (the hot path: one call per row)."""
    index, titles = header.index, header.titles
    i_account, i_amount = index["account"], index["amount"]
    i_date, i_id = index["paid_at"], index["payment_id"]
    i_time, i_agent = index.get("paid_time"), index.get("agent")
    width = max(index.values()) + 1
    # In the file's zone: comparing moments with the same tzinfo skips the UTC offsets.
    latest = (now + FUTURE_TOLERANCE).astimezone(zone)
    today = now.astimezone(zone).date()
    channels: dict[str, str] = {}
    normalize = normalize_account_number
    clean = _CLEAN_ACCOUNT.fullmatch
    moments = MomentReader(zone)

    def parse(number: int, cells: list[str], tally: Tally) -> RegistryPayment | None:
        if len(cells) < width:
            cells = cells + [""] * (width - len(cells))
        problems: list[tuple[str, str]] = []
        account_raw = cells[i_account].strip()
        account = ""
        if not account_raw:
            problems.append(("account", "не указан лицевой счёт"))
        elif len(account_raw) > 64:
            problems.append(("account", "слишком длинный номер лицевого счёта"))
        elif clean(account_raw):
            account = account_raw  # already in the stored form (the usual case)
        else:
            try:
                account = normalize(account_raw)
            except ValueError as exc:
                problems.append(("account", str(exc)))
        amount = _amount(cells[i_amount].strip(), problems)
        date_text = cells[i_date].strip()
        paid_on, paid_at = _moment(
            moments, date_text, cells[i_time].strip() if i_time is not None else "", zone, problems
        )
        if paid_at is not None and paid_at > latest:
            problems.append(("paid_at", f"платёж в будущем: «{date_text}»"))
        elif paid_on is not None and paid_on > today and paid_at is None:
            problems.append(("paid_at", f"дата платежа в будущем: «{date_text}»"))
        elif paid_on is not None and paid_on < EARLIEST:
            problems.append(("paid_at", f"слишком старая дата платежа: «{date_text}»"))
        external_id = cells[i_id].strip()
        if not external_id:
            problems.append(("payment_id", "не указан номер платежа"))
        elif len(external_id) > 128:
            problems.append(("payment_id", "слишком длинный номер платежа"))
        if problems or amount is None or paid_on is None:
            for key, reason in problems:
                tally.problem(ERROR, number, titles[key], reason)
            return None
        agent_text = cells[i_agent].strip() if i_agent is not None else ""
        channel = channels.get(agent_text)
        if channel is None:
            channel = channels.setdefault(agent_text, channel_of(agent_text))
        return RegistryPayment(  # positional: the fastest on this hot path
            number,
            account_raw,
            account,
            amount,
            paid_on,
            paid_at,
            external_id,
            channel,
            agent_text[:128] or None,
        )

    return parse


def _amount(text: str, problems: list[tuple[str, str]]) -> Decimal | None:
    if not text:
        problems.append(("amount", "не указана сумма"))
        return None
    try:
        amount = parse_amount(text)
    except CellError as exc:
        problems.append(("amount", str(exc)))
        return None
    if amount < 0:
        problems.append(
            ("amount", f"отрицательная сумма (возврат, сторно) не загружается: «{text}»")
        )
    elif amount == 0:
        problems.append(("amount", "сумма платежа должна быть больше нуля"))
    elif amount >= MAX_PAYMENT:
        problems.append(("amount", f"слишком большая сумма платежа: «{text}»"))
    else:
        return amount
    return None


def _moment(
    moments: MomentReader,
    text: str,
    time_text: str,
    zone: ZoneInfo,
    problems: list[tuple[str, str]],
) -> tuple[date | None, datetime | None]:
    if not text:
        problems.append(("paid_at", "не указана дата платежа"))
        return None, None
    try:
        paid_on, paid_at = moments(text)
    except CellError as exc:
        problems.append(("paid_at", str(exc)))
        return None, None
    if time_text and paid_at is None:
        try:
            clock = parse_time(time_text)
        except CellError as exc:
            problems.append(("paid_time", str(exc)))
            return None, None
        paid_at = datetime.combine(paid_on, clock, tzinfo=zone)
    return paid_on, paid_at


# --------------------------------------------------------------------------- writing


_PAYMENT_COLUMNS = (
    "account_id",
    "amount",
    "paid_on",
    "paid_at",
    "channel",
    "agent",
    "external_id",
)
_ACCOUNTS_SQL = "SELECT number, id FROM accounts WHERE number IN ({in})"
_STORED_SQL = (
    "SELECT p.external_id, a.number, p.amount, p.paid_on FROM payments p "
    "JOIN accounts a ON a.id = p.account_id WHERE p.external_id IN ({in})"
)
_PENDING_SQL = (
    "SELECT external_id FROM unmatched_payments WHERE external_id IN ({in}) AND matched_at IS NULL"
)
_PAYMENT_IDS_SQL = "SELECT external_id, id FROM payments WHERE external_id IN ({in})"


def _insert(session: Session, model: type[Any]) -> Any:
    return dialect_insert(session.get_bind().dialect.name, model.__table__)


def _money(value: Any) -> Decimal:
    """A stored amount as read by the driver (SQLite gives a number) as Decimal roubles."""
    if isinstance(value, float):
        return to_money(repr(value))
    return to_money(value)


def _day(value: Any) -> date:
    """A stored date as read by the driver (SQLite gives ISO text)."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _account_ids(session: Session, numbers: set[str], cache: dict[str, int]) -> dict[str, int]:
    """``{number: account id}`` of the known accounts among ``numbers``.

    ``cache`` keeps the ids found by earlier batches of the import (bounded by
    :data:`ACCOUNT_CACHE`): a registry pays the same accounts again and again.
    """
    found = {number: cache[number] for number in numbers if number in cache}
    missing = sorted(numbers.difference(found))
    if missing:
        if len(cache) > ACCOUNT_CACHE:
            cache.clear()
        for number, account_id in select_in(session, _ACCOUNTS_SQL, missing):
            found[str(number)] = cache[str(number)] = int(account_id)
    return found


def _apply(
    session: Session,
    batch: list[RegistryPayment],
    tally: Tally,
    source: str,
    now: datetime,
    cache: dict[str, int],
) -> None:
    """Write one batch: new payments to the ledger, unknown accounts aside, repeats checked."""
    unique: dict[str, RegistryPayment] = {}
    for payment in batch:
        seen = unique.get(payment.external_id)
        if seen is None:
            unique[payment.external_id] = payment
        elif seen.same_as(payment.account, payment.amount, payment.paid_on):
            tally.problem(DUPLICATE, payment.row, "*", f"повторяет строку {seen.row}, пропущена")
        else:
            tally.problem(
                ERROR,
                payment.row,
                "*",
                f"номер платежа {payment.external_id} уже есть в строке {seen.row} "
                "с другим лицевым счётом, суммой или датой",
            )
    items = list(unique.values())
    accounts = _account_ids(session, {p.account for p in items}, cache)
    known = [p for p in items if p.account in accounts]
    unknown = [p for p in items if p.account not in accounts]
    if known:
        _record(session, known, accounts, tally, now)
    if unknown:
        _keep_aside(session, unknown, tally, source, now)


def _record(
    session: Session,
    payments: list[RegistryPayment],
    accounts: dict[str, int],
    tally: Tally,
    now: datetime,
) -> None:
    """New ids into ``payments`` (one executemany); ids already there: unchanged or conflict."""
    stored = _stored_payments(session, [p.external_id for p in payments])
    new: list[RegistryPayment] = []
    for payment in payments:
        before = stored.get(payment.external_id)
        if before is None:
            new.append(payment)
        elif payment.same_as(*before):
            tally.add(PaymentsReport.UNCHANGED)
        else:
            tally.problem(ERROR, payment.row, "*", _conflict(payment.external_id, before))
    if not new:
        return
    writer = BulkInsert(session, Payment, _PAYMENT_COLUMNS, "external_id", {"created_at": now})
    amount, day, moment = (writer.converter(c) for c in ("amount", "paid_on", "paid_at"))
    (created,) = writer.tail
    inserted = writer.insert_converted(
        session,
        [
            (
                accounts[p.account],
                amount(p.amount),
                day(p.paid_on),
                None if p.paid_at is None else moment(p.paid_at),
                p.channel,
                p.agent,
                p.external_id,
                created,
            )
            for p in new
        ],
        complete=True,
    )
    if inserted != len(new):
        # Another import wrote some of these ids since the check: compare what is stored.
        stored = _stored_payments(session, [p.external_id for p in new])
        raced = new
        new = []
        for payment in raced:
            before = stored.get(payment.external_id)
            if before is not None and payment.same_as(*before):
                new.append(payment)
            else:
                tally.problem(ERROR, payment.row, "*", _conflict(payment.external_id, before))
    tally.add_many(PaymentsReport.RECORDED, len(new), sum((p.amount for p in new), Decimal(0)))
    _match_pending(session, new, tally, now)


def _match_pending(
    session: Session, payments: list[RegistryPayment], tally: Tally, now: datetime
) -> None:
    """Payments kept aside earlier under these ids are matched to the ones just recorded."""
    if not kept_payments_exist(session):
        return
    ids = [p.external_id for p in payments]
    pending = [str(row[0]) for row in select_in(session, _PENDING_SQL, ids)]
    if not pending:
        return
    payment_ids = {str(e): int(i) for e, i in select_in(session, _PAYMENT_IDS_SQL, pending)}
    for external_id in pending:
        tally.add(PaymentsReport.MATCHED)
        session.execute(
            update(UnmatchedPayment)
            .where(UnmatchedPayment.external_id == external_id)
            .values(matched_at=now, payment_id=payment_ids.get(external_id))
        )


def _stored_payments(session: Session, ids: list[str]) -> dict[str, tuple[str, Decimal, date]]:
    """``{external id: (account number, amount, paid on)}`` of stored payments."""
    return {
        str(external_id): (str(number), _money(amount), _day(paid_on))
        for external_id, number, amount, paid_on in select_in(session, _STORED_SQL, ids)
    }


def _conflict(external_id: str, before: tuple[str, Decimal, date] | None) -> str:
    if before is None:  # pragma: no cover - the id was refused, so it is stored
        return f"платёж {external_id} не удалось записать"
    number, amount, paid_on = before
    return (
        f"платёж {external_id} уже загружен с другими данными: лицевой счёт {number}, "
        f"сумма {amount}, дата {paid_on:%d.%m.%Y}"
    )


def _keep_aside(
    session: Session, payments: list[RegistryPayment], tally: Tally, source: str, now: datetime
) -> None:
    """Payments for unknown accounts go to ``unmatched_payments`` (idempotent on the id)."""
    ids = [p.external_id for p in payments]
    in_ledger = _stored_payments(session, ids)
    fresh = []
    for payment in payments:
        before = in_ledger.get(payment.external_id)
        if before is None:
            fresh.append(payment)
        else:
            tally.problem(ERROR, payment.row, "*", _conflict(payment.external_id, before))
    if not fresh:
        return
    rows = [
        {
            "account_number": p.account,
            "account_number_raw": p.account_raw,
            "external_id": p.external_id,
            "amount": p.amount,
            "paid_on": p.paid_on,
            "paid_at": p.paid_at,
            "channel": p.channel,
            "agent": p.agent,
            "source": source[-500:],
            "source_row": p.row,
            "created_at": now,
        }
        for p in fresh
    ]
    table = UnmatchedPayment.__table__
    stmt = (
        _insert(session, UnmatchedPayment)
        .on_conflict_do_nothing(index_elements=["external_id"])
        .returning(table.c.external_id)
    )
    inserted = set(session.connection().execute(stmt, rows).scalars().all())
    earlier: dict[str, tuple[str, Decimal, date]] = {}
    if len(inserted) < len(fresh):
        for external_id, number, amount, paid_on in session.execute(
            select(
                UnmatchedPayment.external_id,
                UnmatchedPayment.account_number,
                UnmatchedPayment.amount,
                UnmatchedPayment.paid_on,
            ).where(UnmatchedPayment.external_id.in_([p.external_id for p in fresh]))
        ):
            earlier[external_id] = (number, to_money(amount), paid_on)
    for payment in fresh:
        if payment.external_id in inserted:
            tally.add(PaymentsReport.KEPT_ASIDE, payment.amount)
            tally.problem(
                UNMATCHED,
                payment.row,
                "*",
                f"лицевой счёт {payment.account_raw} не найден: платёж {payment.external_id} "
                f"на {payment.amount} руб. отложен",
            )
            continue
        before = earlier.get(payment.external_id)
        if before is not None and payment.same_as(*before):
            tally.add(PaymentsReport.STILL_ASIDE, payment.amount)
        else:
            tally.problem(ERROR, payment.row, "*", _conflict(payment.external_id, before))


# --------------------------------------------------------------------------- matching later


def kept_payments_exist(session: Session) -> bool:
    """True when some registry payment is kept aside, waiting for its account."""
    return bool(session.scalar(select(exists().where(UnmatchedPayment.matched_at.is_(None)))))


def match_kept_payments(session: Session, account: Account, *, now: datetime | None = None) -> int:
    """Record on ``account`` the payments kept aside for its number; returns how many.

    Called by the consumer import for every account it imports. A kept payment whose id is
    already in the ledger with other values stays aside (logged), never lost.
    """
    moment = now or datetime.now(UTC)
    pending = session.scalars(
        select(UnmatchedPayment)
        .where(
            UnmatchedPayment.account_number == account.number,
            UnmatchedPayment.matched_at.is_(None),
        )
        .order_by(UnmatchedPayment.id)
    ).all()
    matched = 0
    for kept in pending:
        try:
            payment = record_payment(
                session,
                account.id,
                amount=kept.amount,
                paid_on=kept.paid_on,
                channel=kept.channel,
                external_id=kept.external_id,
                paid_at=kept.paid_at,
                agent=kept.agent,
            )
        except InvalidInput as exc:
            log.warning("kept payment %s not matched: %s", kept.id, exc)
            continue
        kept.matched_at = moment
        kept.payment_id = payment.id
        matched += 1
    return matched
