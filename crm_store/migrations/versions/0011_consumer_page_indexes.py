"""Indexes for a consumer's pages (docs/benchmarks.md, "Consumer 360 and the CRM API").

* ``ix_interactions_consumer_unlinked``: the timeline's interactions that name the consumer
  but no account, newest first (partial on ``account_id IS NULL``).
* ``ix_interactions_phone_unlinked``: those naming nobody, matched by phone (partial on
  ``account_id IS NULL AND consumer_id IS NULL``).
* ``ix_consumers_full_name_trgm``: a trigram GIN index on ``consumers.full_name`` for the
  name search (``ILIKE``; PostgreSQL's ``pg_trgm`` from migration 0003). On SQLite it is
  declared with an always-false predicate, as 0003 does, so it exists but stays empty.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 21:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UNLINKED = "account_id IS NULL"
_NOBODY = "account_id IS NULL AND consumer_id IS NULL"


def upgrade() -> None:
    for name, column, where in (
        ("ix_interactions_consumer_unlinked", "consumer_id", _UNLINKED),
        ("ix_interactions_phone_unlinked", "phone", _NOBODY),
    ):
        op.create_index(
            name,
            "interactions",
            [column, "started_at"],
            postgresql_where=sa.text(where),
            sqlite_where=sa.text(where),
        )
    if op.get_bind().dialect.name == "sqlite":
        op.create_index(
            "ix_consumers_full_name_trgm", "consumers", ["full_name"], sqlite_where=sa.text("0")
        )
    else:
        op.create_index(
            "ix_consumers_full_name_trgm",
            "consumers",
            ["full_name"],
            postgresql_using="gin",
            postgresql_ops={"full_name": "gin_trgm_ops"},
        )


def downgrade() -> None:
    op.drop_index("ix_consumers_full_name_trgm", table_name="consumers")
    op.drop_index("ix_interactions_phone_unlinked", table_name="interactions")
    op.drop_index("ix_interactions_consumer_unlinked", table_name="interactions")
