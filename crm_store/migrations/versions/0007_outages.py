"""Outages and outage reports: ``outages``, ``outage_cases``, ``outage_reports``.

``outages`` holds planned and emergency outages by place (settlement, street, house
specification and their comparable keys), unique by ``external_id``. An outage case is a
``cases`` row of type ``outage`` for one building; ``outage_cases.open_key`` (unique) is the
building's key while the case takes reports, and ``outage_reports`` lists each caller's report.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 12:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("settlement", sa.String(length=200), nullable=False),
        sa.Column("street", sa.String(length=200), nullable=False),
        sa.Column("houses", sa.String(length=500), nullable=False),
        sa.Column("settlement_key", sa.String(length=200), nullable=False),
        sa.Column("street_key", sa.String(length=200), nullable=False),
        sa.Column("street_type", sa.String(length=16), nullable=False),
        sa.Column("feeder", sa.String(length=100), nullable=True),
        sa.Column("substation", sa.String(length=100), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expected_end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('planned', 'emergency')", name=op.f("ck_outages_kind")),
        sa.CheckConstraint("source IN ('import', 'api')", name=op.f("ck_outages_source")),
        sa.CheckConstraint("expected_end_at > starts_at", name=op.f("ck_outages_period")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outages")),
        sa.UniqueConstraint("external_id", name=op.f("uq_outages_external_id")),
    )
    with op.batch_alter_table("outages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outages_street_end", ["street_key", "expected_end_at"], unique=False
        )

    op.create_table(
        "outage_cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("address_key", sa.String(length=300), nullable=False),
        sa.Column("address", sa.String(length=500), nullable=False),
        sa.Column("open_key", sa.String(length=300), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_outage_cases_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outage_cases")),
        sa.UniqueConstraint("case_id", name=op.f("uq_outage_cases_case_id")),
        sa.UniqueConstraint("open_key", name=op.f("uq_outage_cases_open_key")),
    )
    with op.batch_alter_table("outage_cases", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outage_cases_address_key"), ["address_key"], unique=False
        )

    op.create_table(
        "outage_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("outage_case_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("phone", sa.String(length=16), nullable=True),
        sa.Column(
            "interaction_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("address", sa.String(length=500), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_outage_reports_account_id_accounts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["interaction_id"],
            ["interactions.id"],
            name=op.f("fk_outage_reports_interaction_id_interactions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["outage_case_id"],
            ["outage_cases.id"],
            name=op.f("fk_outage_reports_outage_case_id_outage_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outage_reports")),
    )
    with op.batch_alter_table("outage_reports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outage_reports_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_outage_reports_outage_case_id"), ["outage_case_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("outage_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outage_reports_outage_case_id"))
        batch_op.drop_index(batch_op.f("ix_outage_reports_account_id"))
    op.drop_table("outage_reports")
    with op.batch_alter_table("outage_cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outage_cases_address_key"))
    op.drop_table("outage_cases")
    with op.batch_alter_table("outages", schema=None) as batch_op:
        batch_op.drop_index("ix_outages_street_end")
    op.drop_table("outages")
