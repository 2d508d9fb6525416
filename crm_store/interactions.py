"""The contact history: start, extend and finish interactions; search them.

An interaction is keyed by the provider's id (CallSid / MessageSid) when it has one, and
every write is idempotent under webhook retries: starting twice returns the same row,
a step with an explicit ``seq`` is stored once, finishing twice keeps the first end time.

:func:`search_interactions` filters by account, phone, time range, channel, direction,
outcome, campaign and text (summary or transcripts, case-insensitive substring) and pages
by keyset on ``(started_at, id)`` descending, so deep pages stay cheap on millions of rows.

Text search runs on ``Interaction.search_text``: the summary and every transcript text,
lower-cased with Python's full Unicode folding, one per line. This module keeps it up to
date (:func:`update_interaction` / :func:`finish_interaction` with a summary recompute it,
:func:`add_transcript` appends), so summaries and transcripts must be written through these
functions. The filter is ``search_text LIKE '%<lower-cased text>%'``: on PostgreSQL a
trigram GIN index (``pg_trgm``, migration 0003) serves it for texts of three or more
characters; on SQLite it scans, as before. Every other filter has a b-tree index that also
serves the ``started_at`` order (see docs/benchmarks.md, "Interaction search").
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session

from contactcenter.phones import InvalidPhoneError, normalize_phone
from crm_store.db import dialect_insert, insert_or_existing
from crm_store.errors import InvalidInput, NotFound
from crm_store.models import (
    DIRECTIONS,
    INTERACTION_CHANNELS,
    Interaction,
    InteractionStep,
    Transcript,
    utcnow,
)

MAX_PAGE_SIZE = 500


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise InvalidInput(f"{name} must be a tz-aware datetime")
    return value


def _phone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return normalize_phone(value, require_russian=False)
    except InvalidPhoneError as exc:
        raise InvalidInput(f"некорректный номер телефона: {exc}") from None


def get_interaction(session: Session, key: int | str) -> Interaction:
    """The interaction with id ``key`` (int) or provider SID ``key`` (str); else NotFound."""
    if isinstance(key, int):
        row = session.get(Interaction, key)
    else:
        row = session.scalars(
            select(Interaction).where(Interaction.provider_sid == key)
        ).one_or_none()
    if row is None:
        raise NotFound(f"interaction {key!r} does not exist")
    return row


def start_interaction(
    session: Session,
    *,
    channel: str,
    direction: str,
    provider_sid: str | None = None,
    phone: str | None = None,
    account_id: int | None = None,
    consumer_id: int | None = None,
    campaign_id: int | None = None,
    attempt_id: int | None = None,
    operator: str | None = None,
    started_at: datetime | None = None,
    status: str = "started",
    data: dict[str, Any] | None = None,
) -> Interaction:
    """Record the start of a contact, or return the one already recorded for ``provider_sid``.

    On a repeat, links that were unknown before (account, consumer, phone, campaign, attempt)
    are filled in; nothing already recorded is overwritten. ``phone`` may be in any notation
    and is stored in E.164.
    """
    if channel not in INTERACTION_CHANNELS:
        raise InvalidInput(f"unknown channel {channel!r}")
    if direction not in DIRECTIONS:
        raise InvalidInput(f"unknown direction {direction!r}")
    _aware(started_at, "started_at")
    e164 = _phone(phone)
    fill = {
        "phone": e164,
        "account_id": account_id,
        "consumer_id": consumer_id,
        "campaign_id": campaign_id,
        "attempt_id": attempt_id,
        "operator": operator,
    }
    if provider_sid is not None:
        existing = session.scalars(
            select(Interaction).where(Interaction.provider_sid == provider_sid)
        ).one_or_none()
        if existing is not None:
            return _fill_missing(existing, fill)
    row = Interaction(
        channel=channel,
        direction=direction,
        provider_sid=provider_sid,
        started_at=started_at or utcnow(),
        status=status,
        data=dict(data or {}),
        **fill,
    )
    # Refused with a SID: a concurrent webhook for the same SID won the race; use its row.
    stored, inserted = insert_or_existing(
        session,
        row,
        lambda: get_interaction(session, provider_sid) if provider_sid is not None else None,
    )
    return row if inserted else _fill_missing(stored, fill)


def _fill_missing(row: Interaction, values: dict[str, Any]) -> Interaction:
    for key, value in values.items():
        if value is not None and getattr(row, key) is None:
            setattr(row, key, value)
    return row


def _refresh_search_text(session: Session, row: Interaction) -> None:
    """Recompute ``row.search_text`` from its summary and stored transcripts."""
    texts = [row.summary or ""]
    if row.id is not None:
        session.flush()
        texts.extend(
            session.scalars(
                select(Transcript.text)
                .where(Transcript.interaction_id == row.id)
                .order_by(Transcript.id)
            )
        )
    row.search_text = search_text_of(texts)


def search_text_of(texts: list[str]) -> str:
    """The ``search_text`` of an interaction: its texts lower-cased, one a line.

    The summary comes first, then the transcripts in the order they were stored.
    """
    return "\n".join(t or "" for t in texts).lower()


def update_interaction(
    session: Session,
    key: int | str,
    *,
    account_id: int | None = None,
    consumer_id: int | None = None,
    status: str | None = None,
    outcome: str | None = None,
    summary: str | None = None,
    data: dict[str, Any] | None = None,
    flush: bool = True,
) -> Interaction:
    """Set the given fields of an ongoing interaction; ``data`` is merged key by key.
    ``flush=False`` leaves the UPDATE to the session's next flush (one statement for several
    changes of a transaction)."""
    row = get_interaction(session, key)
    _apply(
        session,
        row,
        {
            "account_id": account_id,
            "consumer_id": consumer_id,
            "status": status,
            "outcome": outcome,
            "summary": summary,
        },
        data,
        flush=flush,
    )
    return row


def _apply(
    session: Session,
    row: Interaction,
    fields: dict[str, Any],
    data: dict[str, Any] | None,
    *,
    flush: bool = True,
) -> None:
    """Set the given (non-None) fields, merge ``data``, keep ``search_text`` in step, flush
    (unless ``flush`` is False)."""
    old_summary = row.summary
    for name, value in fields.items():
        if value is not None:
            setattr(row, name, value)
    if data:
        row.data = {**(row.data or {}), **data}
    summary = fields.get("summary")
    if summary is not None:
        head = (old_summary or "").lower()
        if (
            row.search_text is not None
            and old_summary is not None
            and row.search_text.startswith(head)
        ):
            # the summary leads search_text: swap it without reading the transcripts again
            row.search_text = summary.lower() + row.search_text[len(head) :]
        else:
            _refresh_search_text(session, row)
    if flush:
        session.flush()


def append_step(
    session: Session,
    key: int | str,
    step: str,
    *,
    event: str = "enter",
    input: str | None = None,
    outcome: str | None = None,
    seq: int | None = None,
    at: datetime | None = None,
) -> InteractionStep:
    """Append one IVR step transition.

    With ``seq`` (the caller's own step counter, e.g. from the call session) the call is
    idempotent: a step already stored under that number is returned unchanged. Without it
    the step gets the next number. ``input`` must already be masked by the caller where
    it holds personal data.
    """
    _aware(at, "at")
    row = get_interaction(session, key)
    if seq is not None:
        existing = session.scalars(
            select(InteractionStep).where(
                InteractionStep.interaction_id == row.id, InteractionStep.seq == seq
            )
        ).one_or_none()
        if existing is not None:
            return existing
    else:
        last = session.scalar(
            select(func.max(InteractionStep.seq)).where(InteractionStep.interaction_id == row.id)
        )
        seq = (last or 0) + 1
    step_row = InteractionStep(
        interaction_id=row.id,
        seq=seq,
        step=step,
        event=event,
        input=input,
        outcome=outcome,
        at=at or utcnow(),
    )
    session.add(step_row)
    session.flush()
    return step_row


@dataclass(frozen=True)
class NewStep:
    """One IVR step transition to store with :func:`append_steps`."""

    seq: int
    step: str
    event: str = "enter"
    input: str | None = None
    outcome: str | None = None
    at: datetime | None = None


def append_steps(session: Session, interaction_id: int, steps: list[NewStep]) -> int:
    """Append several numbered steps to interaction ``interaction_id`` in one statement (a
    webhook's whole path: ``INSERT … ON CONFLICT DO NOTHING``); idempotent like
    :func:`append_step` with ``seq``: steps whose number is already stored are skipped.
    Returns how many were added. ``input`` must already be masked by the caller where it
    holds personal data."""
    if not steps:
        return 0
    for item in steps:
        _aware(item.at, "at")
    now = utcnow()
    rows = [
        {
            "interaction_id": interaction_id,
            "seq": item.seq,
            "step": item.step,
            "event": item.event,
            "input": item.input,
            "outcome": item.outcome,
            "at": item.at or now,
        }
        for item in steps
    ]
    # The Core table, not the mapped class: the ORM's bulk insert path costs several times
    # the statement itself for a batch this small.
    table = InteractionStep.__table__
    stmt = (
        dialect_insert(session.get_bind().dialect.name, table)
        .on_conflict_do_nothing(index_elements=["interaction_id", "seq"])
        .returning(table.c.seq)
    )
    return len(session.execute(stmt, rows).scalars().all())


def add_transcript(
    session: Session,
    key: int | str,
    step: str,
    text: str,
    *,
    confidence: float | None = None,
    audio_ref: str | None = None,
    decision: str | None = None,
    at: datetime | None = None,
) -> Transcript:
    """Store what the recogniser heard at ``step`` with its confidence and the decision."""
    _aware(at, "at")
    if confidence is not None and not 0.0 <= confidence <= 1.0:
        raise InvalidInput(f"confidence must be within 0..1, got {confidence}")
    row = get_interaction(session, key)
    transcript = Transcript(
        interaction_id=row.id,
        step=step,
        text=text,
        confidence=confidence,
        audio_ref=audio_ref,
        decision=decision,
        at=at or utcnow(),
    )
    session.add(transcript)
    session.flush()
    # Appending keeps the stored order (summary, then transcripts by id).
    row.search_text = (row.search_text or "") + "\n" + (text or "").lower()
    session.flush()
    return transcript


def finish_interaction(
    session: Session,
    key: int | str,
    *,
    status: str = "completed",
    outcome: str | None = None,
    ended_at: datetime | None = None,
    summary: str | None = None,
    recording_ref: str | None = None,
    operator: str | None = None,
    data: dict[str, Any] | None = None,
) -> Interaction:
    """Record the end of a contact (idempotent: the first end time is kept).

    ``outcome``, ``summary``, ``recording_ref`` and ``operator`` are set when given, so a
    later status callback can add the recording of a call that already ended.
    """
    _aware(ended_at, "ended_at")
    row = get_interaction(session, key)
    if row.ended_at is None:
        end = ended_at or utcnow()
        # Twilio's Timestamp has whole seconds and another clock: never before the start.
        started = row.started_at
        if started is not None and started.tzinfo is None:
            started = started.replace(tzinfo=UTC)
        row.ended_at = max(end, started) if started is not None else end
    row.status = status
    _apply(
        session,
        row,
        {
            "outcome": outcome,
            "summary": summary,
            "recording_ref": recording_ref,
            "operator": operator,
        },
        data,
    )
    return row


@dataclass(frozen=True)
class InteractionQuery:
    """Search filters; every given filter must match (``None`` = no filter).

    ``since`` is inclusive and ``until`` exclusive. ``text`` is a case-insensitive substring
    of the summary or of any transcript.
    """

    account_id: int | None = None
    phone: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    channel: str | None = None
    direction: str | None = None
    outcome: str | None = None
    campaign_id: int | None = None
    text: str | None = None


@dataclass(frozen=True)
class Page:
    """One page of results, newest first; pass ``next_cursor`` to get the next page."""

    items: list[Interaction]
    next_cursor: str | None = None
    filters: InteractionQuery = field(default_factory=InteractionQuery)


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def encode_cursor(started_at: datetime, interaction_id: int) -> str:
    """An opaque page cursor for the position after ``(started_at, id)``."""
    raw = f"{started_at.isoformat()}|{interaction_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Inverse of :func:`encode_cursor`; raises :class:`InvalidInput` for a bad cursor."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, ident = raw.split("|")
        started_at = datetime.fromisoformat(stamp)
        position = int(ident)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("invalid page cursor") from None
    if started_at.tzinfo is None:
        raise InvalidInput("invalid page cursor")
    return started_at, position


def _conditions(query: InteractionQuery) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if query.account_id is not None:
        conds.append(Interaction.account_id == query.account_id)
    phone = _phone(query.phone)
    if phone is not None:
        conds.append(Interaction.phone == phone)
    if _aware(query.since, "since") is not None:
        conds.append(Interaction.started_at >= query.since)
    if _aware(query.until, "until") is not None:
        conds.append(Interaction.started_at < query.until)
    if query.channel is not None:
        if query.channel not in INTERACTION_CHANNELS:
            raise InvalidInput(f"unknown channel {query.channel!r}")
        conds.append(Interaction.channel == query.channel)
    if query.direction is not None:
        conds.append(Interaction.direction == query.direction)
    if query.outcome is not None:
        conds.append(Interaction.outcome == query.outcome)
    if query.campaign_id is not None:
        conds.append(Interaction.campaign_id == query.campaign_id)
    if query.text is not None and query.text.strip():
        # search_text is already lower-cased (Python's full Unicode folding), so a plain
        # LIKE on it is case-insensitive on both databases, and on PostgreSQL it is served
        # by the trigram index (patterns of 3+ characters).
        pattern = _like_pattern(query.text.strip().lower())
        conds.append(Interaction.search_text.like(pattern, escape="\\"))
    return conds


def search_statement(
    query: InteractionQuery, *, limit: int = 50, cursor: str | None = None
) -> Select[Interaction]:
    """The SELECT behind :func:`search_interactions` (``limit + 1`` rows, to detect a next page).

    Public so that benchmarks and ``EXPLAIN`` checks look at exactly the query the search
    runs. Raises :class:`InvalidInput` for bad filters, limit or cursor.
    """
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(f"limit must be within 1..{MAX_PAGE_SIZE}")
    conds = _conditions(query)
    if cursor is not None:
        after_at, after_id = decode_cursor(cursor)
        # The redundant ``started_at <= after_at`` gives the planner a range condition on
        # the (…, started_at) indexes; the OR alone would be a filter applied row by row
        # from the newest row down to the cursor.
        conds.append(Interaction.started_at <= after_at)
        conds.append(
            or_(
                Interaction.started_at < after_at,
                and_(Interaction.started_at == after_at, Interaction.id < after_id),
            )
        )
    return (
        select(Interaction)
        .where(*conds)
        .order_by(Interaction.started_at.desc(), Interaction.id.desc())
        .limit(limit + 1)
    )


def search_interactions(
    session: Session,
    query: InteractionQuery | None = None,
    *,
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    """Interactions matching ``query``, newest first, ``limit`` per page (keyset-paginated).

    The text filter is case-insensitive for Cyrillic too on both databases (SQLite
    connections get a Unicode ``lower()`` from :func:`crm_store.db.make_engine`).
    """
    query = query or InteractionQuery()
    rows = list(session.scalars(search_statement(query, limit=limit, cursor=cursor)))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(last.started_at, last.id)
    return Page(items=rows, next_cursor=next_cursor, filters=query)


def count_interactions(session: Session, query: InteractionQuery | None = None) -> int:
    """How many interactions match ``query`` (for a result header; costs a full count)."""
    conds = _conditions(query or InteractionQuery())
    return int(session.scalar(select(func.count(Interaction.id)).where(*conds)) or 0)
