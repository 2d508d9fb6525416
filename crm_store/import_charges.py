"""Charges import: monthly accruals, or balance snapshots, from a billing system's export.

``contactcenter import charges FILE`` (CSV or XLSX). Billing exports come in two shapes,
told apart by the header (``docs/import.md`` lists the accepted names):

* **Accruals** (начисления): account, period (``YYYY-MM``, ``MM.YYYY``, ``ноябрь 2026`` or a
  date), amount, and optionally a charge id, a kind (вид начисления: электроэнергия, пени …)
  and a due date (default: the :data:`DUE_DAY`-th of the month after the period, ЖК РФ
  ст. 155). Each accrual is one keyed charge (``source`` ``billing``): the key is
  ``charge:<id>`` when the file gives an id, else ``accrual:<account>:<YYYY-MM>:<kind>``.
  The same key again with the same values changes nothing; with another amount or due date
  it is a recalculation (перерасчёт): the charge is updated and the report lists it; under
  another account it is a conflict error.
* **Balance snapshots** (сальдо на дату): account, balance (positive: the consumer owes;
  negative: overpaid), the date it is as of, optionally a due date. The snapshot sets the
  account's balance **as of that date** to the billing system's figure: one adjustment
  charge (``source`` ``adjustment``, key ``snapshot:<account>:<YYYY-MM-DD>``, billed to that
  month, due on the due date or else the snapshot date) gets the difference between the
  figure and the ledger as of that date (:func:`crm_store.ledger.net_balances`), and keeps
  the figure in ``stated_balance``. Importing the same snapshot again changes nothing, even
  after payments arrived; another figure for the same account and date moves the
  adjustment so the balance as of that date is the new figure. A snapshot older than one
  already applied to the account is refused (it would silently shift the newer one).
  Payments and accruals imported *after* a snapshot count on top of it, even when dated
  before it: import a day's payments and accruals before that day's snapshot.

Rows are streamed and written in batches, one transaction each (:mod:`crm_store.import_batches`);
unknown accounts are row errors (the consumer import creates accounts).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, update
from sqlalchemy.orm import Session

from crm_store.accounts import DEFAULT_RULES, normalize_account_number
from crm_store.db import Database
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
    ProblemLog,
    ProgressFn,
    Shape,
    next_month,
    parse_amount,
    parse_date,
    parse_period,
)
from crm_store.ledger import net_balances, to_money
from crm_store.models import SUPPLIER_TIMEZONE, Charge

log = logging.getLogger(__name__)

_ACCOUNT = Column(
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
)
_DUE = Column(
    "due_date", "Срок оплаты", ("оплатить до", "due date", "due", "pay by"), required=False
)

ACCRUALS = Shape(
    "начисления",
    (
        _ACCOUNT,
        Column(
            "period",
            "Период",
            ("расчетный период", "период начисления", "месяц", "period", "month", "billing period"),
        ),
        Column(
            "amount",
            "Начислено",
            ("сумма начисления", "начисление", "сумма", "amount", "charge", "charged"),
        ),
        Column(
            "charge_id",
            "Номер начисления",
            ("id начисления", "идентификатор начисления", "id", "charge id", "номер документа"),
            required=False,
        ),
        Column(
            "kind",
            "Вид начисления",
            ("услуга", "вид", "тип начисления", "kind", "service"),
            required=False,
        ),
        _DUE,
    ),
)
SNAPSHOTS = Shape(
    "сальдо на дату",
    (
        _ACCOUNT,
        Column(
            "balance",
            "Сальдо",
            (
                "задолженность",
                "долг",
                "остаток",
                "баланс",
                "исходящее сальдо",
                "сальдо на конец",
                "сальдо на дату",
                "balance",
                "debt",
            ),
        ),
        Column(
            "as_of",
            "Дата сальдо",
            ("на дату", "дата", "as of", "as of date", "date", "balance date"),
        ),
        _DUE,
    ),
)

#: Day of the month after the period by which an accrual is due (ЖК РФ ст. 155 ч. 1).
DUE_DAY = 10
MAX_AMOUNT = Decimal(100_000_000)
DEFAULT_KIND = "основное"
_CLEAN_ACCOUNT = re.compile(DEFAULT_RULES.pattern)
_CHARGE_COLUMNS = ("account_id", "period", "amount", "due_date", "source", "external_key")
_SNAPSHOT_COLUMNS = (*_CHARGE_COLUMNS, "stated_balance")
_ACCOUNTS_SQL = "SELECT number, id FROM accounts WHERE number IN ({in})"
_KEYED_SQL = (
    "SELECT external_key, id, account_id, amount, period, due_date, stated_balance "
    "FROM charges WHERE external_key IN ({in})"
)
_SNAPSHOT_KEYS_SQL = (
    "SELECT account_id, external_key FROM charges WHERE account_id IN ({in}) "
    "AND source = ? AND external_key LIKE ?"
)


@dataclass(slots=True)
class ChargeRow:
    """A valid accrual or snapshot row, in stored form (``balance`` only for snapshots)."""

    row: int
    account_raw: str
    account: str
    key: str
    period: date
    amount: Decimal
    due_date: date
    balance: Decimal | None = None
    as_of: date | None = None

    def values(self) -> tuple[Any, ...]:
        """What must match for a repeated key to be "the same"."""
        return (self.account, self.period, self.amount, self.due_date, self.balance)


@dataclass(frozen=True)
class _Stored:
    id: int
    account_id: int
    amount: Decimal
    period: date
    due_date: date
    stated: Decimal | None


class ChargesReport(BatchReport):
    """What a charges import did (accruals or snapshots; counts, first problems, batches)."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"

    @property
    def created(self) -> int:
        """New charges (accruals) or snapshots applied for the first time."""
        return self.counts[self.CREATED]

    @property
    def updated(self) -> int:
        """Recalculated accruals, or snapshots with a new figure for the same date."""
        return self.counts[self.UPDATED]

    @property
    def unchanged(self) -> int:
        """Rows already imported with the same values."""
        return self.counts[self.UNCHANGED]

    def lines(self) -> list[str]:
        """The report as printable Russian lines."""
        out = self.head_lines()
        snapshot = self.shape == SNAPSHOTS.name
        verb = "можно" if self.dry_run else ""
        if snapshot:
            out.append(
                f"Сальдо применено{' (' + verb + ')' if verb else ''}: {self.created} "
                f"(корректировки на сумму {self.amount(self.CREATED)} руб.)"
            )
            out.append(f"  изменено сальдо на ту же дату: {self.updated}")
        else:
            out.append(
                f"Начислений записано{' (' + verb + ')' if verb else ''}: {self.created} "
                f"на сумму {self.amount(self.CREATED)} руб."
            )
            out.append(f"  изменено (перерасчёт): {self.updated}")
        out.extend(self.problems.lines(self.UPDATED, "Изменения")[1:])
        out.append(f"Уже были загружены (без изменений): {self.unchanged}")
        out.extend(self.tail_lines())
        return out


