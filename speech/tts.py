"""Text-to-speech of prompts our own server plays over bidirectional Media Streams.

With ``<Connect><Stream>`` Twilio plays nothing of ours: the prompt audio goes over the
websocket as 8 kHz μ-law (:mod:`ivr.prompt_stream`). :class:`TextToSpeech` makes that audio
with a configurable command (``TTS_COMMAND``, default ``espeak-ng -v ru --stdout``): the text
is written to the command's stdin (UTF-8) and a WAV file is read from its stdout (mono PCM
16-bit, μ-law or A-law at any common rate; streaming writers such as espeak-ng, which leave
the WAV sizes unset, are accepted). Results are cached on disk (``TTS_CACHE_DIR``) under a
hash of the command — engine and voice — and the text, so a prompt is synthesised once per
machine, and every later call reads the file.

Without the command (not installed, or ``TTS_COMMAND=off``), :attr:`TextToSpeech.available`
is False and the reason is logged once per process: barge-in steps then fall back to prompts
played by the provider. :func:`wav_to_ulaw` converts any usable WAV (a ``<Play>`` prompt
file) to the line's format.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shlex
import shutil
import struct
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from speech.audio import decode_wav, resample, ulaw_encode
from speech.errors import AudioError, TtsError

__all__ = [
    "DEFAULT_TTS_COMMAND",
    "LINE_RATE",
    "TextToSpeech",
    "text_to_speech",
    "wav_to_ulaw",
]

log = logging.getLogger(__name__)

#: The Debian package ``espeak-ng`` with its Russian voice, WAV on stdout.
DEFAULT_TTS_COMMAND = "espeak-ng -v ru --stdout"
#: The phone line's sample rate (μ-law bytes per second).
LINE_RATE = 8000
#: Rates a TTS engine or a prompt file may use.
SOURCE_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)
#: Longest prompt audio accepted (seconds).
MAX_PROMPT_SECONDS = 120.0
#: Longest text one synthesis takes (characters).
MAX_TEXT_CHARS = 2000


def _complete_wav(data: bytes) -> bytes:
    """``data`` with the RIFF and ``data`` chunk sizes of a streamed WAV set to what is
    there: a writer that cannot seek leaves them unset (0, 0xFFFFFFFF, or espeak-ng's
    0x7FFFF000), which :func:`~speech.audio.decode_wav` would take for a truncated file."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return data
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if chunk == b"data":
            have = len(data) - pos - 8
            if size > have:
                fixed = bytearray(data)
                struct.pack_into("<I", fixed, pos + 4, have)
                struct.pack_into("<I", fixed, 4, len(data) - 8)
                return bytes(fixed)
            return data
        pos += 8 + size + (size & 1)
    return data


def wav_to_ulaw(data: bytes, *, max_seconds: float = MAX_PROMPT_SECONDS) -> bytes:
    """A mono WAV (PCM 16-bit, μ-law or A-law, any common rate) as 8 kHz μ-law bytes.

    Raises :class:`~speech.errors.AudioError` for audio that cannot be used.
    """
    clip = decode_wav(_complete_wav(data), allowed_rates=SOURCE_RATES, max_seconds=max_seconds)
    samples = clip.samples
    if clip.sample_rate != LINE_RATE:
        samples = resample(samples, clip.sample_rate, LINE_RATE)
    return ulaw_encode(samples)


