"""One meter reading per meter, zone, period and value (idempotent submissions).

Replaces the plain (meter_id, zone, period) index with a unique constraint that also
covers lookups by those columns.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 11:15:37.125840
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("meter_readings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_meter_readings_meter_zone_period"))
        batch_op.create_unique_constraint(
            batch_op.f("uq_meter_readings_meter_id_zone_period_value"),
            ["meter_id", "zone", "period", "value"],
        )


def downgrade() -> None:
    with op.batch_alter_table("meter_readings", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_meter_readings_meter_id_zone_period_value"), type_="unique"
        )
        batch_op.create_index(
            batch_op.f("ix_meter_readings_meter_zone_period"),
            ["meter_id", "zone", "period"],
            unique=False,
        )
