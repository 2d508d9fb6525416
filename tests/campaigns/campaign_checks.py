"""Invariants every campaign run must satisfy (used by the job, crash and slow tests)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

from sqlalchemy import select

from campaigns.compliance import ContactPolicy, is_within_window
from crm_store.db import Database
from crm_store.models import CampaignTarget, ContactAttempt, DoNotContact, Interaction

FINAL_STATES = {"done", "skipped", "failed", "cancelled"}


def check_invariants(
    db: Database,
    campaign_id: int,
    *,
    provider_sids: list[str],
    policy: ContactPolicy | None = None,
    channel: str = "voice",
) -> dict[str, int]:
    """Assert the Done-when invariants of a finished campaign; returns a few counts."""
    policy = policy or ContactPolicy()
    with db.transaction() as s:
        targets = {t.id: t for t in s.scalars(
            select(CampaignTarget).where(CampaignTarget.campaign_id == campaign_id))}  # fmt: skip
        attempts = list(
            s.scalars(select(ContactAttempt).where(ContactAttempt.campaign_id == campaign_id))
        )
        logged = {
            i.provider_sid: i
            for i in s.scalars(select(Interaction).where(Interaction.campaign_id == campaign_id))
        }
        dnc = {
            d.value: d.created_at
            for d in s.scalars(
                select(DoNotContact).where(DoNotContact.channel.in_((channel, "any")))
            )
        }
    # Every target reached a final state.
    states = Counter(t.state for t in targets.values())
    assert set(states) <= FINAL_STATES, states
    # Exactly one provider call / message per placed attempt, and none twice.
    placed = [a for a in attempts if a.provider_sid is not None and a.channel == channel]
    sids = [a.provider_sid for a in placed]
    assert len(sids) == len(set(sids))
    assert sorted(str(x) for x in sids) == sorted(provider_sids), (len(sids), len(provider_sids))
    per_attempt = Counter((a.target_id, a.attempt_no) for a in attempts)
    assert max(per_attempt.values(), default=1) == 1
    for a in placed:
        target = targets[a.target_id]
        # Inside the local window when the job dialled.
        assert is_within_window(a.created_at, [target.timezone], policy), (a.id, a.created_at)
        # Logged in the Interaction log, linked to campaign and attempt.
        interaction = logged.get(a.provider_sid)
        assert interaction is not None, a.provider_sid
        assert interaction.attempt_id == a.id
        # Nobody on the do-not-contact list was contacted.
        assert target.phone not in dnc or a.created_at < dnc[target.phone], target.phone
    # Caps: at most 1 call a local day and 2 a local ISO week per consumer (defaults).
    per_day: Counter[tuple[int, dt.date]] = Counter()
    per_week: Counter[tuple[int, tuple[int, int]]] = Counter()
    for a in placed:
        target = targets[a.target_id]
        local = a.created_at.astimezone(ZoneInfo(target.timezone))
        iso = local.isocalendar()
        per_day[(target.account_id, local.date())] += 1
        per_week[(target.account_id, (iso.year, iso.week))] += 1
    caps = policy.call_caps if channel == "voice" else policy.sms_caps
    assert max(per_day.values(), default=0) <= caps.per_day
    assert max(per_week.values(), default=0) <= caps.per_week
    return {"targets": len(targets), "placed": len(placed), **states}
