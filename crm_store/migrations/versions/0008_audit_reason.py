"""Audit log reasons: ``audit_log.reason``.

Who changed a row was always recorded; a change made on purpose by a person (a do-not-contact
entry added by a supervisor, a consent withdrawn on a customer's request) now also records
why, as the actor gave it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 13:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_column("reason")
