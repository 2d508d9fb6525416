"""The prompts of barge-in steps, played by our own server over ``<Connect><Stream>``.

On a bidirectional stream Twilio plays nothing of ours, so the prompt audio goes over the
websocket. Three parts:

- :class:`PromptAudioStore` (the engine's :class:`~ivr.voice_policy.PromptAudio`, used while
  the step's TwiML is rendered): turns the step's prompts into one 8 kHz μ-law clip —
  ``<Say>`` text by text-to-speech (:class:`speech.TextToSpeech`, cached on disk),
  ``<Play>`` of our own URLs (``PUBLIC_BASE_URL/…``, fetched and decoded), ``<Pause>`` as
  silence — and keeps it in Redis under a hash of the prompts, where the websocket (maybe
  another process or machine) loads it. Prompts it cannot play (no text-to-speech, a
  foreign URL, a failure) give None: the step falls back to a one-way stream.
- :class:`PromptPlayer`: sends one stream's clip as whole 160-byte (20 ms) ``media`` frames,
  paced by the line's own clock — a few frames ahead of the caller's audio received
  (Twilio sends 50 frames a second) — then a ``mark``, whose echo tells that the caller
  heard the whole prompt. Stopped on barge-in (the websocket then sends ``clear``).
- :class:`KeyCollector`: the keys pressed on the stream, until the step's keypad entry is
  complete (``keys_max`` keys, the ``keys_end`` key) or the caller paused for ``keys_gap``
  seconds of line time, like the step's ``<Gather>`` would.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from redis import Redis

from contactcenter.config import Settings
from contactcenter.services import Services
from ivr.schema import FlowSet
from ivr.twiml import Pause, Play, Prompt, Say
from ivr.voice_policy import SpeechPolicy, barge_in_steps
from speech import AudioError, TextToSpeech, TtsError, text_to_speech, wav_to_ulaw

log = logging.getLogger(__name__)

__all__ = [
    "FRAME_BYTES",
    "LEAD_FRAMES",
    "KeyCollector",
    "PromptAudioStore",
    "PromptPlayer",
    "barge_in_readiness",
    "load_prompt_audio",
    "with_prompt_audio",
]

#: 20 ms of 8 kHz μ-law: the frame Twilio plays without jitter.
FRAME_BYTES = 160
FRAMES_PER_S = 50
#: Frames sent ahead of the caller's audio received (0.4 s: network jitter; ``clear``
#: drops whatever of it is still queued).
LEAD_FRAMES = 20
#: Longest prompt clip (seconds).
MAX_PROMPT_S = 120.0
#: A ``<Play>`` file fetched from our own server: at most this many bytes, this long.
PLAY_MAX_BYTES = 8 << 20
PLAY_TIMEOUT_S = 5.0
#: μ-law silence.
SILENCE = b"\xff"

Fetch = Callable[[str], bytes]


def _http_get(url: str) -> bytes:
    """GET ``url`` (one of our own, see :meth:`PromptAudioStore.own_url`)."""
    request = urllib.request.Request(url, headers={"User-Agent": "contactcenter-prompts"})  # noqa: S310 - our URL
    with urllib.request.urlopen(request, timeout=PLAY_TIMEOUT_S) as response:  # noqa: S310
        data: bytes = response.read(PLAY_MAX_BYTES + 1)
    if len(data) > PLAY_MAX_BYTES:
        raise AudioError(f"{url} is larger than {PLAY_MAX_BYTES} bytes")
    return data


class PromptAudioStore:
    """The audio clips of barge-in prompts, rendered once and shared through Redis.

    ``tts`` speaks ``<Say>`` text; ``public_base_url`` tells our own ``<Play>`` URLs (the only
    ones fetched); ``fetch`` GETs one (default: urllib, 5 s, 8 MB).
    """

    PREFIX = "ivr:prompt:"
    TTL_S = 3600

    def __init__(
        self,
        redis: Redis,
        tts: TextToSpeech,
        public_base_url: str,
        *,
        fetch: Fetch = _http_get,
    ) -> None:
        self.redis = redis
        self.tts = tts
        self.public_base_url = public_base_url.rstrip("/")
        self.fetch = fetch

    def own_url(self, url: str) -> bool:
        """Whether ``url`` is served by us (under ``PUBLIC_BASE_URL``)."""
        return bool(self.public_base_url) and url.startswith(self.public_base_url + "/")

    def plan(self, prompts: Sequence[Prompt]) -> list[list[Any]] | None:
        """The clip's recipe (JSON-ready), None when some prompt cannot be played by us."""
        items: list[list[Any]] = []
        for prompt in prompts:
            if isinstance(prompt, Say):
                if not self.tts.available:
                    return None
                items.append(["say", " ".join(prompt.text.split()), prompt.voice, prompt.loop])
            elif isinstance(prompt, Play):
                if not self.own_url(prompt.url):
                    log.info("prompt %s is not one of our URLs: played by the provider", prompt.url)
                    return None
                items.append(["play", prompt.url, prompt.loop])
            elif isinstance(prompt, Pause):
                items.append(["pause", prompt.length])
        return items

    def prepare(self, prompts: Sequence[Prompt]) -> str | None:
        """Make the clip of ``prompts`` ready in Redis; its key, or None (see the module)."""
        plan = self.plan(prompts)
        if plan is None:
            return None
        key = hashlib.sha256(
            json.dumps([self.tts.identity, plan], ensure_ascii=False).encode()
        ).hexdigest()
        name = self.PREFIX + key
        if self.redis.expire(name, self.TTL_S):
            return key  # rendered by an earlier call; kept another TTL
        try:
            audio = self.render(plan)
        except (TtsError, AudioError, OSError) as exc:
            log.warning("barge-in prompt not playable by us (%s): the provider plays it", exc)
            return None
        self.redis.set(name, audio, ex=self.TTL_S)
        return key

    def render(self, plan: list[list[Any]]) -> bytes:
        """The clip of a :meth:`plan` as 8 kHz μ-law bytes."""
        parts: list[bytes] = []
        for item in plan:
            if item[0] == "say":
                parts.append(self.tts.synthesize(item[1]) * item[3])
            elif item[0] == "play":
                parts.append(wav_to_ulaw(self.fetch(item[1])) * item[2])
            else:
                parts.append(SILENCE * (8000 * int(item[1])))
        audio = b"".join(parts)
        if len(audio) > MAX_PROMPT_S * 8000:
            raise AudioError(f"prompt of {len(audio) / 8000:.0f} s (at most {MAX_PROMPT_S:g} s)")
        return audio


