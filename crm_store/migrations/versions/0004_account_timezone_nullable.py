"""Unknown time zones: ``accounts.timezone`` and ``campaign_targets.timezone`` nullable.

``NULL`` means the service address's zone is unknown. It used to be forced to a value
(the model defaulted to 'Europe/Moscow'), which made such consumers look like Moscow and
hid the campaigns' fallback to every zone of the phone number. Existing rows keep their
zones; nothing is set to NULL here.

SQLite cannot drop NOT NULL in place, and a batch rebuild of ``accounts`` would
cascade-delete its meters, phone links and campaign targets while foreign keys are
enforced (dropping the old table deletes its rows first). So, like 0003, the column
definition is rewritten in SQLite's stored schema (``writable_schema``), which is safe for
removing a NOT NULL: every stored row stays valid. The downgrade fills NULLs with
'Europe/Moscow' first, so putting NOT NULL back is valid for every row as well.

No server default existed for these columns (only a Python-side default in the model);
PostgreSQL drops any default anyway, so both databases end up without one.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 13:05:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("accounts", "campaign_targets")
NOT_NULL = "timezone VARCHAR(64) NOT NULL,"
NULLABLE = "timezone VARCHAR(64),"
#: What unknown zones become when downgrading to a schema that cannot say "unknown".
DOWNGRADE_ZONE = "Europe/Moscow"


def _sqlite_rewrite_column(bind: Connection, table: str, old: str, new: str) -> None:
    """Replace ``old`` with ``new`` in SQLite's stored definition of ``table`` (once)."""
    sql = bind.scalar(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"), {"t": table}
    )
    if sql is None or sql.count(old) != 1:
        raise RuntimeError(f"unexpected definition of table {table}: {sql!r}")
    version = int(bind.scalar(sa.text("PRAGMA schema_version")) or 0)
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.execute(
        sa.text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = :t"),
        {"sql": sql.replace(old, new), "t": table},
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def upgrade() -> None:
    bind = op.get_bind()
    for table in TABLES:
        if bind.dialect.name == "sqlite":
            _sqlite_rewrite_column(bind, table, NOT_NULL, NULLABLE)
        else:
            op.alter_column(
                table,
                "timezone",
                existing_type=sa.String(length=64),
                nullable=True,
                server_default=None,
            )


def downgrade() -> None:
    bind = op.get_bind()
    for table in TABLES:
        column = sa.table(table, sa.column("timezone", sa.String))
        bind.execute(
            column.update().where(column.c.timezone.is_(None)).values(timezone=DOWNGRADE_ZONE)
        )
        if bind.dialect.name == "sqlite":
            _sqlite_rewrite_column(bind, table, NULLABLE, NOT_NULL)
        else:
            op.alter_column(table, "timezone", existing_type=sa.String(length=64), nullable=False)
