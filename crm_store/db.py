"""Engines and sessions. Nothing is built at import time.

``make_engine`` creates an engine for a URL (SQLite gets foreign keys and WAL);
``Database`` bundles an engine with its session factory and is what the app, the CLI
and the RQ jobs hold. Engines never cross a fork: jobs build theirs lazily per process.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DisconnectionError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

RowT = TypeVar("RowT")

log = logging.getLogger(__name__)

#: The key of a session's ``info`` holding the marks of :func:`mark_session`.
_MARKS = "commit_marks"


def _unicode_lower(value: object) -> object:
    """SQL ``lower()`` for SQLite with full Unicode case folding (text only)."""
    return value.lower() if isinstance(value, str) else value


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; for SQLite create the parent folder and enable foreign keys."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
            # SQLite's built-in lower() folds ASCII only; ILIKE compiles to lower() LIKE
            # lower(), so replace it to make case-insensitive search work for Cyrillic.
            dbapi_conn.create_function("lower", 1, _unicode_lower, deterministic=True)

        return engine
    engine = create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_idle_connections(engine)
    return engine


#: A pooled connection idle for longer than this is checked (``SELECT 1``) before use.
PING_IDLE_S = 5.0
_CHECKED_IN = "checked_in_at"


def _ping_idle_connections(engine: Engine) -> None:
    """Check a pooled connection before use when it sat idle for :data:`PING_IDLE_S`: what
    ``pool_pre_ping`` does on every checkout (a round trip each time), kept for connections a
    server restart or a network cut may have killed unnoticed. A busy connection is not
    pinged: if its server went away, its next statement fails as a disconnect and SQLAlchemy
    invalidates the whole pool, so the next checkout gets a fresh connection."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info[_CHECKED_IN] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_CHECKED_IN)
        if since is not None and time.monotonic() - since < PING_IDLE_S:
            return
        try:
            cursor = dbapi_conn.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            dbapi_conn.rollback()
        except Exception as exc:
            # The pool drops this connection and checks out another (up to three times).
            raise DisconnectionError(str(exc)) from exc


def mark_session(session: Session, mark: str) -> None:
    """Note in ``session`` that its transaction changed what ``mark`` names: the hooks of
    :meth:`Database.on_commit` for ``mark`` run once it commits (none run on a rollback)."""
    session.info.setdefault(_MARKS, set()).add(mark)


def _forget_marks(session: Session) -> None:
    session.info.pop(_MARKS, None)


class Database:
    """An engine, its session factory, and the pid it was made in."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self._engine_kwargs = engine_kwargs
        self._engine: Engine | None = None
        self._pid = os.getpid()
        self._sessionmaker: sessionmaker[Session] | None = None
        self._commit_hooks: dict[str, list[Callable[[], None]]] = {}

    @property
    def engine(self) -> Engine:
        """The engine, rebuilt if this process was forked from the one that made it."""
        if self._engine is not None and self._pid != os.getpid():
            self._engine.dispose(close=False)
            self._engine = None
        if self._engine is None:
            self._engine = make_engine(self.url, **self._engine_kwargs)
            self._pid = os.getpid()
            self._sessionmaker = sessionmaker(self._engine, expire_on_commit=False)
            event.listen(self._sessionmaker, "after_commit", self._after_commit)
            event.listen(self._sessionmaker, "after_rollback", _forget_marks)
        return self._engine

    def on_commit(self, mark: str, hook: Callable[[], None]) -> None:
        """Call ``hook`` after each commit of a session of this database whose ``info`` holds
        ``mark`` (set by the code that changed something others cache, e.g.
        :data:`crm_store.users.USERS_CHANGED`). The commit has happened: a hook that fails is
        logged, not raised."""
        self._commit_hooks.setdefault(mark, []).append(hook)

    def _after_commit(self, session: Session) -> None:
        for mark in session.info.pop(_MARKS, ()):
            for hook in self._commit_hooks.get(mark, ()):
                try:
                    hook()
                except Exception:
                    log.exception("the commit hook of %s failed", mark)

    def session(self) -> Session:
        """A new session (caller closes it; prefer :meth:`transaction`)."""
        _ = self.engine
        if self._sessionmaker is None:  # pragma: no cover - set together with the engine
            raise RuntimeError("session factory missing")
        return self._sessionmaker()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error."""
        session = self.session()
        try:
            with session.begin():
                yield session
        finally:
            session.close()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for one read outside any transaction (``AUTOCOMMIT``): no ``BEGIN`` and
        no ``COMMIT`` round trips, for a single query on a hot path (a bearer token's
        check). Nothing it holds may be written back."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            session = Session(bind=conn, expire_on_commit=False)
            try:
                yield session
            finally:
                session.close()

    def dispose(self) -> None:
        """Close all pooled connections."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def insert_or_existing(
    session: Session, row: RowT, existing: Callable[[], RowT | None]
) -> tuple[RowT, bool]:
    """Insert ``row`` in a savepoint; when a unique key refuses it, the row already there.

    The insert runs in ``session.begin_nested()``, so a duplicate (a retried webhook, a
    concurrent worker) rolls back only the savepoint and the caller's transaction goes on.
    Returns ``(row, True)`` when inserted, ``(existing(), False)`` when a unique constraint
    refused it; the :class:`~sqlalchemy.exc.IntegrityError` is raised again when
    ``existing()`` finds nothing (the refusal was not a duplicate).
    """
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        found = existing()
        if found is None:
            raise
        return found, False
    return row, True


def dialect_insert(dialect: str, model: Any) -> Any:
    """``INSERT`` of ``model`` (a mapped class or a table) in the SQL of ``dialect``
    (``postgresql`` or ``sqlite``), for ``ON CONFLICT DO NOTHING … RETURNING``: a batch whose
    duplicates are skipped in one statement, the inserted keys returned."""
    if dialect == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)
