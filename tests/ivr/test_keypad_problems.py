"""Why a keypad entry was refused: the reason the reprompt states (ivr.input_values)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.input_values import KEYPAD_PROBLEMS, keypad_problem
from ivr.schema import CollectStep
from ivr.validate import load_flows

FLOWS = load_flows(Path(__file__).resolve().parents[2] / "call_flows.yaml")


def collect(flow: str, name: str) -> CollectStep:
    step = FLOWS.step(flow, name)
    assert isinstance(step, CollectStep)
    return step


@pytest.mark.parametrize(
    ("flow", "step", "entry", "problem"),
    [
        ("identify", "ask_account", "12*34", "not_digits"),
        ("identify", "ask_account", "1" * 21, "too_long"),
        ("identify", "ask_account", "123", "too_short"),
        ("identify", "ask_account", "1234", None),
        ("readings", "ask_reading", "123456789", "too_long"),
        ("readings", "ask_reading", "12345678", None),
        ("readings", "ask_reading", "12*", "not_digits"),
        ("identify", "confirm_found", "7", None),  # yes/no: the menu's own reprompt
    ],
)
def test_keypad_problem(flow: str, step: str, entry: str, problem: str | None) -> None:
    assert keypad_problem(collect(flow, step), entry) == problem


def test_every_problem_is_said_differently() -> None:
    assert len(set(KEYPAD_PROBLEMS.values())) == len(KEYPAD_PROBLEMS)
