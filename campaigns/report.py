"""The campaign report: reach, right-party contacts, opt-outs, skips, payments, cost.

Attribution: a payment counts for a contacted target when it is dated from the day of the
target's first placed contact up to ``attribution_days`` later. The hold-out control group
is never contacted; its payments count from the launch day over the same number of days.
The comparison is intent-to-treat: every non-control target of the campaign (contacted or
not) against the control group, so skipped consumers do not flatter the result.

Right-party contacts come from the IVR: its ``verify_person`` action writes
``Interaction.data["right_party"] = true`` on the call's interaction.

Payments since the launch (:class:`PaidSinceLaunch`): every payment of a campaign target's
account dated from the launch on (a registry import's moment, when it has one, from the
launch moment on), whatever its channel — imported registries, the IVR, the demo data — with
the targets the campaign stopped because they paid (skip reason ``paid``) and the latest
payments listed.
"""

from __future__ import annotations

import datetime as dt
import heapq
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.attempts import definition_of
from campaigns.compliance import SkipReason
from campaigns.errors import CampaignNotFound
from contactcenter.services import Services
from crm_store.models import (
    Account,
    Campaign,
    CampaignTarget,
    ContactAttempt,
    DoNotContact,
    Interaction,
    Payment,
)

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class GroupResult:
    """Payments of a group of targets within the attribution window."""

    targets: int
    payers: int
    paid: Decimal

    @property
    def pay_rate(self) -> float:
        """Share of targets that paid (0..1)."""
        return self.payers / self.targets if self.targets else 0.0


@dataclass(frozen=True)
class PaymentLine:
    """One payment made by a target after the launch."""

    account: str
    amount: Decimal
    paid_on: dt.date
    channel: str
    agent: str | None
    #: The campaign stopped contacting this target because it paid.
    skipped_as_paid: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "account": self.account,
            "amount": str(self.amount),
            "paid_on": self.paid_on.isoformat(),
            "channel": self.channel,
            "agent": self.agent,
            "skipped_as_paid": self.skipped_as_paid,
        }


@dataclass(frozen=True)
class PaidSinceLaunch:
    """Payments by the campaign's (non-control) targets since the launch, all channels."""

    payments: int = 0
    payers: int = 0
    paid: Decimal = ZERO
    #: Targets finished with skip reason ``paid`` (their debt fell below the threshold).
    skipped_as_paid: int = 0
    #: The latest payments, newest first (at most :data:`LATEST_PAYMENTS`).
    latest: tuple[PaymentLine, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "payments": self.payments,
            "payers": self.payers,
            "paid": str(self.paid),
            "skipped_as_paid": self.skipped_as_paid,
            "latest": [line.as_dict() for line in self.latest],
        }


LATEST_PAYMENTS = 20


