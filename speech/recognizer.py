"""Recognition of one utterance with Vosk, with our own end-of-utterance decision.

A :class:`RecognitionSession` owns a ``KaldiRecognizer`` for exactly one utterance: a fresh
one with a grammar (~1 ms to create; reusing one across utterances would mean ``SetGrammar``),
or for free vocabulary one from a :class:`RecognizerPool`, reused after ``FinalResult()``
(~100 ms to create, and slow on its first seconds). It is fed PCM 16-bit audio at the
line's rate (8 kHz), resamples it to the model's rate itself (Vosk only down-samples), and
decides when the utterance ended, frame by frame (the decoder gets audio in batches, and
nothing until speech starts but a short pre-roll: silence while a prompt plays or before the
caller speaks costs no decoding):

- ``silence``: speech was heard and then ``trailing_silence`` seconds (default 0.6) of
  non-speech followed (energy VAD with a noise floor speech cannot raise, see
  :class:`EnergyVad`), or the partial text stayed unchanged for ``stable_partial`` seconds
  while the line stayed noisy;
- ``complete``: the step expects a value of known length (:class:`~speech.grammar.ExpectedDigits`)
  and a partial result holds it complete, followed by ``complete_silence`` seconds (default
  :data:`COMPLETE_VALUE_SILENCE`, 0.15) of non-speech: the caller said the whole account
  number, there is no need to wait for the rest of ``trailing_silence``;
- ``max_length``: ``max_length`` seconds of audio since the caller could talk (the prompt's
  end, or the start of speech over it: a long prompt does not eat into the utterance);
- ``no_input``: no speech within ``no_input_timeout`` seconds after the prompt ended;
- ``dtmf`` / ``hangup`` / ``end_of_audio``: decided by the caller via :meth:`finish`.

Steady line noise can pass for speech until the noise floor is learnt (about a second or
two); such a "speech" whose level never dropped and in which the recognizer heard no words is
dropped as a false start and listening goes on. ``barge_in`` is reported when speech starts
while a prompt plays (``prompt_seconds`` or :meth:`set_prompt_playing`); during the first
``noise_settle`` seconds it waits until the recognizer hears words, so a noisy line does not
cut the prompt.

The model's own endpoint (``AcceptWaveform() == 1``, 0.9–1.3 s after speech) is kept only as
a safety net: a segment it closes is kept and recognition continues. Timing is in audio time,
so results do not depend on how fast audio arrives. A session is not thread-safe; sessions
on different threads share one model safely.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import vosk

from contactcenter.metrics import record_recognition
from speech.audio import (
    AudioClip,
    Resampler,
    Samples,
    decode_wav,
    frames_energy_db,
    pcm16_from_bytes,
    pcm16_to_bytes,
    ulaw_decode_float,
)
from speech.grammar import ExpectedDigits, Grammar, build_grammar
from speech.model_store import LoadedModel

log = logging.getLogger(__name__)

_EMPTY_F: npt.NDArray[np.float64] = np.zeros(0, dtype=np.float64)

EndReason = Literal[
    "silence", "complete", "max_length", "no_input", "dtmf", "hangup", "end_of_audio"
]
EventKind = Literal["speech_start", "barge_in", "partial", "final"]
# (vosk model, sample rate, grammar JSON or None) -> a KaldiRecognizer-like object
RecognizerFactory = Callable[[Any, int, "str | None"], Any]


def vosk_recognizer(model: Any, rate: int, grammar_json: str | None) -> Any:
    """A new ``vosk.KaldiRecognizer`` (with a grammar unless ``grammar_json`` is None)."""
    if grammar_json is None:
        return vosk.KaldiRecognizer(model, rate)
    return vosk.KaldiRecognizer(model, rate, grammar_json)


#: Seconds of silence after the speech that end an utterance early when the decoder's partial
#: result already holds a complete value (:class:`~speech.grammar.ExpectedDigits`): long
#: enough to span the gap between two words said in one breath (a shorter pause followed by
#: more speech never cuts the value), far shorter than ``trailing_silence``.
COMPLETE_VALUE_SILENCE = 0.15


@dataclass(frozen=True)
class EndpointConfig:
    """When an utterance ends (seconds of audio) and what counts as speech."""

    trailing_silence: float = 0.6
    max_length: float = 15.0
    no_input_timeout: float = 5.0
    stable_partial: float = 1.5
    min_speech: float = 0.06
    frame_seconds: float = 0.02
    speech_margin_db: float = 12.0
    noise_rise_db_per_s: float = 20.0  # the most the noise floor rises per second
    noise_window: float = 3.0  # seconds of non-speech frames the floor is learnt from
    noise_percentile: float = 10.0  # the floor: this percentile of those frames' levels
    steady_seconds: float = 0.5  # a level this steady for this long is line noise...
    steady_spread_db: float = 4.0  # ...when it stays within this range (speech never does)
    noise_settle: float = 1.0  # seconds while the floor is being learnt (see barge-in)
    min_speech_db: float = -45.0
    partial_interval: float = 0.2
    batch_seconds: float = 0.1  # audio gathered per decoder call: 20 ms calls cost ~15 % more
    # The decoder is gated by the energy detector: until speech starts it gets nothing, and
    # then the last ``preroll`` seconds before the start (a soft onset, the model's context).
    # Silence while the prompt plays or before the caller speaks costs no decoding. Once a
    # pause after speech has lasted ``postroll`` seconds the decoder is held: if speech
    # resumes it gets the whole pause, if the utterance ends the rest is never decoded (the
    # last word has had its ``postroll`` of silence, which the model's look-ahead needs
    # before the word shows in a partial result). Only with ``endpointing`` (a whole
    # recording is decoded whole).
    gate_decoder: bool = True
    preroll: float = 0.3
    postroll: float = 0.3
    endpointing: bool = True
    # Early end of a complete value (reason ``complete``): with a session's ``expected``
    # length, ``complete_silence`` seconds of non-speech after a partial result that holds
    # the whole value end the utterance; 0 turns it off.
    complete_silence: float = COMPLETE_VALUE_SILENCE

    def __post_init__(self) -> None:
        for name in (
            "trailing_silence",
            "max_length",
            "no_input_timeout",
            "frame_seconds",
            "noise_window",
            "steady_seconds",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"EndpointConfig.{name} must be positive")
        if not 0.0 <= self.noise_percentile <= 100.0:
            raise ValueError("EndpointConfig.noise_percentile must be within 0..100")
        if self.preroll < 0 or self.postroll < 0:
            raise ValueError("EndpointConfig.preroll and postroll must not be negative")
        if self.complete_silence < 0:
            raise ValueError("EndpointConfig.complete_silence must not be negative")


@dataclass(frozen=True)
class WordResult:
    """One recognised word with its confidence (0..1) and time span (seconds)."""

    word: str
    conf: float
    start: float
    end: float


@dataclass(frozen=True)
class RecognitionResult:
    """What was recognised in one utterance and why it ended."""

    text: str
    words: tuple[WordResult, ...]
    confidence: float
    reason: EndReason
    duration: float  # seconds of audio fed
    speech_detected: bool
    grammar: str
    lang: str
    processing_seconds: float = 0.0
    decoded_seconds: float = 0.0  # audio the decoder got (see EndpointConfig.gate_decoder)

    @property
    def real_time_factor(self) -> float:
        """Processing time divided by audio time (0 when no audio was fed)."""
        return self.processing_seconds / self.duration if self.duration > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for logs, the Interaction record and ``--json`` output)."""
        return {
            "text": self.text,
            "confidence": round(self.confidence, 3),
            "reason": self.reason,
            "duration": round(self.duration, 3),
            "decoded": round(self.decoded_seconds, 3),
            "speech_detected": self.speech_detected,
            "grammar": self.grammar,
            "lang": self.lang,
            "words": [
                {"word": w.word, "conf": round(w.conf, 3), "start": w.start, "end": w.end}
                for w in self.words
            ],
        }


