"""Configuration from the environment.

Every setting has a default that runs the product on a laptop (SQLite, the sandbox
telephony). An invalid value stops start-up with a :class:`ConfigError` naming the
variable, never a traceback deep inside the app.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from contactcenter.logs import LOG_FORMATS
from contactcenter.payment_links import LinkTemplateError, check_link_template
from contactcenter.phones import InvalidPhoneError, normalize_phone

PROJECT_ROOT = Path(__file__).resolve().parent.parent

TELEPHONY_CHOICES = ("sandbox", "twilio")
OPERATOR_ROUTING_CHOICES = ("queue", "dial", "taskrouter")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
RECORDINGS_STORAGE_CHOICES = ("local", "s3")


class ConfigError(ValueError):
    """A configuration variable is missing or invalid; the message names it."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


def default_database_url(root: Path = PROJECT_ROOT) -> str:
    """SQLite file under ``var/`` of the project directory."""
    return f"sqlite:///{root / 'var' / 'contactcenter.db'}"


def default_models_dir(environ: Mapping[str, str] | None = None, root: Path = PROJECT_ROOT) -> Path:
    """Where speech models are downloaded when ``MODELS_DIR`` is not set: ``models/`` of a
    source checkout, else (an installed package, whose ``models/`` would be inside
    site-packages) ``$XDG_DATA_HOME/contactcenter/models``, by default under
    ``~/.local/share``: a folder the user running the command can write."""
    if (root / "pyproject.toml").is_file() and (root / "models").is_dir():
        return root / "models"
    env = os.environ if environ is None else environ
    data_home = (env.get("XDG_DATA_HOME") or "").strip()
    base = Path(data_home) if data_home else Path.home() / ".local" / "share"
    return base / "contactcenter" / "models"