@dataclass(frozen=True)
class CampaignReport:
    """Everything a supervisor asks about a campaign."""

    campaign_id: int
    name: str
    status: str
    attribution_days: int
    targets: int
    control_group: int
    attempts: int
    calls_placed: int
    sms_sent: int
    reached: int
    calls_answered: int
    answered_by_machine: int
    sms_delivered: int
    right_party_contacts: int
    opt_outs: int
    skipped_by_reason: dict[str, int]
    outcomes: dict[str, int]
    contacted: GroupResult
    treatment: GroupResult
    control: GroupResult
    sms_segments: int
    call_minutes: int
    cost: Decimal
    extra: dict[str, Any] = field(default_factory=dict)
    since_launch: PaidSinceLaunch = field(default_factory=PaidSinceLaunch)

    @property
    def uplift(self) -> float | None:
        """Pay rate of the campaign's targets minus the control group's (None: no control)."""
        if not self.control.targets:
            return None
        return self.treatment.pay_rate - self.control.pay_rate

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (API, ``--json``)."""
        data = asdict(self)
        for key in ("contacted", "treatment", "control"):
            group = getattr(self, key)
            data[key] = {
                "targets": group.targets,
                "payers": group.payers,
                "paid": str(group.paid),
                "pay_rate": round(group.pay_rate, 4),
            }
        data["cost"] = str(self.cost)
        data["uplift"] = None if self.uplift is None else round(self.uplift, 4)
        data["since_launch"] = self.since_launch.as_dict()
        return data


def _payments(
    session: Session, windows: Sequence[tuple[int, dt.date, dt.date]]
) -> tuple[int, Decimal]:
    """Payers and amount for ``(account_id, from, to)`` windows (inclusive dates)."""
    payers = 0
    total = ZERO
    for start in range(0, len(windows), 500):
        chunk = windows[start : start + 500]
        by_account = {a: (lo, hi) for a, lo, hi in chunk}
        paid: dict[int, Decimal] = {}
        rows = session.execute(
            select(Payment.account_id, Payment.paid_on, Payment.amount).where(
                Payment.account_id.in_(list(by_account))
            )
        )
        for account_id, paid_on, amount in rows:
            lo, hi = by_account[account_id]
            if lo <= paid_on <= hi:
                paid[account_id] = paid.get(account_id, ZERO) + Decimal(amount)
        payers += len(paid)
        total += sum(paid.values(), ZERO)
    return payers, total.quantize(Decimal("0.01"))


def _since_launch(
    session: Session,
    accounts: dict[int, bool],
    launched_at: dt.datetime,
    skipped_as_paid: int,
) -> PaidSinceLaunch:
    """Payments of ``accounts`` (``{account id: skipped as paid}``) since ``launched_at``."""
    launch_day = launched_at.date()
    ids = list(accounts)
    count = 0
    total = ZERO
    payers: set[int] = set()
    newest: list[tuple[tuple[dt.date, int], PaymentLine]] = []
    for start in range(0, len(ids), 500):
        rows = session.execute(
            select(
                Payment.id,
                Payment.account_id,
                Account.number,
                Payment.amount,
                Payment.paid_on,
                Payment.paid_at,
                Payment.channel,
                Payment.agent,
            )
            .join(Account, Account.id == Payment.account_id)
            .where(
                Payment.account_id.in_(ids[start : start + 500]),
                Payment.paid_on >= launch_day,
            )
        )
        for pid, account_id, number, amount, paid_on, paid_at, channel, agent in rows:
            if paid_at is not None and paid_at < launched_at:
                continue
            money = Decimal(amount).quantize(Decimal("0.01"))
            count += 1
            total += money
            payers.add(account_id)
            line = PaymentLine(number, money, paid_on, channel, agent, accounts[account_id])
            heapq.heappush(newest, ((paid_on, pid), line))
            if len(newest) > LATEST_PAYMENTS:
                heapq.heappop(newest)
    latest = tuple(line for _key, line in sorted(newest, key=lambda e: e[0], reverse=True))
    return PaidSinceLaunch(count, len(payers), total, skipped_as_paid, latest)


def _group(
    session: Session, windows: Sequence[tuple[int, dt.date, dt.date]], targets: int
) -> GroupResult:
    payers, paid = _payments(session, windows)
    return GroupResult(targets=targets, payers=payers, paid=paid)


def _right_party(rows: Iterable[Any]) -> int:
    return sum(1 for data in rows if isinstance(data, dict) and data.get("right_party") is True)


def build_report(services: Services, campaign_id: int) -> CampaignReport:
    """Compute the report of one campaign (streams rows; fine for large campaigns)."""
    with services.db.session() as s:
        campaign = s.get(Campaign, campaign_id)
        if campaign is None:
            raise CampaignNotFound(f"campaign {campaign_id} does not exist")
        definition = definition_of(campaign)
        days = definition.attribution_days
        launched = (campaign.launched_at or campaign.created_at).date()

        states: Counter[str] = Counter()
        skipped: Counter[str] = Counter()
        control_windows: list[tuple[int, dt.date, dt.date]] = []
        treatment_accounts: dict[int, int] = {}
        paid_accounts: dict[int, bool] = {}
        for target_id, account_id, state, reason, is_control in s.execute(
            select(
                CampaignTarget.id,
                CampaignTarget.account_id,
                CampaignTarget.state,
                CampaignTarget.skip_reason,
                CampaignTarget.control_group,
            ).where(CampaignTarget.campaign_id == campaign_id)
        ):
            if is_control:
                control_windows.append((account_id, launched, launched + dt.timedelta(days=days)))
                continue
            states[state] += 1
            treatment_accounts[target_id] = account_id
            paid_accounts[account_id] = state == "skipped" and reason == SkipReason.PAID.value
            if state == "skipped":
                skipped[reason or "unknown"] += 1

        first_contact: dict[int, dt.datetime] = {}
        outcomes: Counter[str] = Counter()
        calls = sms = answered = machine = delivered = segments = minutes = attempts = 0
        reached_targets: set[int] = set()
        cost = ZERO
        for row in s.execute(
            select(
                ContactAttempt.target_id,
                ContactAttempt.channel,
                ContactAttempt.status,
                ContactAttempt.outcome,
                ContactAttempt.provider_sid,
                ContactAttempt.created_at,
                ContactAttempt.duration_s,
                ContactAttempt.sms_segments,
                ContactAttempt.cost,
            ).where(ContactAttempt.campaign_id == campaign_id)
        ).yield_per(2000):
            attempts += 1
            outcomes[row.outcome or row.status] += 1
            if row.provider_sid is None:
                continue
            seen = first_contact.get(row.target_id)
            if seen is None or row.created_at < seen:
                first_contact[row.target_id] = row.created_at
            if row.channel == "voice":
                calls += 1
                if row.outcome == "answered":
                    answered += 1
                    reached_targets.add(row.target_id)
                if row.outcome in ("machine", "machine_message"):
                    machine += 1
                if row.duration_s:
                    minutes += math.ceil(row.duration_s / 60)
            else:
                sms += 1
                segments += row.sms_segments or 0
                if row.outcome == "delivered":
                    delivered += 1
                    reached_targets.add(row.target_id)
            if row.cost is not None:
                cost += Decimal(row.cost)

        right_party = _right_party(
            s.scalars(
                select(Interaction.data).where(
                    Interaction.campaign_id == campaign_id, Interaction.channel == "voice"
                )
            )
        )
        launched_at = campaign.launched_at or campaign.created_at
        opt_outs = int(
            s.scalar(
                select(func.count(func.distinct(DoNotContact.value))).where(
                    (DoNotContact.campaign_id == campaign_id)
                    | (
                        DoNotContact.value.in_(
                            select(CampaignTarget.phone).where(
                                CampaignTarget.campaign_id == campaign_id,
                                CampaignTarget.control_group.is_(False),
                            )
                        )
                        & (DoNotContact.created_at >= launched_at)
                    )
                )
            )
            or 0
        )
        contacted_windows = [
            (treatment_accounts[t], at.date(), at.date() + dt.timedelta(days=days))
            for t, at in first_contact.items()
            if t in treatment_accounts
        ]
        treatment_windows = [
            (a, launched, launched + dt.timedelta(days=days)) for a in treatment_accounts.values()
        ]
        contacted = _group(s, contacted_windows, len(contacted_windows))
        treatment = _group(s, treatment_windows, len(treatment_windows))
        control = _group(s, control_windows, len(control_windows))
        since_launch = _since_launch(
            s, paid_accounts, launched_at, skipped.get(SkipReason.PAID.value, 0)
        )
    return CampaignReport(
        campaign_id=campaign_id,
        name=campaign.name,
        status=campaign.status,
        attribution_days=days,
        targets=sum(states.values()),
        control_group=len(control_windows),
        attempts=attempts,
        calls_placed=calls,
        sms_sent=sms,
        reached=len(reached_targets),
        calls_answered=answered,
        answered_by_machine=machine,
        sms_delivered=delivered,
        right_party_contacts=right_party,
        opt_outs=opt_outs,
        skipped_by_reason=dict(skipped.most_common()),
        outcomes=dict(outcomes.most_common()),
        contacted=contacted,
        treatment=treatment,
        control=control,
        sms_segments=segments,
        call_minutes=minutes,
        cost=cost.quantize(Decimal("0.01")),
        extra={"targets_by_state": dict(states)},
        since_launch=since_launch,
    )
