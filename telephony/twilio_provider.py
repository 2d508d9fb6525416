"""The provider over Twilio's REST API, through the official ``twilio`` SDK.

Credentials come only from :class:`contactcenter.config.Settings` (the environment). REST
errors are mapped to :mod:`telephony.errors`; HTTP 429 and 5xx (and network failures) are
retried with bounded, jittered exponential backoff, never sooner than a ``Retry-After`` the
answer gives (one longer than ``backoff_max_s`` is not slept through in a worker: the error is
raised). Every request has a timeout (``timeout_s``). Tests inject ``base_url`` (the
sandbox's REST emulation on loopback, or a fake server), ``sleep`` and ``rng``.

A request that timed out after it was sent may have been carried out: a create (a call, an
SMS, a recording) is then not repeated here but raised as
:class:`~telephony.errors.ProviderUnavailable`, and the campaign's attempt row settles it
(:mod:`campaigns.reconcile`: the call's callbacks adopt it, or it is declared not placed).
Retrying a 5xx on ``calls.create`` can, in the rare case Twilio created the call before
failing, place a second call; campaign jobs guard against that with their attempt rows.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlparse

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client

from contactcenter.config import Settings
from telephony.base import (
    CallInfo,
    CallStatusUpdate,
    MachineDetection,
    MessageInfo,
    RecordingChannels,
    RecordingInfo,
    check_call_arguments,
    check_update_arguments,
)
from telephony.errors import ProviderUnavailable, TelephonyError, error_for
from telephony.status import DEFAULT_STATUS_EVENTS

log = logging.getLogger(__name__)

T = TypeVar("T")

TWILIO_API_BASE = "https://api.twilio.com"
_RECORDING_SID = re.compile(r"^RE[0-9a-fA-F]{32}$")


class RetryAfterHttpClient(TwilioHttpClient):
    """The SDK's HTTP client, remembering (per thread) the ``Retry-After`` of the last answer."""

    def __init__(self, *, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self._local = threading.local()

    def request(self, *args: Any, **kwargs: Any) -> TwilioResponse:
        """Send the request (see ``TwilioHttpClient.request``), noting its ``Retry-After``."""
        self._local.retry_after = None
        response = super().request(*args, **kwargs)
        self._local.retry_after = retry_after_seconds((response.headers or {}).get("Retry-After"))
        return response

    @property
    def retry_after(self) -> float | None:
        """Seconds the last answer of this thread asked to wait (``Retry-After``), or None."""
        value: float | None = getattr(self._local, "retry_after", None)
        return value


def retry_after_seconds(raw: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (delay-seconds form; an HTTP date is ignored)."""
    try:
        seconds = float((raw or "").strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


class TwilioProvider:
    """:class:`telephony.base.TelephonyProvider` over Twilio's REST API."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        base_url: str | None = None,
        http_client: Any = None,
        session: requests.Session | None = None,
        max_retries: int = 4,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        timeout_s: float = 15.0,
    ) -> None:
        if not account_sid or not auth_token:
            raise ValueError("a Twilio account SID and auth token are required")
        if max_retries < 0:
            raise ValueError("max_retries must not be negative")
        self.account_sid = account_sid
        self._auth = (account_sid, auth_token)
        self._http_client = http_client
        self.timeout_s = timeout_s
        self._client: Client | None = None
        self.base_url = (base_url or TWILIO_API_BASE).rstrip("/")
        self._session = session
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> TwilioProvider:
        """Build from ``TWILIO_ACCOUNT_SID`` / ``TWILIO_AUTH_TOKEN`` settings."""
        if not settings.twilio_account_sid or not settings.twilio_auth_token:
            raise ValueError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are required")
        return cls(settings.twilio_account_sid, settings.twilio_auth_token, **kwargs)

    @property
    def client(self) -> Client:
        """The SDK client, built on first use (never at import time)."""
        if self._client is None:
            if self._http_client is None:
                self._http_client = RetryAfterHttpClient(timeout=self.timeout_s)
            client = Client(*self._auth, http_client=self._http_client)
            client.api.base_url = self.base_url
            self._client = client
        return self._client

    # -- retries ----------------------------------------------------------------------

    def backoff_delay(self, attempt: int) -> float:
        """Full-jitter exponential delay before retry number ``attempt`` (1-based)."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * (2 ** (attempt - 1)))
        return self._rng.uniform(0, ceiling)

    def _retry_after(self) -> float | None:
        client = self._http_client
        return client.retry_after if isinstance(client, RetryAfterHttpClient) else None

    def _call(self, what: str, fn: Callable[[], T], *, creates: bool = False) -> T:
        """Run ``fn`` with retries; ``creates``: a timed-out request is never repeated (it
        may have been carried out), see the module docstring."""
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                return fn()
            except TwilioRestException as exc:
                error = error_for(exc.status, exc.code, f"{what}: {exc.msg}")
                retry_after = self._retry_after()
            except (requests.ConnectTimeout, requests.ConnectionError) as exc:
                # Checked before Timeout: a refused or timed-out *connection* sent nothing.
                error = ProviderUnavailable(f"{what}: {exc}")
            except requests.Timeout as exc:
                error = ProviderUnavailable(f"{what}: no answer in {self.timeout_s}s ({exc})")
                if creates:
                    log.warning("twilio %s timed out; not repeated (it may have been done)", what)
                    raise error from exc
            if not error.retryable or attempt >= self.max_retries:
                raise error
            if retry_after is not None and retry_after > self.backoff_max_s:
                log.warning(
                    "twilio %s failed (status=%s); Retry-After %.0fs is too long to wait here",
                    what,
                    error.status,
                    retry_after,
                )
                raise error
            attempt += 1
            delay = max(self.backoff_delay(attempt), retry_after or 0.0)
            log.warning(
                "twilio %s failed (status=%s code=%s); retry %d/%d in %.2fs",
                what,
                error.status,
                error.code,
                attempt,
                self.max_retries,
                delay,
            )
            self._sleep(delay)

    # -- the interface ----------------------------------------------------------------

    def place_call(
        self,
        to: str,
        from_: str,
        url: str,
        *,
        status_callback: str | None,
        status_events: Sequence[str] = DEFAULT_STATUS_EVENTS,
        machine_detection: MachineDetection | None = None,
        async_amd: bool = True,
        amd_callback: str | None = None,
        timeout_s: int = 30,
        time_limit_s: int | None = None,
    ) -> CallInfo:
        """Create an outbound call (``POST /Calls.json``); see the interface."""
        events = check_call_arguments(status_events, machine_detection, timeout_s, time_limit_s)
        kwargs: dict[str, Any] = {"to": to, "from_": from_, "url": url, "timeout": timeout_s}
        if status_callback:
            kwargs["status_callback"] = status_callback
            kwargs["status_callback_event"] = list(events)
            kwargs["status_callback_method"] = "POST"
        if machine_detection:
            kwargs["machine_detection"] = machine_detection
            kwargs["async_amd"] = "true" if async_amd else "false"
            if amd_callback:
                kwargs["async_amd_status_callback"] = amd_callback
                kwargs["async_amd_status_callback_method"] = "POST"
        if time_limit_s is not None:
            kwargs["time_limit"] = time_limit_s
        call = self._call("create call", lambda: self.client.calls.create(**kwargs), creates=True)
        return CallInfo(sid=call.sid, status=str(call.status))

    def update_call(
        self,
        sid: str,
        *,
        url: str | None = None,
        twiml: str | None = None,
        status: CallStatusUpdate | None = None,
    ) -> CallInfo:
        """Redirect or end a live call (``POST /Calls/{sid}.json``)."""
        check_update_arguments(url, twiml, status)
        kwargs: dict[str, Any] = {}
        if url:
            kwargs.update(url=url, method="POST")
        if twiml:
            kwargs["twiml"] = twiml
        if status:
            kwargs["status"] = status
        call = self._call("update call", lambda: self.client.calls(sid).update(**kwargs))
        return CallInfo(sid=call.sid, status=str(call.status))

    def fetch_call(self, sid: str) -> CallInfo:
        """A call's status now (``GET /Calls/{sid}.json``); see the interface."""
        call = self._call("fetch call", lambda: self.client.calls(sid).fetch())
        return CallInfo(
            sid=call.sid, status=str(call.status), duration_s=_int_or_none(call.duration)
        )

    def fetch_message(self, sid: str) -> MessageInfo:
        """A message's status now (``GET /Messages/{sid}.json``); see the interface."""
        msg = self._call("fetch sms", lambda: self.client.messages(sid).fetch())
        return MessageInfo(sid=msg.sid, status=str(msg.status), segments=int(msg.num_segments or 1))

    def send_sms(
        self, to: str, from_: str, body: str, *, status_callback: str | None
    ) -> MessageInfo:
        """Send an SMS (``POST /Messages.json``)."""
        if not body:
            raise ValueError("SMS body must not be empty")
        kwargs: dict[str, Any] = {"to": to, "from_": from_, "body": body}
        if status_callback:
            kwargs["status_callback"] = status_callback
        msg = self._call("send sms", lambda: self.client.messages.create(**kwargs), creates=True)
        return MessageInfo(sid=msg.sid, status=str(msg.status), segments=int(msg.num_segments or 1))

    def recording_wav_url(self, recording_url_or_sid: str) -> str:
        """The ``.wav`` URL of a recording given its SID or its ``RecordingUrl``.

        Only URLs on the configured API host are accepted, so our credentials are never
        sent anywhere else.
        """
        value = recording_url_or_sid.strip()
        if _RECORDING_SID.match(value):
            return f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Recordings/{value}.wav"
        parsed, api = urlparse(value), urlparse(self.base_url)
        if (parsed.scheme, parsed.netloc) != (api.scheme, api.netloc):
            raise ValueError(f"not a recording SID or a recording URL of {self.base_url}")
        path = re.sub(r"\.(json|mp3|wav)$", "", parsed.path)
        if not re.search(r"/Recordings/RE[0-9a-fA-F]{32}$", path):
            raise ValueError("not a recording URL (expected …/Recordings/RE…)")
        return f"{parsed.scheme}://{parsed.netloc}{path}.wav"

    def fetch_recording(self, recording_url_or_sid: str) -> bytes:
        """Download a recording as WAV with HTTP basic auth."""
        url = self.recording_wav_url(recording_url_or_sid)
        session = self._session or requests.Session()

        def get() -> bytes:
            resp = session.get(url, auth=self._auth, timeout=self.timeout_s)
            if resp.status_code >= 400:
                code: int | None = None
                try:
                    code = int(resp.json().get("code"))
                except (ValueError, TypeError, AttributeError):
                    code = None
                raise TwilioRestException(resp.status_code, url, "recording fetch failed", code)
            return resp.content

        content = self._call("fetch recording", get)
        if not content.startswith(b"RIFF"):
            raise TelephonyError("recording is not a WAV file")
        return content

    def start_recording(
        self,
        call_sid: str,
        *,
        status_callback: str | None,
        channels: RecordingChannels = "dual",
    ) -> RecordingInfo:
        """Record a call in progress (``POST /Calls/{sid}/Recordings.json``); the callback
        hears ``completed`` or ``absent`` (nothing recorded). A call not in progress yet is
        refused with 21220 (:class:`~telephony.errors.CallNotFound`)."""
        if channels not in ("mono", "dual"):
            raise ValueError("channels must be 'mono' or 'dual'")
        kwargs: dict[str, Any] = {"recording_channels": channels}
        if status_callback:
            kwargs["recording_status_callback"] = status_callback
            kwargs["recording_status_callback_event"] = ["completed", "absent"]
            kwargs["recording_status_callback_method"] = "POST"
        rec = self._call(
            "start recording",
            lambda: self.client.calls(call_sid).recordings.create(**kwargs),
            creates=True,
        )
        return RecordingInfo(sid=rec.sid, call_sid=call_sid, status=str(rec.status))


def _int_or_none(raw: object) -> int | None:
    """An integer field of a Twilio resource (sent as a string, absent while a call lives)."""
    try:
        return int(str(raw)) if raw not in (None, "") else None
    except ValueError:
        return None
