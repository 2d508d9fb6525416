"""Interaction text search index, keyed charges, the 'demo' phone source.

* ``interactions.search_text``: lower-cased summary and transcript texts (maintained by
  ``crm_store.interactions``), backfilled here, with a trigram GIN index on PostgreSQL
  (``pg_trgm``). On SQLite the index is created with an always-false partial predicate, so
  it exists like the model says but stays empty (SQLite search scans, as before).
* ``charges.source`` ('billing' for existing rows), ``charges.external_key`` (unique when
  set) and ``charges.stated_balance``.
* ``phone_numbers.source`` also allows 'demo'.

PostgreSQL needs the ``pg_trgm`` extension (shipped with PostgreSQL; trusted since 13, so
the database owner may create it). When it is not installed and this role cannot create
it, the migration stops with a message saying what to run; it does not degrade to a schema
without the index (that would be silent drift and full scans on millions of rows).

SQLite cannot alter a CHECK constraint in place, and rebuilding ``phone_numbers`` (batch
mode) would cascade-delete the account links while foreign keys are enforced, so the
constraint text is widened with SQLite's documented ``writable_schema`` procedure (safe for
loosening a CHECK constraint: the stored data stays valid).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 12:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_PHONE_SOURCES = "'import', 'ivr', 'operator', 'web', 'sms'"
NEW_PHONE_SOURCES = "'import', 'ivr', 'operator', 'web', 'sms', 'demo'"
CHARGE_SOURCES = "'billing', 'import', 'demo', 'adjustment'"
BACKFILL_BATCH = 5000


class MissingExtensionError(RuntimeError):
    """PostgreSQL's pg_trgm is not installed and this role cannot install it."""