class TextToSpeech:
    """Prompt text → 8 kHz μ-law audio with an external command, cached on disk.

    ``command`` is the argument vector (or a shell-like string) of a program that reads the
    text on stdin and writes a WAV to stdout; an empty one disables text-to-speech.
    Thread-safe: concurrent syntheses of one text may both run; the cache file is replaced
    atomically.
    """

    def __init__(
        self,
        command: Sequence[str] | str,
        cache_dir: str | Path,
        *,
        timeout_s: float = 15.0,
    ) -> None:
        self.command: tuple[str, ...] = tuple(
            shlex.split(command) if isinstance(command, str) else command
        )
        self.cache_dir = Path(cache_dir)
        self.timeout_s = timeout_s
        self._available: bool | None = None
        self._reason = ""
        self._cache_warned = False  # an unwritable cache is said once
        self._lock = threading.Lock()

    @property
    def identity(self) -> str:
        """The engine and voice, as the cache keys and prompt hashes see them."""
        return shlex.join(self.command)

    @property
    def available(self) -> bool:
        """Whether the command can run (checked once; the reason is logged once)."""
        with self._lock:
            if self._available is None:
                if not self.command:
                    self._reason = "text-to-speech is off (TTS_COMMAND is empty or off)"
                elif shutil.which(self.command[0]) is None:
                    self._reason = (
                        f"the text-to-speech command {self.command[0]!r} is not installed "
                        "(TTS_COMMAND; Debian: apt-get install espeak-ng)"
                    )
                self._available = not self._reason
                if self._reason:
                    log.warning(
                        "%s: barge-in steps play their prompts through the provider "
                        "(no barge-in by speech)",
                        self._reason,
                    )
            return self._available

    @property
    def unavailable_reason(self) -> str:
        """Why :attr:`available` is False ("" when it is True)."""
        return "" if self.available else self._reason

    def cache_path(self, text: str) -> Path:
        """Where the audio of ``text`` is cached."""
        digest = hashlib.sha256(f"{self.identity}\n{text}".encode()).hexdigest()
        return self.cache_dir / digest[:2] / f"{digest}.ulaw"

    def synthesize(self, text: str) -> bytes:
        """``text`` spoken as 8 kHz μ-law bytes (from the disk cache when there).

        Raises :class:`~speech.errors.TtsError` when the engine is unavailable or fails.
        """
        text = " ".join(text.split())
        if not text:
            return b""
        if len(text) > MAX_TEXT_CHARS:
            raise TtsError(f"prompt text of {len(text)} characters (at most {MAX_TEXT_CHARS})")
        if not self.available:
            raise TtsError(self._reason)
        path = self.cache_path(text)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("text-to-speech cache %s unreadable: %s", path, exc)
        audio = self._run(text)
        self._store(path, audio)
        return audio

    def _run(self, text: str) -> bytes:
        try:
            done = subprocess.run(  # noqa: S603 - the configured TTS command, no shell
                self.command,
                input=text.encode("utf-8"),
                capture_output=True,
                timeout=self.timeout_s,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise TtsError(f"text-to-speech command {self.command[0]!r} failed: {exc}") from exc
        if done.returncode != 0:
            error = done.stderr.decode("utf-8", "replace").strip()[:200]
            raise TtsError(
                f"text-to-speech command {self.command[0]!r} exited with {done.returncode}"
                + (f": {error}" if error else "")
            )
        try:
            return wav_to_ulaw(done.stdout)
        except AudioError as exc:
            raise TtsError(f"text-to-speech command {self.command[0]!r}: {exc}") from exc

    def _store(self, path: Path, audio: bytes) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tts-")
            with os.fdopen(fd, "wb") as out:
                out.write(audio)
            os.replace(tmp, path)
        except OSError as exc:  # the audio is still served, only not cached
            if not self._cache_warned:
                self._cache_warned = True
                log.warning("text-to-speech cache %s not written: %s", path, exc)


_shared: dict[tuple[str, str, int], TextToSpeech] = {}
_shared_lock = threading.Lock()


def text_to_speech(command: str, cache_dir: str) -> TextToSpeech:
    """This process's :class:`TextToSpeech` for ``command`` and ``cache_dir`` (one per
    pair, so its availability is checked and logged once)."""
    key = (command, cache_dir, os.getpid())
    with _shared_lock:
        found = _shared.get(key)
        if found is None:
            found = _shared[key] = TextToSpeech(command, cache_dir)
        return found
