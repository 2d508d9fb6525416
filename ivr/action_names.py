"""The registry of action NAMES a flow may call: their arguments, outcomes and output variables.

This module is the contract between flow authors and the Python implementations
(``ivr.actions``). The validator uses it to reject unknown actions, unknown arguments,
branches on outcomes an action never returns, and prompts that read variables nothing sets.
The implementations register against it and check their results with
:meth:`ActionSpec.check_result`.

Conventions of every action:

* It receives the session variables plus its ``args`` (strings with ``{variable}`` already
  substituted) and returns one declared outcome with the variables that outcome sets.
* Variables set by an outcome are written to the call session before the branch is taken.
* Money is ``Decimal`` (roubles), dates are ``datetime.date`` (in the consumer's local time),
  times are ``datetime.time`` or tz-aware ``datetime``; ``text`` values are ready-to-speak
  Russian text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ivr.errors import ActionContractError, UnknownActionError

__all__ = [
    "ACTION_SPECS",
    "ActionSpec",
    "ArgSpec",
    "VarKind",
    "get_action_spec",
    "variable_kinds",
]

#: What kind of value a variable holds (decides which prompt formats make sense).
VarKind = Literal["text", "digits", "money", "number", "date", "time", "bool", "phone", "id"]


@dataclass(frozen=True)
class ArgSpec:
    """One argument of an action."""

    description: str
    required: bool = True


@dataclass(frozen=True)
class ActionSpec:
    """Declaration of one action."""

    name: str
    description: str
    outcomes: Mapping[str, tuple[str, ...]]
    """Outcome name -> variables that outcome sets."""
    args: Mapping[str, ArgSpec] = field(default_factory=dict)
    """Arguments the flow passes (``args:`` of the action step)."""
    validator: bool = False
    """True for actions usable as ``collect.validate``: outcomes ``valid``/``invalid``; they get
    the captured value as the argument ``value``."""

    def variables(self) -> frozenset[str]:
        """Every variable any outcome may set."""
        return frozenset(v for names in self.outcomes.values() for v in names)

    def check_result(self, outcome: str, values: Mapping[str, Any]) -> None:
        """Raise :class:`ActionContractError` unless ``outcome`` is declared and ``values`` sets
        exactly the declared variables of that outcome (a value may be ``None``)."""
        if outcome not in self.outcomes:
            raise ActionContractError(
                f"action {self.name!r} returned undeclared outcome {outcome!r}; "
                f"declared: {', '.join(self.outcomes)}"
            )
        declared = set(self.outcomes[outcome])
        given = set(values)
        if given != declared:
            missing = ", ".join(sorted(declared - given)) or "-"
            extra = ", ".join(sorted(given - declared)) or "-"
            raise ActionContractError(
                f"action {self.name!r} outcome {outcome!r}: missing variables {missing}; "
                f"undeclared variables {extra}"
            )


#: Kinds of the variables actions set, for documentation and prompt-format checks.
_VARIABLE_KINDS: dict[str, VarKind] = {
    "account_number": "digits",
    "address": "text",
    "accounts_count": "number",
    "account_attempts": "number",
    "accounts_list": "text",
    "holder_name": "text",
    "debt": "money",
    "due_date": "date",
    "has_debt": "bool",
    "overdue": "bool",
    "credit": "money",
    "last_payment_amount": "money",
    "last_payment_date": "date",
    "meters_count": "number",
    "next_period": "bool",
    "meter_serial": "digits",
    "zone_label": "text",
    "last_value": "number",
    "readings_count": "number",
    "window_opens": "date",
    "window_closes": "date",
    "reason": "text",
    "email_masked": "text",
    "pay_links": "text",
    "outage_text": "text",
    "case_number": "id",
    "opens_at": "time",
    "opens_day": "text",
    "message": "text",
}


def _outcomes(**outcomes: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    return dict(outcomes)


_SPECS: tuple[ActionSpec, ...] = (
    ActionSpec(
        name="identify_caller",
        description=(
            "Look up the accounts linked to caller_phone. single: one account "
            "(account_number and its address as speakable text); multiple: several "
            "(accounts_list is a speakable numbered list «один — улица Ленина, дом пять; "
            "два — …» matching the keys choose_account accepts); unknown: none."
        ),
        outcomes=_outcomes(
            single=("account_number", "address"),
            multiple=("accounts_count", "accounts_list"),
            unknown=(),
        ),
    ),
    ActionSpec(
        name="choose_account",
        description=(
            "Pick the n-th account of the list identify_caller spoke (choice is 1-based). "
            "chosen: account_number and address set; invalid: no such position."
        ),
        outcomes=_outcomes(chosen=("account_number", "address"), invalid=()),
        args={"choice": ArgSpec("position the caller pressed, 1-based")},
    ),
    ActionSpec(
        name="check_account_number",
        description=(
            "Validator for a typed account number or IVR code: its format per the tenant's "
            "rules (digits only, length). invalid sets message (why, speakable)."
        ),
        outcomes=_outcomes(valid=(), invalid=("message",)),
        args={"value": ArgSpec("the captured digits")},
        validator=True,
    ),
    ActionSpec(
        name="find_account",
        description=(
            "Find an account by a typed account number or by the IVR code printed on the "
            "bill (normalised: leading zeros, dashes). found: account_number and address. "
            "Both outcomes set account_attempts, the lookups made in this call (to cap retries)."
        ),
        outcomes=_outcomes(
            found=("account_number", "address", "account_attempts"),
            not_found=("account_attempts",),
        ),
        args={"number": ArgSpec("typed account number or IVR code")},
    ),
    ActionSpec(
        name="balance",
        description=(
            "Balance of account_number. ok: there is a debt (debt > 0 in roubles, due_date, "
            "overdue: true when due_date is before the account's local today, the last "
            "payment; last_payment_* are null when there was none); no_debt: "
            "nothing is owed (credit is the overpayment, 0 when none)."
        ),
        outcomes=_outcomes(
            ok=(
                "debt",
                "due_date",
                "overdue",
                "has_debt",
                "last_payment_amount",
                "last_payment_date",
            ),
            no_debt=("credit", "has_debt", "last_payment_amount", "last_payment_date"),
        ),
    ),
    ActionSpec(
        name="start_readings",
        description=(
            "Begin a readings session for account_number: resets the zone cursor. ok: "
            "meters_count meters take manual readings; next_period is true when this month's "
            "window (closing window_closes) has passed and READING_LATE_POLICY=accept applies "
            "the readings to the next period; window_closed: readings are not taken "
            "today (window_opens/window_closes are the next window's dates); no_meters: no "
            "meter takes manual readings (remotely read or none)."
        ),
        outcomes=_outcomes(
            ok=("meters_count", "next_period", "window_closes"),
            window_closed=("window_opens", "window_closes"),
            no_meters=(),
        ),
    ),
    ActionSpec(
        name="next_meter_zone",
        description=(
            "Advance to the next meter zone without a reading in this session, meter by "
            "meter in the meter's own zone order. zone: meter_serial, zone_label (the meter's "
            "own label, speakable, e.g. «день», «ночь»), last_value (integer part, null when "
            "none); done: readings_count values were saved in this session."
        ),
        outcomes=_outcomes(
            zone=("meter_serial", "zone_label", "last_value"),
            done=("readings_count",),
        ),
    ),
    ActionSpec(
        name="check_reading",
        description=(
            "Check a reading for the current zone without saving it. accepted: plausible "
            "(a rollover counts); lower_than_last: below last_value (ask to confirm); "
            "implausible: reason says why (too many digits, consumption far above the "
            "zone's maximum); window_closed: the window closed during the call."
        ),
        outcomes=_outcomes(
            accepted=(),
            lower_than_last=("last_value",),
            implausible=("reason",),
            window_closed=("window_opens", "window_closes"),
        ),
        args={"value": ArgSpec("the reading, integer part")},
    ),
    ActionSpec(
        name="save_reading",
        description=(
            "Save the reading of the current zone (source ivr_dtmf or ivr_voice, chosen by "
            "the engine from how it was captured). confirmed_lower marks a value the caller "
            "confirmed although it is below the last one."
        ),
        outcomes=_outcomes(saved=(), window_closed=("window_opens", "window_closes")),
        args={
            "value": ArgSpec("the reading, integer part"),
            "confirmed_lower": ArgSpec("true when the caller confirmed a lower value", False),
        },
    ),
    ActionSpec(
        name="subscribe_e_receipt",
        description=(
            "Record the consent to electronic bills for account_number (the call is the "
            "consent record). ok: subscribed to email_masked (e.g. «i***@mail.ru»); "
            "already: was subscribed; no_email: no e-mail on file (subscription by SMS link)."
        ),
        outcomes=_outcomes(ok=("email_masked",), already=("email_masked",), no_email=()),
    ),
    ActionSpec(
        name="payment_links",
        description=(
            "The payment links of account_number for an SMS, built from the supplier's "
            "templates (PAYMENT_URL_TEMPLATE, SBP_PAYMENT_URL_TEMPLATE) with its current debt. "
            "ok: pay_links is the SMS-ready text (the payment page link, then «СБП: » and the "
            "SBP link when the supplier has one; the SBP link alone when it is the only one); "
            "none: no link template is configured."
        ),
        outcomes=_outcomes(ok=("pay_links",), none=()),
    ),
    ActionSpec(
        name="outage_info",
        description=(
            "Outages concerning account_number: its service address, feeder or substation "
            "(crm_store.outages): current: "
            "one is in progress (outage_text says what and when power is expected back, in "
            "the account's local time); planned: one starts within horizon_hours (outage_text "
            "says when it starts and ends); none: nothing known; no_address: no account "
            "identified, or it has neither a service address nor a feeder or substation."
        ),
        outcomes=_outcomes(
            current=("outage_text",), planned=("outage_text",), none=(), no_address=()
        ),
        args={
            "horizon_hours": ArgSpec("how far ahead planned outages are told (default 48)", False)
        },
    ),
    ActionSpec(
        name="report_outage",
        description=(
            "Record the caller's report of no power at the service address of account_number "
            "as an outage case (with the address, the time and the caller's phone). created: a "
            "new case; joined: the building already had an open case younger than group_hours "
            "and the report joined it. Both set case_number."
        ),
        outcomes=_outcomes(created=("case_number",), joined=("case_number",)),
        args={
            "group_hours": ArgSpec(
                "reports of one building within this many hours share a case (default 12)", False
            )
        },
    ),
    ActionSpec(
        name="operator_availability",
        description=(
            "Whether operators work now (hours, peak days and holidays from the settings and "
            "the production calendar). open; closed: opens_day («сегодня», «завтра», «в "
            "понедельник», a date) and opens_at (local time) say when they start again."
        ),
        outcomes=_outcomes(open=(), closed=("opens_at", "opens_day")),
    ),
    ActionSpec(
        name="create_case",
        description=(
            "Create a CRM Case for the account (or the caller's phone when unidentified) "
            "with the call's context. kind: already_paid, callback, voicemail, complaint. "
            "created: case_number (speakable id)."
        ),
        outcomes=_outcomes(created=("case_number",)),
        args={
            "kind": ArgSpec(
                "case kind: already_paid, callback, voicemail or complaint (default: purpose)",
                False,
            ),
            "note": ArgSpec("free text for the back office", False),
            "recording_url": ArgSpec("recording of a record step", False),
            "recording_duration": ArgSpec("its duration in seconds", False),
            "purpose": ArgSpec("voicemail or callback (set by record steps)", False),
        },
    ),
    ActionSpec(
        name="verify_person",
        description=(
            "Log the right-party check of an outbound call (for campaign reports). "
            "right_party when confirmed is true, wrong_party otherwise."
        ),
        outcomes=_outcomes(right_party=(), wrong_party=()),
        args={"confirmed": ArgSpec("the yes/no answer")},
    ),
    ActionSpec(
        name="debt_for_reminder",
        description=(
            "Current debt of the campaign target's account_number, re-read at call time. "
            "ok: debt, due_date and overdue (due_date before the account's local today); "
            "no_debt: paid since the campaign was planned."
        ),
        outcomes=_outcomes(ok=("debt", "due_date", "overdue"), no_debt=()),
    ),
    ActionSpec(
        name="opt_out_robot_calls",
        description=(
            "Record that caller_phone refuses robot calls (do-not-contact for automated "
            "calls, effective immediately for queued campaign jobs)."
        ),
        outcomes=_outcomes(done=()),
    ),
    ActionSpec(
        name="log_contact_result",
        description=(
            "Record the result of an outbound reminder on the campaign attempt (heard, "
            "sms_requested, transferred, already_paid, opted_out, wrong_party)."
        ),
        outcomes=_outcomes(done=()),
        args={"result": ArgSpec("the contact result")},
    ),
)

#: Every declared action by name.
ACTION_SPECS: Mapping[str, ActionSpec] = {spec.name: spec for spec in _SPECS}


def get_action_spec(name: str) -> ActionSpec:
    """The declaration of ``name``; raises :class:`UnknownActionError` when there is none."""
    try:
        return ACTION_SPECS[name]
    except KeyError:
        raise UnknownActionError(name) from None


def variable_kinds() -> Mapping[str, VarKind]:
    """Kind of every variable an action may set."""
    return dict(_VARIABLE_KINDS)
