"""Configuration from the environment.

Every setting has a default that runs the product on a laptop (SQLite, the sandbox
telephony). An invalid value stops start-up with a :class:`ConfigError` naming the
variable, never a traceback deep inside the app.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from contactcenter.phones import InvalidPhoneError, normalize_phone

PROJECT_ROOT = Path(__file__).resolve().parent.parent

TELEPHONY_CHOICES = ("sandbox", "twilio")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(ValueError):
    """A configuration variable is missing or invalid; the message names it."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


def default_database_url(root: Path = PROJECT_ROOT) -> str:
    """SQLite file under ``var/`` of the project directory."""
    return f"sqlite:///{root / 'var' / 'contactcenter.db'}"


@dataclass(frozen=True)
class Settings:
    """Validated settings of one process."""

    database_url: str = field(default_factory=default_database_url)
    redis_url: str = "redis://127.0.0.1:6379/0"
    telephony: str = "sandbox"
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from_number: str | None = None
    public_base_url: str = "http://127.0.0.1:5000"
    vosk_model_path: str | None = None
    log_level: str = "INFO"
    flows_file: str = str(PROJECT_ROOT / "call_flows.yaml")
    reading_window_start_day: int = 15
    reading_window_end_day: int = 25
    operator_phone: str = "+74950000000"
    grid_company_phone: str = "+78002200220"
    supplier_name: str = "ЭнергоСбыт"
    api_token: str | None = None
    sandbox_scenario: str | None = None

    def with_overrides(self, **changes: Any) -> Settings:
        """Return a copy with some fields replaced (used by tests and the CLI)."""
        return replace(self, **changes)

    @property
    def sandbox_auth_token(self) -> str:
        """Token the sandbox provider signs webhooks with when no Twilio token is set."""
        return self.twilio_auth_token or "sandbox-auth-token"

    @property
    def webhook_auth_token(self) -> str:
        """Token used to validate ``X-Twilio-Signature`` on incoming webhooks."""
        if self.telephony == "twilio":
            if self.twilio_auth_token is None:
                raise ConfigError("TWILIO_AUTH_TOKEN", "is required when TELEPHONY=twilio")
            return self.twilio_auth_token
        return self.sandbox_auth_token


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(name, f"must be between {lo} and {hi}, got {value}")
    return value


def _check_url(name: str, value: str, schemes: tuple[str, ...]) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in schemes:
        raise ConfigError(name, f"must be a URL with scheme {' or '.join(schemes)}, got {value!r}")
    return value


def _check_database_url(value: str) -> str:
    scheme = value.split(":", 1)[0]
    if not scheme.startswith(("sqlite", "postgresql")):
        raise ConfigError(
            "DATABASE_URL",
            f"must be a sqlite:/// or postgresql+psycopg:// URL, got {value!r}",
        )
    if scheme in ("postgresql", "postgres"):
        # psycopg 3 is the driver we ship; plain postgresql:// means psycopg2 to SQLAlchemy.
        value = "postgresql+psycopg" + value[len(scheme) :]
    return value


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings from ``environ`` (default: ``os.environ``)."""
    env = os.environ if environ is None else environ

    def get(name: str) -> str | None:
        raw = env.get(name)
        return raw.strip() if raw is not None and raw.strip() != "" else None

    database_url = _check_database_url(get("DATABASE_URL") or default_database_url())
    redis_url = _check_url(
        "REDIS_URL", get("REDIS_URL") or Settings.redis_url, ("redis", "rediss", "unix")
    )
    telephony = (get("TELEPHONY") or "sandbox").lower()
    if telephony not in TELEPHONY_CHOICES:
        raise ConfigError("TELEPHONY", f"must be one of {', '.join(TELEPHONY_CHOICES)}")

    sid, token, from_number = (
        get("TWILIO_ACCOUNT_SID"),
        get("TWILIO_AUTH_TOKEN"),
        get("TWILIO_FROM_NUMBER"),
    )
    if sid is not None and not (sid.startswith("AC") and len(sid) == 34):
        raise ConfigError("TWILIO_ACCOUNT_SID", "must look like AC followed by 32 hex digits")
    if from_number is not None:
        try:
            from_number = normalize_phone(from_number)
        except InvalidPhoneError as exc:
            raise ConfigError("TWILIO_FROM_NUMBER", str(exc)) from None
    if telephony == "twilio":
        for name, value in (
            ("TWILIO_ACCOUNT_SID", sid),
            ("TWILIO_AUTH_TOKEN", token),
            ("TWILIO_FROM_NUMBER", from_number),
        ):
            if value is None:
                raise ConfigError(name, "is required when TELEPHONY=twilio")

    public_base_url = _check_url(
        "PUBLIC_BASE_URL", get("PUBLIC_BASE_URL") or Settings.public_base_url, ("http", "https")
    ).rstrip("/")

    vosk_model_path = get("VOSK_MODEL_PATH")
    if vosk_model_path is not None and not Path(vosk_model_path).is_dir():
        raise ConfigError("VOSK_MODEL_PATH", f"{vosk_model_path!r} is not a directory")

    log_level = (get("LOG_LEVEL") or "INFO").upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError("LOG_LEVEL", f"must be one of {', '.join(LOG_LEVELS)}")

    flows_file = get("FLOWS_FILE") or Settings.flows_file
    sandbox_scenario = get("SANDBOX_SCENARIO")
    if sandbox_scenario is not None:
        if not Path(sandbox_scenario).is_file():
            raise ConfigError("SANDBOX_SCENARIO", f"{sandbox_scenario!r} is not a file")
        sandbox_scenario = str(Path(sandbox_scenario).resolve())
    start_day = _int(env, "READING_WINDOW_START_DAY", 15, 1, 31)
    end_day = _int(env, "READING_WINDOW_END_DAY", 25, 1, 31)
    if end_day < start_day:
        raise ConfigError("READING_WINDOW_END_DAY", "must not be before READING_WINDOW_START_DAY")

    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        telephony=telephony,
        twilio_account_sid=sid,
        twilio_auth_token=token,
        twilio_from_number=from_number,
        public_base_url=public_base_url,
        vosk_model_path=vosk_model_path,
        log_level=log_level,
        flows_file=flows_file,
        reading_window_start_day=start_day,
        reading_window_end_day=end_day,
        operator_phone=get("OPERATOR_PHONE") or Settings.operator_phone,
        grid_company_phone=get("GRID_COMPANY_PHONE") or Settings.grid_company_phone,
        supplier_name=get("SUPPLIER_NAME") or Settings.supplier_name,
        api_token=get("API_TOKEN"),
        sandbox_scenario=sandbox_scenario,
    )


def configure_logging(level: str) -> None:
    """Configure stdlib logging once for a process (JSON-ish single-line records)."""
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
