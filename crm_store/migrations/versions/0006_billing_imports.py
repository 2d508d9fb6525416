"""Billing loop imports: payment moments and agents, payments kept aside, import runs.

* ``payments`` gains ``paid_at`` (the registry's moment, UTC) and ``agent`` (the bank or
  payment agent as the registry names it).
* ``unmatched_payments``: registry payments whose account number is not in the CRM yet,
  kept until an account with that number appears (then ``payment_id``/``matched_at``).
* ``import_runs``: one row per imported file, advanced in each batch's own transaction.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 12:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAYMENT_CHANNELS = "'bank', 'card', 'sbp', 'cash', 'ivr', 'web'"
IMPORT_KINDS = "'consumers', 'payments', 'charges'"
IMPORT_STATUSES = "'queued', 'running', 'completed', 'failed'"


def upgrade() -> None:
    op.add_column("payments", sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("payments", sa.Column("agent", sa.String(length=128), nullable=True))

    op.create_table(
        "unmatched_payments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_number", sa.String(length=64), nullable=False),
        sa.Column("account_number_raw", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("agent", sa.String(length=128), nullable=True),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("source_row", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("matched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("payment_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            f"channel IN ({PAYMENT_CHANNELS})", name=op.f("ck_unmatched_payments_channel")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_unmatched_payments_payment_id_payments"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unmatched_payments")),
        sa.UniqueConstraint("external_id", name=op.f("uq_unmatched_payments_external_id")),
    )
    op.create_index(
        "ix_unmatched_payments_account_number",
        "unmatched_payments",
        ["account_number"],
        unique=False,
    )

    op.create_table(
        "import_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rows_done", sa.Integer(), nullable=False),
        sa.Column("batches_committed", sa.Integer(), nullable=False),
        sa.Column(
            "summary",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(f"kind IN ({IMPORT_KINDS})", name=op.f("ck_import_runs_kind")),
        sa.CheckConstraint(f"status IN ({IMPORT_STATUSES})", name=op.f("ck_import_runs_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_runs")),
    )
    op.create_index("ix_import_runs_created", "import_runs", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_import_runs_created", table_name="import_runs")
    op.drop_table("import_runs")
    op.drop_index("ix_unmatched_payments_account_number", table_name="unmatched_payments")
    op.drop_table("unmatched_payments")
    op.drop_column("payments", "agent")
    op.drop_column("payments", "paid_at")
