"""Grid links: ``accounts.feeder``/``substation``; ``outages.feeder_key``/``substation_key``.

An account now carries the feeder and substation the billing system gives it (the consumer
import's optional columns), and an outage given by feeder or substation reaches the accounts
on them (:mod:`crm_store.outages`). Outages keep comparable keys of their feeder and
substation names, indexed with ``expected_end_at`` like ``street_key``; the keys of outages
stored before this revision are computed here.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 13:20:00.000000
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# crm_store.outages.grid_key as of this revision (a migration must not follow later changes).
_GRID_WORDS = frozenset({"фидер", "фид", "ф", "пс", "подстанция", "подст", "тп", "ктп", "рп"})
_VOLTAGE = re.compile(r"\d+(?:[.,/]\d+)*\s*кв(?![^\W\d_])")
_GRID_TOKEN = re.compile(r"[^\W\d_]+|\d+")
_LOOKALIKES = str.maketrans("aeopcxykmthb", "аеорсхукмтнв")


def _grid_key(name: str | None) -> str:
    if not name:
        return ""
    text = name.casefold().replace("ё", "е").translate(_LOOKALIKES)
    tokens = _GRID_TOKEN.findall(_VOLTAGE.sub(" ", text))
    kept: list[str] = []
    index = 0
    while index < len(tokens):
        if tokens[index] == "п" and tokens[index + 1 : index + 2] == ["ст"]:
            index += 2
            continue
        if tokens[index] not in _GRID_WORDS:
            kept.append(tokens[index])
        index += 1
    return "".join(kept or _GRID_TOKEN.findall(text))[:100]


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("feeder", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("substation", sa.String(length=100), nullable=True))
    with op.batch_alter_table("outages", schema=None) as batch_op:
        for name in ("feeder_key", "substation_key"):
            batch_op.add_column(
                sa.Column(name, sa.String(length=100), server_default="", nullable=False)
            )
    outages = sa.table(
        "outages",
        sa.column("id", sa.Integer()),
        sa.column("feeder", sa.String()),
        sa.column("substation", sa.String()),
        sa.column("feeder_key", sa.String()),
        sa.column("substation_key", sa.String()),
    )
    connection = op.get_bind()
    named = connection.execute(
        sa.select(outages.c.id, outages.c.feeder, outages.c.substation).where(
            sa.or_(outages.c.feeder.is_not(None), outages.c.substation.is_not(None))
        )
    ).all()
    for ident, feeder, substation in named:
        connection.execute(
            outages.update()
            .where(outages.c.id == ident)
            .values(feeder_key=_grid_key(feeder), substation_key=_grid_key(substation))
        )
    with op.batch_alter_table("outages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outages_feeder_end", ["feeder_key", "expected_end_at"], unique=False
        )
        batch_op.create_index(
            "ix_outages_substation_end", ["substation_key", "expected_end_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("outages", schema=None) as batch_op:
        batch_op.drop_index("ix_outages_substation_end")
        batch_op.drop_index("ix_outages_feeder_end")
        batch_op.drop_column("substation_key")
        batch_op.drop_column("feeder_key")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("substation")
        batch_op.drop_column("feeder")