def import_charges(
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
) -> ChargesReport:
    """Import accruals or balance snapshots (the shape is read from the header).

    ``timezone`` gives "today" for refusing future periods and dates; the other keywords
    are those of :func:`crm_store.import_payments.import_payments`.
    Raises :class:`~crm_store.errors.ImportFileError` when the file cannot be read or its
    header fits neither shape (nothing is written then).
    """
    source = Path(source)
    moment = now or datetime.now(UTC)
    today = moment.astimezone(ZoneInfo(timezone)).date()
    report = ChargesReport(
        kind="charges",
        source=str(source),
        dry_run=dry_run,
        problems=ProblemLog(listed, problems_file),
    )
    snapshots = False

    def parser(header: Header) -> ParseFn[ChargeRow]:
        nonlocal snapshots
        snapshots = header.shape is SNAPSHOTS
        return _snapshot_parser(header, today) if snapshots else _accrual_parser(header, today)

    def apply(session: Session, batch: list[ChargeRow], tally: Tally) -> None:
        if snapshots:
            _apply_snapshots(session, batch, tally, moment)
        else:
            _apply_accruals(session, batch, tally, moment)

    run_batches(
        db,
        source,
        BatchImport([ACCRUALS, SNAPSHOTS], parser, apply),
        report,
        file_format=file_format,
        batch_size=batch_size,
        progress=progress,
        run_id=run_id,
    )
    log.info(
        "charges import (%s) of %s: %d rows, %d new, %d updated, %d unchanged, %d rejected",
        report.shape,
        source.name,
        report.rows_read,
        report.created,
        report.updated,
        report.unchanged,
        report.rows_rejected,
    )
    return report


