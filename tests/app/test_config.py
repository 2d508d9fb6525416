"""Settings come from the environment; an invalid value names its variable."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path

import pytest

from contactcenter.config import ConfigError, Settings, load_settings


def test_defaults_run_on_a_laptop() -> None:
    settings = load_settings({})
    assert settings.database_url.startswith("sqlite:///")
    assert settings.database_url.endswith("var/contactcenter.db")
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.telephony == "sandbox"
    assert settings.log_level == "INFO"
    assert settings.webhook_auth_token == settings.sandbox_auth_token


def test_postgresql_url_gets_the_psycopg3_driver() -> None:
    settings = load_settings({"DATABASE_URL": "postgresql://u@db:5432/cc"})
    assert settings.database_url == "postgresql+psycopg://u@db:5432/cc"


def test_public_base_url_loses_its_trailing_slash() -> None:
    assert load_settings({"PUBLIC_BASE_URL": "https://ivr.example.ru/"}).public_base_url == (
        "https://ivr.example.ru"
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"REDIS_URL": "http://localhost"}, "REDIS_URL"),
        ({"TELEPHONY": "asterisk"}, "TELEPHONY"),
        ({"TELEPHONY": "twilio"}, "TWILIO_ACCOUNT_SID"),
        (
            {"TELEPHONY": "twilio", "TWILIO_ACCOUNT_SID": "AC" + "0" * 32},
            "TWILIO_AUTH_TOKEN",
        ),
        (
            {
                "TELEPHONY": "twilio",
                "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
                "TWILIO_AUTH_TOKEN": "t",
            },
            "TWILIO_FROM_NUMBER",
        ),
        ({"TWILIO_ACCOUNT_SID": "XY123"}, "TWILIO_ACCOUNT_SID"),
        ({"TWILIO_FROM_NUMBER": "12345"}, "TWILIO_FROM_NUMBER"),
        ({"PUBLIC_BASE_URL": "ivr.example.ru"}, "PUBLIC_BASE_URL"),
        ({"VOSK_MODEL_PATH": "/nonexistent/model"}, "VOSK_MODEL_PATH"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"READING_WINDOW_START_DAY": "abc"}, "READING_WINDOW_START_DAY"),
        (
            {"READING_WINDOW_START_DAY": "20", "READING_WINDOW_END_DAY": "10"},
            "READING_WINDOW_END_DAY",
        ),
        ({"READING_LATE_POLICY": "maybe"}, "READING_LATE_POLICY"),
        ({"OPERATOR_HOURS": "8-17"}, "OPERATOR_HOURS"),
        ({"OPERATOR_HOURS": "17:00-08:00"}, "OPERATOR_HOURS"),
        ({"OPERATOR_PEAK_HOURS": "08:00-25:00"}, "OPERATOR_PEAK_HOURS"),
        ({"OPERATOR_PEAK_DAYS": "25-21"}, "OPERATOR_PEAK_DAYS"),
        ({"OPERATOR_HOLIDAYS": "31.12.2026"}, "OPERATOR_HOLIDAYS"),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert info.value.variable == variable
    assert str(info.value).startswith(variable + ":")


def test_twilio_mode_with_credentials(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "TELEPHONY": "twilio",
            "TWILIO_ACCOUNT_SID": "AC" + "a" * 32,
            "TWILIO_AUTH_TOKEN": "secret",
            "TWILIO_FROM_NUMBER": "8 (495) 123-45-67",
            "PUBLIC_BASE_URL": "https://ivr.example.ru",
            "VOSK_MODEL_PATH": str(tmp_path),
            "LOG_LEVEL": "debug",
        }
    )
    assert settings.twilio_from_number == "+74951234567"
    assert settings.webhook_auth_token == "secret"
    assert settings.vosk_model_path == str(tmp_path)
    assert settings.log_level == "DEBUG"


def test_operator_hours_and_reading_policy_from_the_environment() -> None:
    defaults = load_settings({})
    assert defaults.operator_hours == (time(8), time(17))
    assert defaults.operator_peak_hours == (time(8), time(21))
    assert defaults.operator_peak_days == (21, 25)
    assert defaults.operator_holidays == frozenset()
    assert defaults.reading_late_policy == "accept"
    custom = load_settings(
        {
            "OPERATOR_HOURS": "09:30-18:00",
            "OPERATOR_PEAK_HOURS": "07:00 - 22:00",
            "OPERATOR_PEAK_DAYS": "0-0",
            "OPERATOR_HOLIDAYS": "2026-12-31, 2027-01-09",
            "READING_LATE_POLICY": "REFUSE",
        }
    )
    assert custom.operator_hours == (time(9, 30), time(18))
    assert custom.operator_peak_hours == (time(7), time(22))
    assert custom.operator_peak_days == (0, 0)
    assert custom.operator_holidays == {date(2026, 12, 31), date(2027, 1, 9)}
    assert custom.reading_late_policy == "refuse"


def test_settings_are_immutable_and_overridable() -> None:
    settings = Settings()
    changed = settings.with_overrides(telephony="twilio")
    assert settings.telephony == "sandbox"
    assert changed.telephony == "twilio"
