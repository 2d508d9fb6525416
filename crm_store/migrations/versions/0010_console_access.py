"""Console access: the regions a user sees, the read-only ``auditor`` role.

* ``users.regions``: the ``Account.region`` values whose data the user sees (NULL: all).
* ``roles.name`` may be ``auditor``.
* ``users.session_epoch`` (bumped on a password change or when the user is disabled: the
  console sessions of the older epoch end), ``password_changed_at``, ``api_token_issued_at``,
  ``last_login_at``.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 13:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_OLD_ROLES = "'admin', 'supervisor', 'operator', 'developer'"
_NEW_ROLES = "'admin', 'supervisor', 'operator', 'auditor', 'developer'"


def upgrade() -> None:
    json_type = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("regions", json_type, nullable=True))
        batch.add_column(
            sa.Column("session_epoch", sa.Integer(), server_default="0", nullable=False)
        )
        for name in ("password_changed_at", "api_token_issued_at", "last_login_at"):
            batch.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("roles") as batch:
        batch.drop_constraint(op.f("ck_roles_name"), type_="check")
        batch.create_check_constraint(op.f("ck_roles_name"), f"name IN ({_NEW_ROLES})")


def downgrade() -> None:
    op.execute("DELETE FROM roles WHERE name = 'auditor'")
    with op.batch_alter_table("roles") as batch:
        batch.drop_constraint(op.f("ck_roles_name"), type_="check")
        batch.create_check_constraint(op.f("ck_roles_name"), f"name IN ({_OLD_ROLES})")
    with op.batch_alter_table("users") as batch:
        for name in ("last_login_at", "api_token_issued_at", "password_changed_at"):
            batch.drop_column(name)
        batch.drop_column("session_epoch")
        batch.drop_column("regions")