# --------------------------------------------------------------------------- parsing

Problems = list[tuple[str, str]]


def _cells(header: Header) -> Callable[[list[str]], dict[str, str]]:
    index = header.index

    def cells_of(cells: list[str]) -> dict[str, str]:
        width = len(cells)
        return {key: (cells[i].strip() if i < width else "") for key, i in index.items()}

    return cells_of


def _account(text: str, problems: Problems) -> str:
    if not text:
        problems.append(("account", "не указан лицевой счёт"))
    elif len(text) > 64:
        problems.append(("account", "слишком длинный номер лицевого счёта"))
    elif _CLEAN_ACCOUNT.fullmatch(text):
        return text
    else:
        try:
            return normalize_account_number(text)
        except ValueError as exc:
            problems.append(("account", str(exc)))
    return ""


def _money(text: str, column: str, what: str, problems: Problems) -> Decimal | None:
    if not text:
        problems.append((column, f"не указана {what}"))
        return None
    try:
        amount = parse_amount(text)
    except CellError as exc:
        problems.append((column, str(exc)))
        return None
    if abs(amount) >= MAX_AMOUNT:
        problems.append((column, f"слишком большая сумма: «{text}»"))
        return None
    return amount


def _optional_date(text: str, column: str, problems: Problems) -> date | None:
    if not text:
        return None
    try:
        return parse_date(text.split()[0])
    except CellError as exc:
        problems.append((column, str(exc)))
        return None


def _report(tally: Tally, number: int, header: Header, problems: Problems) -> None:
    for key, reason in problems:
        tally.problem(ERROR, number, header.titles.get(key, key), reason)


def _accrual_parser(header: Header, today: date) -> ParseFn[ChargeRow]:
    cells_of = _cells(header)
    this_month = today.replace(day=1)

    def parse(number: int, row: list[str], tally: Tally) -> ChargeRow | None:
        cells = cells_of(row)
        problems: Problems = []
        account = _account(cells["account"], problems)
        period: date | None = None
        if not cells["period"]:
            problems.append(("period", "не указан период"))
        else:
            try:
                period = parse_period(cells["period"])
            except CellError as exc:
                problems.append(("period", str(exc)))
            else:
                if period > this_month:
                    problems.append(("period", f"период в будущем: «{cells['period']}»"))
        amount = _money(cells["amount"], "amount", "сумма начисления", problems)
        due = _optional_date(cells.get("due_date", ""), "due_date", problems)
        charge_id = cells.get("charge_id", "")
        if len(charge_id) > 120:
            problems.append(("charge_id", "слишком длинный номер начисления"))
        kind = " ".join(cells.get("kind", "").lower().replace("ё", "е").split())
        if len(kind) > 40:
            problems.append(("kind", "слишком длинный вид начисления (больше 40 символов)"))
        if period is not None and due is not None and due < period:
            problems.append(("due_date", "срок оплаты раньше начала расчётного периода"))
        if problems or period is None or amount is None:
            _report(tally, number, header, problems)
            return None
        key = (
            f"charge:{charge_id}"
            if charge_id
            else f"accrual:{account}:{period:%Y-%m}:{kind or DEFAULT_KIND}"
        )
        return ChargeRow(
            row=number,
            account_raw=cells["account"],
            account=account,
            key=key,
            period=period,
            amount=amount,
            due_date=due or next_month(period, plus_days=DUE_DAY - 1),
        )

    return parse


def _snapshot_parser(header: Header, today: date) -> ParseFn[ChargeRow]:
    cells_of = _cells(header)

    def parse(number: int, row: list[str], tally: Tally) -> ChargeRow | None:
        cells = cells_of(row)
        problems: Problems = []
        account = _account(cells["account"], problems)
        balance = _money(cells["balance"], "balance", "сумма сальдо", problems)
        as_of: date | None = None
        if not cells["as_of"]:
            problems.append(("as_of", "не указана дата сальдо"))
        else:
            as_of = _optional_date(cells["as_of"], "as_of", problems)
            if as_of is not None and as_of > today:
                problems.append(("as_of", f"дата сальдо в будущем: «{cells['as_of']}»"))
        due = _optional_date(cells.get("due_date", ""), "due_date", problems)
        if problems or balance is None or as_of is None:
            _report(tally, number, header, problems)
            return None
        return ChargeRow(
            row=number,
            account_raw=cells["account"],
            account=account,
            key=snapshot_key(account, as_of),
            period=as_of.replace(day=1),
            amount=Decimal("0.00"),  # the adjustment, computed against the ledger
            due_date=due or as_of,
            balance=balance,
            as_of=as_of,
        )

    return parse