@dataclass(frozen=True)
class RecognitionEvent:
    """Something a session noticed: speech started, barge-in, a partial text, the result."""

    kind: EventKind
    text: str = ""
    result: RecognitionResult | None = None


class EnergyVad:
    """Frame-level speech/non-speech decision on the level relative to the noise floor.

    A frame is speech when it is ``speech_margin_db`` above the floor and above
    ``min_speech_db``. The floor starts at −70 dBFS and moves only on evidence of noise,
    never on speech:

    - it follows any quieter frame at once;
    - it rises towards the ``noise_percentile``-th percentile of the last ``noise_window``
      seconds of *non-speech* frames, by at most ``noise_rise_db_per_s`` (frames taken for
      speech, including the louder gaps between words, do not enter that window, so an
      utterance of any length cannot lift the floor to its own level and cut itself short);
    - while the level is *steady* — the last ``steady_seconds`` of frames within
      ``steady_spread_db`` of each other, which speech with its syllables never is — the
      frame is line noise (a hiss or hum, even one loud enough to be taken for speech): the
      floor rises towards it by at most ``noise_rise_db_per_s``. A steady hiss is so learnt
      within a couple of seconds (typically while the prompt plays); the session drops the
      "speech" it caused as a false start.
    """

    def __init__(self, config: EndpointConfig, sample_rate: int) -> None:
        self.config = config
        self.frame_len = max(1, round(sample_rate * config.frame_seconds))
        self.noise_floor_db = -70.0
        self._rise = config.noise_rise_db_per_s * config.frame_seconds
        self._pending: npt.NDArray[np.float64] = _EMPTY_F
        self._full_scale = self.frame_len * 32768.0 * 32768.0
        self._noise: deque[float] = deque(
            maxlen=max(1, round(config.noise_window / config.frame_seconds))
        )
        self._recent: deque[float] = deque(  # the last levels, for steadiness
            maxlen=max(2, round(config.steady_seconds / config.frame_seconds))
        )
        self._noise_target: float | None = None
        self._noise_added = 0

    def frames(self, samples: Samples | npt.NDArray[np.float64]) -> list[tuple[bool, float]]:
        """(is speech, level in dBFS) of every complete frame (a partial one waits for more).

        ``samples`` are PCM 16-bit values, as ``int16`` or ``float64``.
        """
        data = np.asarray(samples, dtype=np.float64)
        levels: list[float]
        if data.size == self.frame_len and not self._pending.size:
            # The usual 20 ms telephone frame: no 2-D machinery for one row.
            levels = [10.0 * math.log10(max(float(data.dot(data)) / self._full_scale, 1e-10))]
        else:
            if self._pending.size:
                data = np.concatenate((self._pending, data))
            count = data.size // self.frame_len
            rest = data.size % self.frame_len
            self._pending = data[count * self.frame_len :] if rest else _EMPTY_F
            if count == 0:
                return []
            whole = data[: count * self.frame_len].reshape(count, self.frame_len)
            levels = frames_energy_db(whole).tolist()
        cfg = self.config
        recent = self._recent
        decisions = []
        floor = self.noise_floor_db
        for level in levels:
            recent.append(level)
            steady = (
                len(recent) == recent.maxlen and max(recent) - min(recent) <= cfg.steady_spread_db
            )
            speech = level > max(cfg.min_speech_db, floor + cfg.speech_margin_db)
            decisions.append((speech, level))
            if not speech:
                self._noise.append(level)
                self._noise_added += 1
            if level < floor:
                floor = level
            elif steady:  # a steady level is line noise, whatever it was taken for
                floor = min(level, floor + self._rise)
            elif not speech:
                goal = self._target()
                if goal > floor:
                    floor = min(goal, floor + self._rise)
        self.noise_floor_db = floor
        return decisions

    def _target(self) -> float:
        """The floor non-speech frames point to: a low percentile of the recent ones
        (recomputed every few frames: it moves slowly and costs a sort)."""
        if self._noise_target is None or self._noise_added >= 10:
            self._noise_added = 0
            self._noise_target = _percentile(self._noise, self.config.noise_percentile)
        return self._noise_target