def models_dir_from(environ: Mapping[str, str] | None = None) -> Path:
    """``MODELS_DIR`` as an absolute path, or :func:`default_models_dir`."""
    env = os.environ if environ is None else environ
    raw = (env.get("MODELS_DIR") or "").strip()
    if not raw:
        return default_models_dir(env)
    path = Path(raw).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise ConfigError("MODELS_DIR", f"{raw!r} is not a directory")
    return path


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
    models_dir: str = field(default_factory=lambda: str(default_models_dir()))
    """Where ``contactcenter models download`` puts models and the app looks for them
    (``MODELS_DIR``; default :func:`default_models_dir`)."""
    log_level: str = "INFO"
    log_format: str = "text"
    """``LOG_FORMAT``: ``json`` (one object per line; the default with ``TELEPHONY=twilio``) or
    ``text`` (the default elsewhere); see ``docs/observability.md``."""
    metrics_token: str | None = None
    """``METRICS_TOKEN``: when set, ``/metrics`` wants ``Authorization: Bearer <token>``."""
    flows_file: str = str(PROJECT_ROOT / "call_flows.yaml")
    reading_window_start_day: int = 15
    reading_window_end_day: int = 25
    reading_late_policy: str = "accept"
    """Readings given outside the window: ``accept`` (saved for the next billing period, and
    the caller is told so) or ``refuse`` (not saved; the caller hears when to call back)."""
    operator_hours: tuple[time, time] = (time(8, 0), time(17, 0))
    """Operators' hours on a working day (supplier's local time), ``OPERATOR_HOURS=08:00-17:00``."""
    operator_peak_hours: tuple[time, time] = (time(8, 0), time(21, 0))
    """Extended hours on working days of the reading peak (``OPERATOR_PEAK_HOURS``)."""
    operator_peak_days: tuple[int, int] = (21, 25)
    """Days of the month of the peak (``OPERATOR_PEAK_DAYS=21-25``): working days get the peak
    hours, non-working days the ordinary hours; 0-0 turns the peak off."""
    operator_holidays: frozenset[date] = frozenset()
    """The hotline's own closed days (``OPERATOR_HOLIDAYS=2026-12-31,2027-01-09``), on top of
    the production calendar's non-working days."""
    operator_phone: str = "+74950000000"
    grid_company_phone: str = "+78002200220"
    supplier_name: str = "ЭнергоСбыт"
    api_token: str | None = None
    sandbox_scenario: str | None = None
    operator_routing: str = "queue"
    """How operator transfers reach people: ``queue`` (``<Enqueue>`` with a JSON ``<Task>``),
    ``dial`` (``<Dial>`` to ``operator_phone`` with a whisper) or ``taskrouter``."""
    taskrouter_workflow_sid: str | None = None
    recordings_dir: str = str(PROJECT_ROOT / "var" / "recordings")
    """Where downloaded call recordings are stored (``RECORDINGS_DIR``)."""
    imports_dir: str = str(PROJECT_ROOT / "var" / "imports")
    """Where files posted to ``/api/imports`` wait for their import job (``IMPORTS_DIR``;
    with several app hosts, a volume the workers share)."""
    import_max_mb: int = 512
    """The largest file ``/api/imports`` accepts, in MiB (``IMPORT_MAX_MB``, 1-10240)."""
    recording_retention_days: int = 365
    """Days a call recording is kept before the retention job deletes it
    (``RECORDING_RETENTION_DAYS``, 1-3650)."""
    recording_purge_at: time = time(3, 0)
    """When (UTC, ``RECORDING_PURGE_AT=HH:MM``) the worker's daily retention job runs."""
    recordings_storage: str = "local"
    """Where downloaded recordings go (``RECORDINGS_STORAGE``): ``local`` (``RECORDINGS_DIR``)
    or ``s3`` (an S3-compatible bucket; region and credentials from the AWS variables)."""
    recordings_s3_bucket: str | None = None
    """The bucket of ``RECORDINGS_STORAGE=s3`` (``RECORDINGS_S3_BUCKET``, required then)."""
    recordings_s3_prefix: str = ""
    """Key prefix of the recordings in the bucket (``RECORDINGS_S3_PREFIX``, e.g. ``calls/``)."""
    recordings_s3_endpoint_url: str | None = None
    """A non-AWS S3 endpoint (``RECORDINGS_S3_ENDPOINT_URL``: MinIO, Yandex Object Storage …)."""
    payment_url_template: str | None = None
    """The supplier's payment page per account (``PAYMENT_URL_TEMPLATE``, placeholders
    ``{account}``, ``{amount}``, ``{amount_kopecks}``: :mod:`contactcenter.payment_links`)."""
    sbp_payment_url_template: str | None = None
    """The supplier's SBP payment link per account (``SBP_PAYMENT_URL_TEMPLATE``), if any."""

    tts_command: str = "espeak-ng -v ru --stdout"
    """Text-to-speech of the prompts of barge-in steps (``TTS_COMMAND``): a command reading
    the text on stdin and writing a WAV to stdout; ``off`` disables it (those steps then play
    their prompts through the provider, without barge-in). See ``docs/speech.md``."""
    tts_cache_dir: str = str(PROJECT_ROOT / "var" / "tts-cache")
    """Where synthesised prompt audio is cached (``TTS_CACHE_DIR``)."""

    console_secret_key: str | None = None
    """Signs the console's session cookies (``CONSOLE_SECRET_KEY``, 32+ characters): required
    with ``TELEPHONY=twilio``; elsewhere the console generates one, kept in
    ``console_secret_key_file``."""
    console_secret_key_file: str = str(PROJECT_ROOT / "var" / "console-secret-key")
    """Where a development console key is generated and kept when none is configured."""
    console_session_hours: int = 12
    """A console session ends this many hours after the login (``CONSOLE_SESSION_HOURS``)."""
    console_idle_minutes: int = 30
    """… or after this many minutes without activity (``CONSOLE_IDLE_MINUTES``)."""
    console_login_max_failures: int = 5
    """Wrong passwords in a row that lock a username (``CONSOLE_LOGIN_MAX_FAILURES``); a client
    address is locked after four times as many (any usernames)."""
    console_lockout_minutes: int = 15
    """How long a lock lasts (``CONSOLE_LOCKOUT_MINUTES``)."""
    console_proxy_count: int = 0
    """Reverse proxies in front of the app that append to ``X-Forwarded-For``
    (``CONSOLE_PROXY_COUNT``): the client address of the login lockout is the one the
    outermost of them saw; 0 uses the TCP peer's address."""

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