def snapshot_key(account_number: str, as_of: date) -> str:
    """The ``Charge.external_key`` of the adjustment a balance snapshot makes."""
    return f"snapshot:{account_number}:{as_of.isoformat()}"


# --------------------------------------------------------------------------- writing


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _amount(value: Any) -> Decimal:
    return to_money(repr(value) if isinstance(value, float) else value)


def _unique(batch: list[ChargeRow], tally: Tally) -> list[ChargeRow]:
    """The batch without repeats of a key (an identical repeat is a duplicate, else an error)."""
    unique: dict[str, ChargeRow] = {}
    for item in batch:
        seen = unique.get(item.key)
        if seen is None:
            unique[item.key] = item
        elif seen.values() == item.values():
            tally.problem(DUPLICATE, item.row, "*", f"повторяет строку {seen.row}, пропущена")
        else:
            tally.problem(
                ERROR,
                item.row,
                "*",
                f"строка {seen.row} уже задаёт {_what(item)} с другими значениями",
            )
    return list(unique.values())


def _what(item: ChargeRow) -> str:
    if item.as_of is not None:
        return f"сальдо лицевого счёта {item.account_raw} на {item.as_of:%d.%m.%Y}"
    return f"начисление {item.key.split(':', 1)[1]}"


def _known(
    session: Session, items: list[ChargeRow], tally: Tally
) -> tuple[list[ChargeRow], dict[str, int]]:
    """Items whose account exists (the others are row errors) and ``{number: id}``."""
    accounts = {
        str(n): int(i)
        for n, i in select_in(session, _ACCOUNTS_SQL, sorted({c.account for c in items}))
    }
    known = []
    for item in items:
        if item.account in accounts:
            known.append(item)
        else:
            tally.problem(ERROR, item.row, "*", f"лицевой счёт {item.account_raw} не найден")
    return known, accounts


def _stored(session: Session, keys: list[str]) -> dict[str, _Stored]:
    return {
        str(key): _Stored(
            int(charge_id),
            int(account_id),
            _amount(amount),
            _day(period),
            _day(due),
            None if stated is None else _amount(stated),
        )
        for key, charge_id, account_id, amount, period, due, stated in select_in(
            session, _KEYED_SQL, keys
        )
    }


def _update(session: Session, changes: list[dict[str, Any]]) -> None:
    if changes:
        session.connection().execute(
            update(Charge)
            .where(Charge.id == bindparam("charge_id"))
            .values(
                amount=bindparam("new_amount"),
                period=bindparam("new_period"),
                due_date=bindparam("new_due"),
                stated_balance=bindparam("new_stated"),
            ),
            changes,
        )


def _apply_accruals(session: Session, batch: list[ChargeRow], tally: Tally, now: datetime) -> None:
    items, accounts = _known(session, _unique(batch, tally), tally)
    stored = _stored(session, [c.key for c in items])
    new: list[ChargeRow] = []
    changes: list[dict[str, Any]] = []
    for item in items:
        before = stored.get(item.key)
        account_id = accounts[item.account]
        if before is None:
            new.append(item)
        elif before.account_id != account_id:
            tally.problem(
                ERROR, item.row, "*", f"начисление {item.key} относится к другому лицевому счёту"
            )
        elif (before.amount, before.period, before.due_date) == (
            item.amount,
            item.period,
            item.due_date,
        ):
            tally.add(ChargesReport.UNCHANGED)
        else:
            changes.append(
                {
                    "charge_id": before.id,
                    "new_amount": item.amount,
                    "new_period": item.period,
                    "new_due": item.due_date,
                    "new_stated": None,
                }
            )
            tally.add(ChargesReport.UPDATED, item.amount - before.amount)
            tally.problem(
                ChargesReport.UPDATED,
                item.row,
                "*",
                f"перерасчёт {item.key}: было {before.amount}, стало {item.amount} "
                f"(срок {item.due_date:%d.%m.%Y})",
            )
    _update(session, changes)
    writer = BulkInsert(session, Charge, _CHARGE_COLUMNS, "external_key", {"created_at": now})
    inserted = writer.insert(
        session,
        [(accounts[c.account], c.period, c.amount, c.due_date, "billing", c.key) for c in new],
    )
    if inserted != len(new):
        # Another import wrote some of these keys since they were read: compare.
        now_stored = _stored(session, [c.key for c in new])
        raced, new = new, []
        for item in raced:
            after = now_stored.get(item.key)
            if after is not None and (after.account_id, after.amount, after.period) == (
                accounts[item.account],
                item.amount,
                item.period,
            ):
                new.append(item)
            else:
                tally.problem(ERROR, item.row, "*", f"начисление {item.key} уже записано иначе")
    tally.add_many(ChargesReport.CREATED, len(new), sum((c.amount for c in new), Decimal(0)))