def _percentile(values: Iterable[float], q: float) -> float:
    """``numpy.percentile(values, q)`` (linear interpolation) for a few hundred floats,
    without numpy's per-call overhead (this runs every few 20 ms frames per stream)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class _Lease:
    """A free-vocabulary recognizer handed to one session at a time, with its usage."""

    recognizer: Any
    key: tuple[int, int, int, int]
    owners: tuple[Any, Any]  # (model, factory): their ids in ``key`` stay theirs
    utterances: int = 0
    audio_seconds: float = 0.0


class RecognizerPool:
    """Idle free-vocabulary recognizers, reused by the next utterance after ``FinalResult()``.

    A free-vocabulary ``KaldiRecognizer`` costs about 100 ms to create and decodes its first
    seconds of audio about twice as slowly (its lazily composed decoding graph is cached as
    it is explored). After ``FinalResult()`` Vosk rebuilds the decoder and the feature
    pipeline on the next audio, so the recognizer serves another utterance with nothing of
    the previous one carried over but that graph cache.

    Memory, measured with the ko model over 600 s of audio in ~1.5 s utterances: a reused
    recognizer levels off at +75 MB (+64 MB after 47 s, +72 MB after 200 s, +75 MB from
    450 s on); a new one per utterance holds +42 MB but decoded 3–4× more slowly side by side;
    retiring the reused one every 60 s or 120 s of audio made no measurable difference
    (+75–81 MB). Growth is per *utterance* (a decoder that never sees ``FinalResult()``
    grows by 150+ MB a minute) and utterances are capped by ``EndpointConfig.max_length``.
    So the limits are a safety net that costs next to nothing: a recognizer is retired after
    ``max_utterances`` utterances or ``max_audio_seconds`` of audio, and at most ``max_idle``
    idle ones are kept per process (``max_idle=0`` disables reuse).

    :meth:`acquire` hands a recognizer to exactly one session (never two at once);
    :meth:`release` takes it back after ``FinalResult()``. Thread-safe; a forked child
    starts empty. Grammar recognizers are never pooled: they cost ~1 ms and reusing one
    would mean ``SetGrammar()``.
    """

    def __init__(
        self, *, max_idle: int = 2, max_utterances: int = 100, max_audio_seconds: float = 300.0
    ) -> None:
        if max_idle < 0 or max_utterances < 1 or max_audio_seconds <= 0:
            raise ValueError("RecognizerPool limits must be positive (max_idle may be 0)")
        self.max_idle = max_idle
        self.max_utterances = max_utterances
        self.max_audio_seconds = max_audio_seconds
        self.created = 0  # recognizers made by this pool
        self.reused = 0  # acquisitions served by an idle recognizer
        self._idle: list[_Lease] = []
        self._pid = os.getpid()
        self._lock = threading.Lock()

    @property
    def idle(self) -> int:
        """Number of idle recognizers kept."""
        with self._lock:
            return len(self._idle)

    def acquire(self, model: Any, rate: int, factory: RecognizerFactory) -> _Lease:
        """A free-vocabulary recognizer for ``model`` at ``rate`` (reused or new)."""
        key = (os.getpid(), id(model), rate, id(factory))
        with self._lock:
            if self._pid != key[0]:  # forked: the parent's recognizers are not ours
                self._idle, self._pid = [], key[0]
            for index in range(len(self._idle) - 1, -1, -1):
                lease = self._idle[index]
                if lease.key == key and lease.owners[0] is model and lease.owners[1] is factory:
                    del self._idle[index]
                    self.reused += 1
                    return lease
            self.created += 1
        return _Lease(factory(model, rate, None), key, (model, factory))

    def release(self, lease: _Lease, audio_seconds: float) -> None:
        """Take ``lease`` back after ``FinalResult()``; it is kept unless worn out or the
        pool is full (then it is dropped and its memory freed)."""
        lease.utterances += 1
        lease.audio_seconds += audio_seconds
        worn = (
            lease.utterances >= self.max_utterances or lease.audio_seconds >= self.max_audio_seconds
        )
        with self._lock:
            if worn or lease.key[0] != self._pid or len(self._idle) >= self.max_idle:
                return
            self._idle.append(lease)

    def clear(self) -> None:
        """Drop every idle recognizer."""
        with self._lock:
            self._idle.clear()


_shared_pool: RecognizerPool | None = None
_shared_pool_lock = threading.Lock()


def shared_recognizer_pool() -> RecognizerPool:
    """The process-wide :class:`RecognizerPool` sessions use unless given another."""
    global _shared_pool  # one pool per process, created on first use
    with _shared_pool_lock:
        if _shared_pool is None:
            _shared_pool = RecognizerPool()
        return _shared_pool


def _parse_words(payload: dict[str, Any], offset: float = 0.0) -> list[WordResult]:
    """The words of a Vosk result; ``offset`` (seconds of audio the decoder did not get
    before its first sample) is added to their times."""
    return [
        WordResult(
            word=str(w.get("word", "")),
            conf=float(w.get("conf", 0.0)),
            start=round(float(w.get("start", 0.0)) + offset, 3),
            end=round(float(w.get("end", 0.0)) + offset, 3),
        )
        for w in payload.get("result", [])
    ]


class RecognitionSession:
    """One utterance: feed audio, get events, read the :class:`RecognitionResult`."""

    def __init__(
        self,
        model: LoadedModel,
        grammar: Grammar,
        *,
        input_rate: int = 8000,
        config: EndpointConfig | None = None,
        prompt_seconds: float = 0.0,
        clock: Callable[[], float] = time.perf_counter,
        recognizer_factory: RecognizerFactory = vosk_recognizer,
        recognizer_pool: RecognizerPool | None = None,
        expected: ExpectedDigits | None = None,
    ) -> None:
        self.model = model
        self.grammar = grammar
        self.config = config or EndpointConfig()
        # The value's expected length: a complete one ends the utterance early.
        self._expected = (
            expected
            if expected is not None
            and grammar.kind == "digits"
            and self.config.endpointing
            and self.config.complete_silence > 0
            else None
        )
        self._complete_flushed = False  # the batch was decoded when this pause reached it
        self.input_rate = input_rate
        self._clock = clock
        rate = model.info.sample_rate
        started = clock()
        self._lease: _Lease | None = None
        if grammar.is_free:  # ~100 ms to create: reuse one after FinalResult()
            pool = recognizer_pool or shared_recognizer_pool()
            self._lease = pool.acquire(model.model, rate, recognizer_factory)
            self._pool: RecognizerPool | None = pool
            self._rec: Any = self._lease.recognizer
        else:  # ~1 ms to create, and no SetGrammar() ever: a new one per utterance
            self._pool = None
            self._rec = recognizer_factory(model.model, rate, grammar.to_json())
        self._rec.SetWords(True)
        self._resampler = Resampler(input_rate, rate)
        self._batch: list[npt.NDArray[np.float64]] = []
        self._batched = 0
        self._batch_size = max(1, round(input_rate * self.config.batch_seconds))
        self._vad = EnergyVad(self.config, input_rate)
        self._gated = self.config.gate_decoder and self.config.endpointing
        self._pausable = self._gated
        self._held: deque[npt.NDArray[np.float64]] = deque()  # the pre-roll while gated
        self._held_samples = 0
        # Speech is detected ``min_speech`` after its first voiced frame: hold that as well.
        self._preroll_samples = round(input_rate * (self.config.preroll + self.config.min_speech))
        self._skipped = 0  # input samples never decoded (before the pre-roll)
        self._paused = False  # a pause after speech: the decoder is held (see postroll)
        self._pause_held: list[npt.NDArray[np.float64]] = []
        self._fresh_audio = False  # decoded since the last partial result
        self._segments: list[WordResult] = []
        self._segment_texts: list[str] = []
        self._processing = clock() - started
        self._fed = 0  # input samples
        self._frames = 0
        self._voiced_frames = 0
        self._silence_run = 0.0
        self._speech_started = False
        self._speech_started_at = 0.0
        self._barge_in_pending = False
        self._barge_in_sent = False
        self._speech_peak_db = -100.0
        self._silence_energy = 0.0  # sum of frame powers of the current silence run
        self._prompt_until = prompt_seconds
        self._prompt_flag = False
        self._listen_start = 0.0
        self._partial = ""
        self._partial_changed_at = 0.0
        self._next_partial = self.config.partial_interval
        self.result: RecognitionResult | None = None

    # ------------------------------------------------------------------ state

    @property
    def audio_seconds(self) -> float:
        """Seconds of audio fed so far."""
        return self._fed / self.input_rate

    @property
    def done(self) -> bool:
        """True once the utterance has ended (a result exists)."""
        return self.result is not None

    @property
    def speech_started(self) -> bool:
        """True once speech has been detected."""
        return self._speech_started

    @property
    def partial_text(self) -> str:
        """The current hypothesis (closed segments plus the running partial)."""
        return self._partial

    @property
    def prompt_playing(self) -> bool:
        """True while a prompt is considered to be playing (speech then is a barge-in)."""
        return self._prompt_flag or self.audio_seconds < self._prompt_until

    def set_prompt_playing(self, playing: bool) -> None:
        """Tell the session a prompt started or stopped (e.g. when a ``mark`` comes back)."""
        now = self.audio_seconds
        if not playing:
            if self._prompt_flag:
                self._listen_start = now
            self._prompt_until = min(self._prompt_until, now)  # the prompt ended early
        self._prompt_flag = playing

    # ------------------------------------------------------------------ feeding

    def feed_ulaw(self, data: bytes) -> list[RecognitionEvent]:
        """Feed G.711 μ-law bytes at the input rate."""
        if self.result is not None or not data:
            return []
        return self._feed(ulaw_decode_float(data))

    def feed_pcm16_bytes(self, data: bytes) -> list[RecognitionEvent]:
        """Feed little-endian PCM 16-bit bytes at the input rate."""
        return self.feed(pcm16_from_bytes(data))

    def feed(self, samples: Samples) -> list[RecognitionEvent]:
        """Feed PCM 16-bit samples at the input rate; returns what happened (maybe a final).

        The energy detector and the end-of-utterance decision see every call at once (no
        added latency); the recognizer gets audio in ``batch_seconds`` batches (fewer decoder
        calls), and whatever is still gathered when the utterance ends is decoded then.
        """
        if self.result is not None or samples.size == 0:
            return []
        return self._feed(np.asarray(samples, dtype=np.float64))

    def _feed(self, samples: npt.NDArray[np.float64]) -> list[RecognitionEvent]:
        # Samples stay float64 (PCM 16-bit values) from decoding to the resampler.
        if self._gated:
            self._hold(samples)
        elif self._paused:
            self._pause_held.append(samples)
        else:
            self._batch.append(samples)
            self._batched += samples.size
            if self._batched >= self._batch_size:
                self._decode(self._take_batch())
        return self._track(samples)

    def _hold(self, samples: npt.NDArray[np.float64]) -> None:
        """Keep at least the last ``preroll`` seconds while the decoder is gated."""
        held = self._held
        held.append(samples)
        self._held_samples += samples.size
        while self._held_samples - held[0].size >= self._preroll_samples:
            dropped = held.popleft()
            self._held_samples -= dropped.size
            self._skipped += dropped.size

    def _open_gate(self) -> None:
        """Speech started: the decoder gets the pre-roll now and everything from here on."""
        self._gated = False
        if self._held:
            preroll = np.concatenate(self._held)
            self._held.clear()
            self._held_samples = 0
            self._decode(preroll)

    def _pause(self) -> None:
        """A pause after speech passed ``postroll``: decode what is gathered, hold the rest."""
        if self._batched:
            self._decode(self._take_batch())
        self._paused = True

    def _resume(self) -> None:
        """Speech again (or a false start): the decoder gets the whole pause, in order."""
        self._paused = False
        if self._pause_held:
            held = np.concatenate(self._pause_held)
            self._pause_held = []
            self._decode(held)

    def _take_batch(self) -> npt.NDArray[np.float64]:
        batch = self._batch[0] if len(self._batch) == 1 else np.concatenate(self._batch)
        self._batch, self._batched = [], 0
        return batch

    def _decode(self, samples: npt.NDArray[np.float64]) -> None:
        started = self._clock()
        converted = self._resampler.process(samples)
        if converted.size and self._rec.AcceptWaveform(pcm16_to_bytes(converted)):
            self._close_segment(json.loads(self._rec.Result()))
        self._processing += self._clock() - started
        self._fresh_audio = True

    def _track(self, samples: npt.NDArray[np.float64]) -> list[RecognitionEvent]:
        events: list[RecognitionEvent] = []
        for speech, level in self._vad.frames(samples):
            self._frames += 1
            frame_start = (self._frames - 1) * self.config.frame_seconds
            was_prompt = self._prompt_flag or frame_start < self._prompt_until
            if speech:
                if self._paused:
                    self._resume()
                self._voiced_frames += 1
                self._silence_run = 0.0
                self._complete_flushed = False
                self._silence_energy = 0.0
                self._speech_peak_db = max(self._speech_peak_db, level)
                if not self._speech_started and (
                    self._voiced_frames * self.config.frame_seconds >= self.config.min_speech
                ):
                    self._speech_started = True
                    self._speech_started_at = frame_start
                    if self._gated:
                        self._open_gate()
                    events.append(RecognitionEvent("speech_start"))
                    if was_prompt and not self._barge_in_sent:
                        if frame_start >= self.config.noise_settle:
                            self._barge_in_sent = True
                            events.append(RecognitionEvent("barge_in"))
                        else:  # the floor may not be learnt yet: wait for words
                            self._barge_in_pending = True
            else:
                self._silence_run += self.config.frame_seconds
                self._silence_energy += 10.0 ** (level / 10.0)
                if (
                    self._speech_started
                    and self._pausable
                    and not self._paused
                    and self._silence_run >= self.config.postroll - 1e-9  # sums of 0.02 s
                ):
                    self._pause()
                if not self._speech_started:
                    self._voiced_frames = 0
                    self._speech_peak_db = -100.0
        self._fed += samples.size
        now = self.audio_seconds
        # Partials only once speech started and when the decoder got audio since the last
        # one (not in a held pause): else they hold nothing new worth a best-path search of
        # the decoder (the most costly call after decoding itself).
        if now >= self._next_partial and self._speech_started and self._fresh_audio:
            self._next_partial = now + self.config.partial_interval
            partial = self._current_partial()
            if partial != self._partial:
                self._partial = partial
                self._partial_changed_at = now
                events.append(RecognitionEvent("partial", text=partial))
        if self._barge_in_pending and self._partial:
            # Energy and words: the caller talks over the prompt (noise alone does not count).
            self._barge_in_pending, self._barge_in_sent = False, True
            events.append(RecognitionEvent("barge_in"))
        reason = self._end_reason(now)
        if reason is None and self._expected is not None:
            reason = self._complete_value(events, now)
        if reason is not None:
            events.append(RecognitionEvent("final", result=self.finish(reason)))
        return events

    def _complete_value(self, events: list[RecognitionEvent], now: float) -> EndReason | None:
        """``complete`` when a pause after speech has lasted ``complete_silence`` and the
        partial result (brought up to date: whatever is gathered for the decoder is decoded
        once, when the pause reaches the window) holds a complete value; else None.

        Searched only when the decoder got audio since the last partial, so a pause costs
        at most a few partial searches, and none once the decoder is held (``postroll``).
        """
        if not self._speech_started or self._silence_run < self.config.complete_silence - 1e-9:
            return None
        if not self._complete_flushed:
            self._complete_flushed = True
            if self._batched and not self._paused:
                self._decode(self._take_batch())
        if not self._fresh_audio:
            return None
        partial = self._current_partial()
        self._next_partial = now + self.config.partial_interval
        if partial != self._partial:
            self._partial = partial
            self._partial_changed_at = now
            events.append(RecognitionEvent("partial", text=partial))
        assert self._expected is not None  # noqa: S101 - the caller checked
        if self._expected.complete_value(self.grammar, partial) is None:
            return None
        return "complete"

    def _current_partial(self) -> str:
        self._fresh_audio = False
        started = self._clock()
        payload = json.loads(self._rec.PartialResult())
        self._processing += self._clock() - started
        running = str(payload.get("partial", ""))
        return " ".join(t for t in [*self._segment_texts, running] if t)

    def _close_segment(self, payload: dict[str, Any]) -> None:
        text = str(payload.get("text", "")).strip()
        if text:
            self._segment_texts.append(text)
            self._segments.extend(_parse_words(payload, self._skipped / self.input_rate))

    def _end_reason(self, now: float) -> EndReason | None:
        cfg = self.config
        if not cfg.endpointing:
            return None
        if now - self._length_origin(now) >= cfg.max_length:
            return "max_length"
        if self._speech_started:
            if self._silence_run >= cfg.trailing_silence:
                if not self._false_start():
                    return "silence"
                # Steady noise taken for speech before the noise floor was learnt, and no
                # words: keep listening (the no-input timer keeps running).
                log.debug("false speech start before %.2f s: steady noise, no words", now)
                self._pausable = False  # decoded whole from here on (rare)
                self._speech_started = False
                self._voiced_frames = 0
                self._speech_peak_db = -100.0
                self._barge_in_pending = False
            elif self._partial and now - self._partial_changed_at >= cfg.stable_partial:
                return "silence"
            else:
                return None
        listening_since = max(self._listen_start, self._prompt_until)
        if not self.prompt_playing and now - listening_since >= cfg.no_input_timeout:
            return "no_input"
        return None

    def _length_origin(self, now: float) -> float:
        """Where ``max_length`` counts from: the prompt's end, or the start of speech while
        it played (``now`` while a prompt plays to a silent caller)."""
        if self.prompt_playing:
            listening_since = now
        else:
            listening_since = max(self._listen_start, self._prompt_until)
        if self._speech_started:
            return min(self._speech_started_at, listening_since)
        return listening_since

    def _false_start(self) -> bool:
        """True when the "speech" was steady line noise: its level did not drop when it
        "ended" (the floor rose to meet it) and the recognizer heard no words."""
        frames = self._silence_run / self.config.frame_seconds
        trailing_db = 10.0 * math.log10(max(self._silence_energy / max(frames, 1.0), 1e-10))
        if self._speech_peak_db - trailing_db >= self.config.speech_margin_db / 2:
            return False  # the level fell: speech really ended
        if self._paused:
            self._resume()  # words need the decoder's look-ahead: give it the whole pause
        return not (self._segment_texts or self._partial or self._current_partial())

    # ------------------------------------------------------------------ ending

    def finish(self, reason: EndReason) -> RecognitionResult:
        """End the utterance now (``FinalResult()``) and return the result.

        Calling it again returns the same result. The recognizer is released afterwards.
        """
        if self.result is not None:
            return self.result
        if self._batched:
            self._decode(self._take_batch())
        started = self._clock()
        self._close_segment(json.loads(self._rec.FinalResult()))
        if self._lease is not None and self._pool is not None:
            self._pool.release(self._lease, self.audio_seconds)  # FinalResult() reset it
            self._lease = None
        self._rec = None  # free a grammar decoder now: memory stays flat over a long call
        self._processing += self._clock() - started
        # Never decoded: the pre-roll buffer while gated, a held pause (after ``postroll``).
        held = (self._held_samples if self._gated else 0) + sum(a.size for a in self._pause_held)
        words = tuple(self._segments)
        confidence = sum(w.conf for w in words) / len(words) if words else 0.0
        self.result = RecognitionResult(
            text=" ".join(self._segment_texts),
            words=words,
            confidence=confidence,
            reason=reason,
            duration=self.audio_seconds,
            speech_detected=self._speech_started,
            grammar=self.grammar.kind,
            lang=self.grammar.lang,
            processing_seconds=self._processing,
            decoded_seconds=(self._fed - self._skipped - held) / self.input_rate,
        )
        log.debug(
            "utterance ended (%s) after %.2f s: %r conf %.2f",
            reason,
            self.audio_seconds,
            self.result.text,
            confidence,
        )
        record_recognition(
            self.grammar.kind, reason, self.result.text, confidence, self.result.real_time_factor
        )
        return self.result


@dataclass
class Recognizer:
    """Makes :class:`RecognitionSession` objects for one model, grammar and configuration."""

    model: LoadedModel
    grammar: Grammar
    config: EndpointConfig = field(default_factory=EndpointConfig)
    input_rate: int = 8000

    def session(self, *, prompt_seconds: float = 0.0) -> RecognitionSession:
        """A new session for the next utterance."""
        return RecognitionSession(
            self.model,
            self.grammar,
            input_rate=self.input_rate,
            config=self.config,
            prompt_seconds=prompt_seconds,
        )


def transcribe(
    model: LoadedModel,
    clip: AudioClip,
    grammar: Grammar,
    *,
    chunk_seconds: float = 0.2,
    endpointing: bool = False,
) -> RecognitionResult:
    """Recognise a whole recording (``endpointing=False``: everything in it, not the first
    utterance). The result's reason is ``end_of_audio`` unless an endpoint fired."""
    config = EndpointConfig(endpointing=endpointing, max_length=max(clip.duration + 1, 1.0))
    session = RecognitionSession(model, grammar, input_rate=clip.sample_rate, config=config)
    step = max(1, int(clip.sample_rate * chunk_seconds))
    for start in range(0, clip.samples.size, step):
        session.feed(clip.samples[start : start + step])
        if session.done:
            break
    return session.finish("end_of_audio")


def recognize_wav(
    model: LoadedModel,
    data: bytes,
    kind: str,
    lang: str = "ru",
    keywords: Sequence[str] = (),
    *,
    max_seconds: float = 120.0,
) -> RecognitionResult:
    """Recognise a whole WAV recording (e.g. a ``<Record>`` fetched from the provider).

    Raises :class:`~speech.errors.AudioError` for unusable audio and
    :class:`~speech.errors.GrammarError` for a grammar the model cannot serve.
    """
    clip = decode_wav(data, max_seconds=max_seconds)
    return transcribe(model, clip, build_grammar(model, kind, lang, keywords))