def load_prompt_audio(redis: Redis, key: str) -> bytes | None:
    """The clip :meth:`PromptAudioStore.prepare` stored under ``key`` (None: expired/unknown)."""
    if not key or len(key) != 64:
        return None
    raw = redis.get(PromptAudioStore.PREFIX + key)
    return bytes(raw) if isinstance(raw, bytes | bytearray) else None


class PromptPlayer:
    """Sends one bidirectional stream's prompt clip, paced by the line (see the module).

    :meth:`pump` returns the messages due now: ``media`` frames up to ``lead`` frames ahead
    of the caller's frames received since the start, then the ``mark``.
    """

    def __init__(
        self, audio: bytes, stream_sid: str, mark: str, *, start_frame: int, lead: int = LEAD_FRAMES
    ) -> None:
        pad = (-len(audio)) % FRAME_BYTES
        data = audio + SILENCE * pad
        self.frames = [data[i : i + FRAME_BYTES] for i in range(0, len(data), FRAME_BYTES)]
        self.stream_sid = stream_sid
        self.mark = mark
        self.start_frame = start_frame
        self.lead = lead
        self.sent = 0
        self.marked = False  # the mark went out after the last frame
        self.heard = False  # its echo came back: the caller heard the whole prompt
        self.stopped = False

    @property
    def seconds(self) -> float:
        """Length of the clip."""
        return len(self.frames) / FRAMES_PER_S

    @property
    def playing(self) -> bool:
        """True until the caller heard it all (mark echo) or it was stopped."""
        return not (self.heard or self.stopped)

    @property
    def sending(self) -> bool:
        """True while frames or the mark are still to be sent."""
        return not self.stopped and not self.marked

    def pump(self, inbound_frames: int) -> list[str]:
        """The messages to send now, ``inbound_frames`` being the caller's frames so far."""
        if not self.sending:
            return []
        allowed = self.lead + max(0, inbound_frames - self.start_frame)
        messages = []
        while self.sent < len(self.frames) and self.sent < allowed:
            payload = base64.b64encode(self.frames[self.sent]).decode("ascii")
            messages.append(
                json.dumps(
                    {"event": "media", "streamSid": self.stream_sid, "media": {"payload": payload}}
                )
            )
            self.sent += 1
        if self.sent == len(self.frames):
            self.marked = True
            messages.append(
                json.dumps(
                    {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": self.mark}}
                )
            )
        return messages

    def overdue(self, inbound_frames: int, grace_frames: int = 10 * FRAMES_PER_S) -> bool:
        """True when the mark should long have come back (a lost echo must not keep the
        capture waiting for the prompt's end for ever)."""
        due = len(self.frames) + self.lead + grace_frames
        return self.playing and self.marked and inbound_frames - self.start_frame > due

    def stop(self) -> bool:
        """Stop sending; True when the caller may still be hearing it (``clear`` is due)."""
        was_playing = self.playing and self.sent > 0
        self.stopped = True
        return was_playing

    def clear_message(self) -> str:
        """The ``clear`` that flushes what Twilio still buffers of it."""
        return json.dumps({"event": "clear", "streamSid": self.stream_sid})


class KeyCollector:
    """Keys pressed on a bidirectional stream until the keypad entry ends (see the module).

    ``max_keys`` (0: no limit), ``end_key`` ("" : none) and ``gap_frames`` (line frames
    without a key that end the entry) come from the step.
    """

    def __init__(self, max_keys: int, end_key: str, gap_frames: int) -> None:
        self.max_keys = max_keys
        self.end_key = end_key
        self.gap_frames = max(1, gap_frames)
        self.digits = ""
        self.last_frame = 0

    @classmethod
    def from_parameters(cls, params: dict[str, str]) -> KeyCollector:
        """From the stream's ``keys_max``, ``keys_end``, ``keys_gap`` (seconds) parameters."""
        try:
            max_keys = max(0, int(params.get("keys_max") or 0))
        except ValueError:
            max_keys = 0
        try:
            gap = float(params.get("keys_gap") or 5)
        except ValueError:
            gap = 5.0
        end = params.get("keys_end") or ""
        return cls(max_keys, end if end in ("#", "*") else "", round(gap * FRAMES_PER_S))

    @property
    def started(self) -> bool:
        """Whether a key was pressed."""
        return bool(self.digits)

    def add(self, digit: str, frame: int) -> bool:
        """Take a key pressed at line frame ``frame``; True when the entry is complete."""
        self.digits += digit
        self.last_frame = frame
        if self.end_key and digit == self.end_key:
            return True
        return bool(self.max_keys) and len(self.digits) >= self.max_keys

    def expired(self, frame: int) -> bool:
        """True when the caller paused long enough after the last key."""
        return self.started and frame - self.last_frame >= self.gap_frames


def with_prompt_audio(policy: SpeechPolicy, services: Services) -> SpeechPolicy:
    """``policy`` with a :class:`PromptAudioStore` over the process's text-to-speech
    (``TTS_COMMAND``, ``TTS_CACHE_DIR``) and ``services``' Redis: barge-in steps can then
    be captured on bidirectional streams."""
    settings = services.settings
    tts = text_to_speech(settings.tts_command, settings.tts_cache_dir)
    store = PromptAudioStore(services.redis, tts, settings.public_base_url)
    return replace(policy, prompt_audio=store)


def barge_in_readiness(flowset: FlowSet, settings: Settings) -> str | None:
    """Why the flows' barge-in steps cannot be served as asked (None: they can, or there
    are none): text-to-speech is off or not installed, so their prompts are played by the
    provider on one-way streams. For start-up logs and ``contactcenter flows check``."""
    steps = barge_in_steps(flowset)
    if not steps:
        return None
    tts = text_to_speech(settings.tts_command, settings.tts_cache_dir)
    if tts.available:
        return None
    shown = ", ".join(steps[:5]) + (f" and {len(steps) - 5} more" if len(steps) > 5 else "")
    return (
        f"{len(steps)} barge-in step(s) ({shown}) run without barge-in: "
        f"{tts.unavailable_reason}; the provider plays their prompts and only keys interrupt them"
    )