def _latest_snapshots(session: Session, account_ids: list[int]) -> dict[int, date]:
    """The date of the newest snapshot already applied to each account."""
    latest: dict[int, date] = {}
    for account_id, key in select_in(
        session, _SNAPSHOT_KEYS_SQL, account_ids, extra=("adjustment", "snapshot:%")
    ):
        day = date.fromisoformat(str(key).rsplit(":", 1)[1])
        if latest.get(int(account_id), date.min) < day:
            latest[int(account_id)] = day
    return latest


def _apply_snapshots(session: Session, batch: list[ChargeRow], tally: Tally, now: datetime) -> None:
    items, accounts = _known(session, _unique(batch, tally), tally)
    stored = _stored(session, [c.key for c in items])
    latest = _latest_snapshots(session, sorted({accounts[c.account] for c in items}))
    todo: list[tuple[ChargeRow, date, Decimal]] = []
    for item in items:
        account_id = accounts[item.account]
        before = stored.get(item.key)
        newest = latest.get(account_id)
        if item.as_of is None or item.balance is None:  # pragma: no cover - set by the parser
            continue
        if before is not None and before.stated == item.balance:
            tally.add(ChargesReport.UNCHANGED)
        elif newest is not None and newest > item.as_of:
            tally.problem(
                ERROR,
                item.row,
                "*",
                f"на лицевой счёт {item.account_raw} уже загружено сальдо на более позднюю "
                f"дату {newest:%d.%m.%Y}: сальдо на {item.as_of:%d.%m.%Y} не применено",
            )
        else:
            todo.append((item, item.as_of, item.balance))
            latest[account_id] = item.as_of
    writer = BulkInsert(session, Charge, _SNAPSHOT_COLUMNS, "external_key", {"created_at": now})
    first: dict[int, date] = {}
    for item, as_of, _ in todo:
        first.setdefault(accounts[item.account], as_of)
    nets = net_balances(session, first)
    pending: list[tuple[Any, ...]] = []
    seen: set[int] = set()
    for item, as_of, balance in todo:
        account_id = accounts[item.account]
        if account_id in seen:  # a second date for the account in this batch: read again
            writer.insert(session, pending)
            pending = []
            nets.update(net_balances(session, {account_id: as_of}))
        seen.add(account_id)
        before = stored.get(item.key)
        difference = balance - nets[account_id]
        if before is None:
            item.amount = difference
            pending.append(
                (
                    account_id,
                    item.period,
                    difference,
                    item.due_date,
                    "adjustment",
                    item.key,
                    balance,
                )
            )
            tally.add(ChargesReport.CREATED, difference)
            continue
        item.amount = before.amount + difference
        _update(
            session,
            [
                {
                    "charge_id": before.id,
                    "new_amount": item.amount,
                    "new_period": item.period,
                    "new_due": item.due_date,
                    "new_stated": balance,
                }
            ],
        )
        tally.add(ChargesReport.UPDATED, difference)
        tally.problem(
            ChargesReport.UPDATED,
            item.row,
            "*",
            f"сальдо лицевого счёта {item.account_raw} на {as_of:%d.%m.%Y}: было "
            f"{before.stated}, стало {balance}",
        )
    if writer.insert(session, pending) != len(pending):
        raise ValueError("сальдо на эту дату одновременно загружает другой импорт")