def _ensure_pg_trgm(bind: Connection) -> None:
    if bind.scalar(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")):
        return
    database = bind.scalar(sa.text("SELECT current_database()"))
    hint = (
        f"migration 0003 needs the PostgreSQL extension pg_trgm in database {database!r}: "
        f"run  CREATE EXTENSION pg_trgm;  there as a superuser or the database owner "
        f"(Debian: package postgresql-contrib), then run the migration again"
    )
    if not bind.scalar(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")):
        raise MissingExtensionError(hint + " (the server does not ship pg_trgm)")
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except DBAPIError as exc:
        raise MissingExtensionError(f"{hint} ({exc.orig})") from None


def _sqlite_replace_check(bind: Connection, table: str, old: str, new: str) -> None:
    """Rewrite a CHECK constraint's value list in SQLite's stored table definition."""
    sql = bind.scalar(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"), {"t": table}
    )
    if sql is None or old not in sql:
        raise RuntimeError(f"unexpected definition of table {table}: {sql!r}")
    version = int(bind.scalar(sa.text("PRAGMA schema_version")) or 0)
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.execute(
        sa.text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = :t"),
        {"sql": sql.replace(old, new), "t": table},
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def _backfill_search_text(bind: Connection) -> None:
    """Fill search_text like crm_store.interactions does (Python lower(), one text a line).

    Done in Python, not SQL, so the folding is the same as for new rows whatever the
    database's locale (PostgreSQL's lower() depends on it).
    """
    interactions = sa.table(
        "interactions",
        sa.column("id", sa.Integer),
        sa.column("summary", sa.Text),
        sa.column("search_text", sa.Text),
    )
    transcripts = sa.table(
        "transcripts",
        sa.column("id", sa.Integer),
        sa.column("interaction_id", sa.Integer),
        sa.column("text", sa.Text),
    )
    has_text = sa.or_(
        interactions.c.summary != "",
        sa.exists().where(transcripts.c.interaction_id == interactions.c.id),
    )
    last = 0
    while True:
        rows = bind.execute(
            sa.select(interactions.c.id, interactions.c.summary)
            .where(interactions.c.id > last, has_text)
            .order_by(interactions.c.id)
            .limit(BACKFILL_BATCH)
        ).all()
        if not rows:
            return
        ids = [row.id for row in rows]
        texts: dict[int, list[str]] = {row.id: [row.summary or ""] for row in rows}
        for interaction_id, text in bind.execute(
            sa.select(transcripts.c.interaction_id, transcripts.c.text)
            .where(transcripts.c.interaction_id.in_(ids))
            .order_by(transcripts.c.id)
        ):
            texts[interaction_id].append(text or "")
        bind.execute(
            interactions.update()
            .where(interactions.c.id == sa.bindparam("row_id"))
            .values(search_text=sa.bindparam("value")),
            [{"row_id": key, "value": "\n".join(parts).lower()} for key, parts in texts.items()],
        )
        last = ids[-1]


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"

    # Charges: source, external key, stated balance.
    if sqlite:
        # ADD COLUMN accepts a column CHECK on SQLite; no table rebuild needed.
        op.execute(
            "ALTER TABLE charges ADD COLUMN source VARCHAR(16) DEFAULT 'billing' NOT NULL "
            f"CONSTRAINT ck_charges_source CHECK (source IN ({CHARGE_SOURCES}))"
        )
    else:
        op.add_column(
            "charges",
            sa.Column("source", sa.String(length=16), server_default="billing", nullable=False),
        )
        op.create_check_constraint(
            op.f("ck_charges_source"), "charges", f"source IN ({CHARGE_SOURCES})"
        )
    op.add_column("charges", sa.Column("external_key", sa.String(length=128), nullable=True))
    op.add_column(
        "charges", sa.Column("stated_balance", sa.Numeric(precision=14, scale=2), nullable=True)
    )
    op.create_index("ix_charges_external_key", "charges", ["external_key"], unique=True)

    # Phone sources: + 'demo'.
    if sqlite:
        _sqlite_replace_check(
            bind,
            "phone_numbers",
            f"source IN ({OLD_PHONE_SOURCES})",
            f"source IN ({NEW_PHONE_SOURCES})",
        )
    else:
        op.drop_constraint(op.f("ck_phone_numbers_source"), "phone_numbers", type_="check")
        op.create_check_constraint(
            op.f("ck_phone_numbers_source"), "phone_numbers", f"source IN ({NEW_PHONE_SOURCES})"
        )

    # Interaction search text and its trigram index.
    op.add_column(
        "interactions",
        sa.Column("search_text", sa.Text(), server_default="", nullable=False),
    )
    _backfill_search_text(bind)
    if sqlite:
        op.create_index(
            "ix_interactions_search_text_trgm",
            "interactions",
            ["search_text"],
            sqlite_where=sa.text("0"),
        )
    else:
        _ensure_pg_trgm(bind)
        op.create_index(
            "ix_interactions_search_text_trgm",
            "interactions",
            ["search_text"],
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
        )


def downgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"

    op.drop_index("ix_interactions_search_text_trgm", table_name="interactions")
    op.drop_column("interactions", "search_text")

    op.execute("UPDATE phone_numbers SET source = 'import' WHERE source = 'demo'")
    if sqlite:
        _sqlite_replace_check(
            bind,
            "phone_numbers",
            f"source IN ({NEW_PHONE_SOURCES})",
            f"source IN ({OLD_PHONE_SOURCES})",
        )
    else:
        op.drop_constraint(op.f("ck_phone_numbers_source"), "phone_numbers", type_="check")
        op.create_check_constraint(
            op.f("ck_phone_numbers_source"), "phone_numbers", f"source IN ({OLD_PHONE_SOURCES})"
        )

    op.drop_index("ix_charges_external_key", table_name="charges")
    op.drop_column("charges", "stated_balance")
    op.drop_column("charges", "external_key")
    if not sqlite:
        op.drop_constraint(op.f("ck_charges_source"), "charges", type_="check")
    op.drop_column("charges", "source")
