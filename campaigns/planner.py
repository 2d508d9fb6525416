"""The planner: expand a campaign's audience into ``CampaignTarget`` rows, in batches.

Idempotent: targets are inserted with ``ON CONFLICT (campaign_id, account_id) DO NOTHING``,
so re-running the planner (after a crash, or to pick up accounts that joined the audience)
adds only what is missing. Memory is constant: the audience is streamed in keyset batches
and each batch is committed on its own.

The hold-out control group is chosen by a hash of (campaign id, account id), so the same
account always lands in the same group for a campaign, whichever process plans it.
Numbers that can never be dialled are marked ``skipped`` / ``invalid_number`` at once; every
other rule (window, caps, consent, opt-out) is checked again when the contact is made.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from campaigns.audience import AudienceRow, stream_audience
from campaigns.compliance import SkipReason
from campaigns.definition import CampaignDefinition
from campaigns.errors import CampaignNotFound
from contactcenter.phones import InvalidPhoneError, normalize_phone
from crm_store.db import Database, dialect_insert
from crm_store.models import Campaign, CampaignTarget

CONTROL_GROUP_REASON = "control_group"


def in_control_group(campaign_id: int, account_id: int, percent: float) -> bool:
    """Deterministic hold-out: True for about ``percent`` % of accounts of a campaign."""
    if percent <= 0:
        return False
    digest = hashlib.sha256(f"{campaign_id}:{account_id}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % 10_000
    return bucket < round(percent * 100)


@dataclass(frozen=True)
class PlanResult:
    """What a planner run did."""

    scanned: int
    inserted: int
    control_group: int
    invalid_number: int

    @property
    def already_planned(self) -> int:
        """Audience rows that already had a target (re-runs)."""
        return self.scanned - self.inserted


def _target_row(campaign_id: int, row: AudienceRow, percent: float) -> dict[str, Any]:
    phone: str | None = None
    state, reason = "pending", None
    if row.phone:
        try:
            phone = normalize_phone(row.phone)
        except InvalidPhoneError:
            phone = None
    control = in_control_group(campaign_id, row.account_id, percent)
    if control:
        state, reason = "skipped", CONTROL_GROUP_REASON
    elif phone is None:
        state, reason = "skipped", SkipReason.INVALID_NUMBER.value
    return {
        "campaign_id": campaign_id,
        "account_id": row.account_id,
        "phone": phone if phone is not None else row.phone,
        "timezone": row.timezone,
        "state": state,
        "skip_reason": reason,
        "control_group": control,
        "attempts": 0,
    }


def _insert(dialect: str) -> Any:
    return dialect_insert(dialect, CampaignTarget)


def plan_targets(
    db: Database,
    campaign_id: int,
    *,
    now: dt.datetime,
    batch_size: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> PlanResult:
    """Insert the missing targets of a campaign; safe to run any number of times."""
    with db.transaction() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            raise CampaignNotFound(f"no campaign {campaign_id}")
        definition = CampaignDefinition.model_validate(campaign.definition)
    percent = definition.control_group_percent
    dialect = db.engine.dialect.name
    scanned = inserted = control = invalid = 0
    read_session = db.session()
    try:
        for batch in stream_audience(
            read_session, definition.audience, now=now, batch_size=batch_size
        ):
            rows = [_target_row(campaign_id, r, percent) for r in batch]
            scanned += len(rows)
            with db.transaction() as session:
                stmt = (
                    _insert(dialect)
                    .on_conflict_do_nothing(index_elements=["campaign_id", "account_id"])
                    .returning(CampaignTarget.account_id)
                )
                added = set(session.execute(stmt, rows).scalars().all())
            inserted += len(added)
            for r in rows:
                if r["account_id"] in added:
                    control += bool(r["control_group"])
                    invalid += r["skip_reason"] == SkipReason.INVALID_NUMBER.value
            if progress is not None:
                progress(scanned)
    finally:
        read_session.close()
    return PlanResult(
        scanned=scanned, inserted=inserted, control_group=control, invalid_number=invalid
    )