def _clock_range(
    env: Mapping[str, str], name: str, default: tuple[time, time]
) -> tuple[time, time]:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    match = re.fullmatch(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})", raw)
    if match is None:
        raise ConfigError(name, f"must be HH:MM-HH:MM, got {raw!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    try:
        opens, closes = time(h1, m1), time(h2, m2)
    except ValueError:
        raise ConfigError(name, f"must be HH:MM-HH:MM, got {raw!r}") from None
    if closes <= opens:
        raise ConfigError(name, f"must close after it opens, got {raw!r}")
    return opens, closes


def _clock_time(env: Mapping[str, str], name: str, default: time) -> time:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", raw)
    hour, minute = (int(match.group(1)), int(match.group(2))) if match else (-1, -1)
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise ConfigError(name, f"must be HH:MM (00:00-23:59), got {raw!r}")
    return time(hour, minute)


def _recordings_storage(
    env: Mapping[str, str],
) -> tuple[str, str | None, str, str | None]:
    """``RECORDINGS_STORAGE`` and its S3 settings: (storage, bucket, prefix, endpoint URL)."""
    storage = (env.get("RECORDINGS_STORAGE") or "").strip().lower() or Settings.recordings_storage
    if storage not in RECORDINGS_STORAGE_CHOICES:
        raise ConfigError(
            "RECORDINGS_STORAGE", f"must be one of {', '.join(RECORDINGS_STORAGE_CHOICES)}"
        )
    bucket = (env.get("RECORDINGS_S3_BUCKET") or "").strip() or None
    if bucket is not None and not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        raise ConfigError(
            "RECORDINGS_S3_BUCKET",
            f"must be an S3 bucket name (3-63 lower-case letters, digits, dots, hyphens), "
            f"got {bucket!r}",
        )
    if storage == "s3" and bucket is None:
        raise ConfigError("RECORDINGS_S3_BUCKET", "is required when RECORDINGS_STORAGE=s3")
    prefix = (env.get("RECORDINGS_S3_PREFIX") or "").strip().strip("/")
    if ".." in prefix.split("/") or "//" in prefix:
        raise ConfigError("RECORDINGS_S3_PREFIX", f"must be a plain key prefix, got {prefix!r}")
    endpoint = (env.get("RECORDINGS_S3_ENDPOINT_URL") or "").strip() or None
    if endpoint is not None:
        _check_url("RECORDINGS_S3_ENDPOINT_URL", endpoint, ("http", "https"))
    return storage, bucket, prefix, endpoint


def _day_range(env: Mapping[str, str], name: str, default: tuple[int, int]) -> tuple[int, int]:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    match = re.fullmatch(r"(\d{1,2})\s*-\s*(\d{1,2})", raw)
    first, last = (int(match.group(1)), int(match.group(2))) if match else (-1, -1)
    if (first, last) != (0, 0) and not 1 <= first <= last <= 31:
        raise ConfigError(name, f"must be FIRST-LAST days of the month (1-31) or 0-0, got {raw!r}")
    return first, last


def _date_list(env: Mapping[str, str], name: str) -> frozenset[date]:
    days: set[date] = set()
    for item in (env.get(name) or "").replace(";", ",").split(","):
        if item.strip():
            try:
                days.add(date.fromisoformat(item.strip()))
            except ValueError:
                raise ConfigError(name, f"{item.strip()!r} is not a YYYY-MM-DD date") from None
    return frozenset(days)


def _check_url(name: str, value: str, schemes: tuple[str, ...]) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in schemes:
        raise ConfigError(name, f"must be a URL with scheme {' or '.join(schemes)}, got {value!r}")
    return value


def _check_public_base_url_for_twilio(raw: str | None) -> None:
    """With ``TELEPHONY=twilio`` every webhook's signature is checked against
    ``PUBLIC_BASE_URL``: refuse a value Twilio's requests can never match."""
    if raw is None:
        raise ConfigError(
            "PUBLIC_BASE_URL",
            "is required when TELEPHONY=twilio: the https:// address Twilio calls (webhook "
            "signatures are validated against it; see docs/deploy.md)",
        )
    parts = urlparse(raw)
    if parts.scheme != "https":
        raise ConfigError(
            "PUBLIC_BASE_URL",
            f"must be an https:// URL when TELEPHONY=twilio (TLS ends at the proxy in front "
            f"of the app; Media Streams need wss://), got {raw!r}",
        )
    host = (parts.hostname or "").lower()
    loopback = ("", "localhost", "0.0.0.0", "::1")  # noqa: S104 - refused, not bound
    if host in loopback or host.startswith("127.") or host.endswith(".localhost"):
        raise ConfigError(
            "PUBLIC_BASE_URL",
            f"must be the public host Twilio reaches, not {host or 'an empty host'!r} "
            f"(got {raw!r})",
        )
    if parts.query or parts.fragment:
        raise ConfigError("PUBLIC_BASE_URL", f"must not carry a query or a fragment, got {raw!r}")


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
    if telephony == "twilio":
        _check_public_base_url_for_twilio(get("PUBLIC_BASE_URL"))

    vosk_model_path = get("VOSK_MODEL_PATH")
    if vosk_model_path is not None and not Path(vosk_model_path).is_dir():
        raise ConfigError("VOSK_MODEL_PATH", f"{vosk_model_path!r} is not a directory")

    log_level = (get("LOG_LEVEL") or "INFO").upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError("LOG_LEVEL", f"must be one of {', '.join(LOG_LEVELS)}")
    log_format = (get("LOG_FORMAT") or ("json" if telephony == "twilio" else "text")).lower()
    if log_format not in LOG_FORMATS:
        raise ConfigError("LOG_FORMAT", f"must be one of {', '.join(LOG_FORMATS)}")

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
    late_policy = (get("READING_LATE_POLICY") or Settings.reading_late_policy).lower()
    if late_policy not in ("accept", "refuse"):
        raise ConfigError("READING_LATE_POLICY", "must be accept or refuse")

    operator_routing = (get("OPERATOR_ROUTING") or Settings.operator_routing).lower()
    if operator_routing not in OPERATOR_ROUTING_CHOICES:
        raise ConfigError(
            "OPERATOR_ROUTING", f"must be one of {', '.join(OPERATOR_ROUTING_CHOICES)}"
        )
    workflow_sid = get("TASKROUTER_WORKFLOW_SID")
    if workflow_sid is not None and not re.fullmatch(r"WW[0-9a-fA-F]{32}", workflow_sid):
        raise ConfigError("TASKROUTER_WORKFLOW_SID", "must look like WW followed by 32 hex digits")
    if operator_routing == "taskrouter" and workflow_sid is None:
        raise ConfigError("TASKROUTER_WORKFLOW_SID", "is required when OPERATOR_ROUTING=taskrouter")
    recordings_storage, s3_bucket, s3_prefix, s3_endpoint = _recordings_storage(env)
    operator_phone = get("OPERATOR_PHONE") or Settings.operator_phone
    try:
        operator_phone = normalize_phone(operator_phone, require_russian=False)
    except InvalidPhoneError as exc:
        raise ConfigError("OPERATOR_PHONE", str(exc)) from None

    # Required with TELEPHONY=twilio by the web app only (web.console.init_console): workers
    # and the CLI do not sign console cookies.
    console_secret_key = get("CONSOLE_SECRET_KEY")
    if console_secret_key is not None and len(console_secret_key) < 32:
        raise ConfigError(
            "CONSOLE_SECRET_KEY",
            "must have at least 32 characters (e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'`)",
        )

    links = {
        name: _link_template(get(name), name, production=telephony == "twilio")
        for name in ("PAYMENT_URL_TEMPLATE", "SBP_PAYMENT_URL_TEMPLATE")
    }

    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        telephony=telephony,
        twilio_account_sid=sid,
        twilio_auth_token=token,
        twilio_from_number=from_number,
        public_base_url=public_base_url,
        vosk_model_path=vosk_model_path,
        models_dir=str(models_dir_from(env)),
        log_level=log_level,
        log_format=log_format,
        metrics_token=_metrics_token(get("METRICS_TOKEN")),
        flows_file=flows_file,
        reading_window_start_day=start_day,
        reading_window_end_day=end_day,
        reading_late_policy=late_policy,
        operator_hours=_clock_range(env, "OPERATOR_HOURS", Settings.operator_hours),
        operator_peak_hours=_clock_range(env, "OPERATOR_PEAK_HOURS", Settings.operator_peak_hours),
        operator_peak_days=_day_range(env, "OPERATOR_PEAK_DAYS", Settings.operator_peak_days),
        operator_holidays=_date_list(env, "OPERATOR_HOLIDAYS"),
        operator_phone=operator_phone,
        grid_company_phone=get("GRID_COMPANY_PHONE") or Settings.grid_company_phone,
        supplier_name=get("SUPPLIER_NAME") or Settings.supplier_name,
        api_token=get("API_TOKEN"),
        sandbox_scenario=sandbox_scenario,
        operator_routing=operator_routing,
        taskrouter_workflow_sid=workflow_sid,
        recordings_dir=str(Path(get("RECORDINGS_DIR") or Settings.recordings_dir).resolve()),
        recording_retention_days=_int(
            env, "RECORDING_RETENTION_DAYS", Settings.recording_retention_days, 1, 3650
        ),
        imports_dir=str(Path(get("IMPORTS_DIR") or Settings.imports_dir).resolve()),
        import_max_mb=_int(env, "IMPORT_MAX_MB", Settings.import_max_mb, 1, 10240),
        tts_command=_tts_command(get("TTS_COMMAND")),
        tts_cache_dir=str(Path(get("TTS_CACHE_DIR") or Settings.tts_cache_dir).resolve()),
        recording_purge_at=_clock_time(env, "RECORDING_PURGE_AT", Settings.recording_purge_at),
        recordings_storage=recordings_storage,
        recordings_s3_bucket=s3_bucket,
        recordings_s3_prefix=s3_prefix,
        recordings_s3_endpoint_url=s3_endpoint,
        payment_url_template=links["PAYMENT_URL_TEMPLATE"],
        sbp_payment_url_template=links["SBP_PAYMENT_URL_TEMPLATE"],
        console_secret_key=console_secret_key,
        console_session_hours=_int(
            env, "CONSOLE_SESSION_HOURS", Settings.console_session_hours, 1, 24 * 30
        ),
        console_idle_minutes=_int(
            env, "CONSOLE_IDLE_MINUTES", Settings.console_idle_minutes, 1, 24 * 60
        ),
        console_login_max_failures=_int(
            env, "CONSOLE_LOGIN_MAX_FAILURES", Settings.console_login_max_failures, 1, 100
        ),
        console_lockout_minutes=_int(
            env, "CONSOLE_LOCKOUT_MINUTES", Settings.console_lockout_minutes, 1, 24 * 60
        ),
        console_proxy_count=_int(env, "CONSOLE_PROXY_COUNT", Settings.console_proxy_count, 0, 5),
    )


def _link_template(raw: str | None, name: str, *, production: bool) -> str | None:
    """A payment link template checked by :func:`check_link_template` (https in production)."""
    if raw is None:
        return None
    try:
        return check_link_template(raw, require_https=production)
    except LinkTemplateError as exc:
        raise ConfigError(name, str(exc)) from None


def _tts_command(raw: str | None) -> str:
    """``TTS_COMMAND``: the default when unset, ``""`` for ``off``/``none``; checked to split
    like a shell command line."""
    if raw is None:
        return Settings.tts_command
    if raw.lower() in ("off", "none", "false", "0"):
        return ""
    try:
        if not shlex.split(raw):
            return ""
    except ValueError as exc:
        raise ConfigError("TTS_COMMAND", f"cannot be split into arguments: {exc}") from None
    return raw


def _metrics_token(raw: str | None) -> str | None:
    """``METRICS_TOKEN``: unset, or a secret of at least 16 characters."""
    if raw is not None and len(raw) < 16:
        raise ConfigError("METRICS_TOKEN", "must have at least 16 characters")
    return raw
