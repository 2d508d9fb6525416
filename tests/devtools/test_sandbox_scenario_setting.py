"""SANDBOX_SCENARIO: the sandbox provider of the app and the workers scripts its outcomes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from contactcenter.config import ConfigError, Settings, load_settings
from contactcenter.services import Services
from contactcenter.wiring import provider_for
from devtools.sandbox import SandboxProvider, Scenario

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "devtools" / "scenarios" / "demo.yaml"


def test_setting_is_an_existing_file_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings({}).sandbox_scenario is None
    scenario = tmp_path / "s.yaml"
    scenario.write_text("seed: 1\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert load_settings({"SANDBOX_SCENARIO": "s.yaml"}).sandbox_scenario == str(scenario)
    for bad in ("missing.yaml", str(tmp_path)):
        with pytest.raises(ConfigError, match="SANDBOX_SCENARIO") as info:
            load_settings({"SANDBOX_SCENARIO": bad})
        assert info.value.variable == "SANDBOX_SCENARIO"


class _CapturingQueue:
    def __init__(self) -> None:
        self.jobs: list[tuple[str, dict[str, Any]]] = []

    def enqueue(self, function: str, spec: dict[str, Any], **_options: Any) -> None:
        self.jobs.append((function, spec))


def test_provider_of_the_app_and_workers_uses_the_scenario(
    settings: Settings, redis_client: Any
) -> None:
    provider = provider_for(Services(settings.with_overrides(sandbox_scenario=str(DEMO))))
    assert isinstance(provider, SandboxProvider)
    expected = Scenario.from_yaml(DEMO)
    numbers = [f"+7916{n:07d}" for n in range(50)]
    assert [provider.scenario.call_outcome(n) for n in numbers] == [
        expected.call_outcome(n) for n in numbers
    ]
    assert [provider.scenario.sms_outcome(n) for n in numbers] == [
        expected.sms_outcome(n) for n in numbers
    ]
    # The RQ job that runs the call's life gets the same scenario file.
    queue = _CapturingQueue()
    provider.queue = queue
    provider.place_call(
        "+79161234501", "+78001234567", "http://localhost/voice/outbound", status_callback=None
    )
    [(function, spec)] = queue.jobs
    assert function == "devtools.sandbox.jobs.run_sandbox_call"
    assert spec["scenario_path"] == str(DEMO)


def test_without_the_setting_everyone_answers(settings: Settings) -> None:
    provider = provider_for(Services(settings))
    assert isinstance(provider, SandboxProvider)
    assert provider.scenario_path is None
    assert provider.scenario.call_outcome("+79161234501").answer == "human"


def test_an_invalid_scenario_is_a_config_error(settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("calls: {default: {answer: maybe}}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="SANDBOX_SCENARIO") as info:
        provider_for(Services(settings.with_overrides(sandbox_scenario=str(bad))))
    assert f"{bad}: calls.default: answer must be one of" in str(info.value)


def test_demo_scenario_is_a_realistic_mix() -> None:
    scenario = Scenario.from_yaml(DEMO)
    numbers = [f"+7916{n:07d}" for n in range(1000)]
    answers = Counter(scenario.call_outcome(n).answer for n in numbers)
    assert answers["human"] > 500
    assert answers["machine"] > 100
    assert answers["busy"] > 40
    assert answers["no-answer"] > 40
    sms = Counter(scenario.sms_outcome(n).status for n in numbers)
    assert sms["delivered"] > 850
    assert sms["undelivered"] > 20
    humans = [scenario.call_outcome(n) for n in numbers]
    assert any(o.inputs for o in humans if o.answer == "human")
    # Deterministic: the same number and attempt always go the same way.
    assert scenario.call_outcome(numbers[7], 2) == Scenario.from_yaml(DEMO).call_outcome(
        numbers[7], 2
    )
