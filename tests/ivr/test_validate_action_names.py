"""The action name registry: declarations are complete and results are checked against them."""

from __future__ import annotations

import pytest

from ivr.action_names import ACTION_SPECS, get_action_spec, variable_kinds
from ivr.errors import ActionContractError, UnknownActionError


def test_every_variable_has_a_kind() -> None:
    kinds = variable_kinds()
    for spec in ACTION_SPECS.values():
        for name in spec.variables():
            assert name in kinds, f"{spec.name}: {name}"


def test_specs_are_documented_and_named_consistently() -> None:
    for name, spec in ACTION_SPECS.items():
        assert spec.name == name
        assert spec.outcomes, name
        assert len(spec.description) > 20, name
        if spec.validator:
            assert set(spec.outcomes) == {"valid", "invalid"}
            assert "value" in spec.args


def test_identify_caller_contract() -> None:
    spec = get_action_spec("identify_caller")
    assert spec.outcomes["single"] == ("account_number", "address")
    assert spec.outcomes["multiple"] == ("accounts_count", "accounts_list")
    assert spec.outcomes["unknown"] == ()


def test_check_result() -> None:
    spec = get_action_spec("balance")
    spec.check_result(
        "no_debt",
        {"credit": 0, "has_debt": False, "last_payment_amount": None, "last_payment_date": None},
    )
    with pytest.raises(ActionContractError, match="undeclared outcome 'maybe'"):
        spec.check_result("maybe", {})
    with pytest.raises(ActionContractError, match="missing variables due_date"):
        spec.check_result(
            "ok",
            {"debt": 1, "has_debt": True, "last_payment_amount": None, "last_payment_date": None},
        )
    with pytest.raises(ActionContractError, match="undeclared variables extra"):
        get_action_spec("opt_out_robot_calls").check_result("done", {"extra": 1})


def test_unknown_action() -> None:
    with pytest.raises(UnknownActionError):
        get_action_spec("no_such_action")
