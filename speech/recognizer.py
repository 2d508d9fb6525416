"""Recognition of one utterance with Vosk, with our own end-of-utterance decision.

A :class:`RecognitionSession` owns a fresh ``KaldiRecognizer`` for exactly one utterance
(grammar recognizers cost ~1 ms to create; reusing one across utterances would mean
``SetGrammar`` and a decoder that grows for the whole call). It is fed PCM 16-bit audio at
the line's rate (8 kHz), resamples it to the model's rate itself (Vosk only down-samples),
and decides when the utterance ended:

- ``silence``: speech was heard and then ``trailing_silence`` seconds (default 0.6) of
  non-speech followed (energy VAD with an adaptive noise floor), or the partial text stayed
  unchanged for ``stable_partial`` seconds while the line stayed noisy;
- ``max_length``: ``max_length`` seconds of audio;
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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from speech.audio import (
    AudioClip,
    Resampler,
    Samples,
    decode_wav,
    frames_energy_db,
    pcm16_from_bytes,
    pcm16_to_bytes,
    ulaw_decode,
)
from speech.grammar import Grammar, build_grammar
from speech.model_store import LoadedModel

log = logging.getLogger(__name__)

EndReason = Literal["silence", "max_length", "no_input", "dtmf", "hangup", "end_of_audio"]
EventKind = Literal["speech_start", "barge_in", "partial", "final"]
# (vosk model, sample rate, grammar JSON or None) -> a KaldiRecognizer-like object
RecognizerFactory = Callable[[Any, int, "str | None"], Any]


def vosk_recognizer(model: Any, rate: int, grammar_json: str | None) -> Any:
    """A new ``vosk.KaldiRecognizer`` (with a grammar unless ``grammar_json`` is None)."""
    import vosk

    if grammar_json is None:
        return vosk.KaldiRecognizer(model, rate)
    return vosk.KaldiRecognizer(model, rate, grammar_json)


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
    noise_rise_db_per_s: float = 20.0
    noise_settle: float = 1.0  # seconds while the floor is being learnt (see barge-in)
    min_speech_db: float = -45.0
    partial_interval: float = 0.2
    batch_seconds: float = 0.06  # audio gathered before one decoder call (less overhead)
    endpointing: bool = True

    def __post_init__(self) -> None:
        for name in ("trailing_silence", "max_length", "no_input_timeout", "frame_seconds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"EndpointConfig.{name} must be positive")


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

    The noise floor follows any quieter frame at once and rises towards louder ones by at
    most ``noise_rise_db_per_s`` (a minimum tracker): the gaps between words keep it at the
    line's noise, a steady hiss or hum is learnt within a couple of seconds (typically while
    the prompt plays) and then no longer counts as speech, while speech itself cannot push the
    floor up fast enough to hide. A frame is speech when it is ``speech_margin_db`` above the
    floor and above ``min_speech_db``. The floor starts at −70 dBFS.
    """

    def __init__(self, config: EndpointConfig, sample_rate: int) -> None:
        self.config = config
        self.frame_len = max(1, round(sample_rate * config.frame_seconds))
        self.noise_floor_db = -70.0
        self._rise = config.noise_rise_db_per_s * config.frame_seconds
        self._pending = np.zeros(0, dtype=np.int16)

    def frames(self, samples: Samples) -> list[tuple[bool, float]]:
        """(is speech, level in dBFS) of every complete frame (a partial one waits for more)."""
        data = np.concatenate([self._pending, np.asarray(samples, dtype=np.int16)])
        count = data.size // self.frame_len
        self._pending = data[count * self.frame_len :]
        levels = frames_energy_db(data[: count * self.frame_len].reshape(count, self.frame_len))
        decisions = []
        floor = self.noise_floor_db
        for level in levels.tolist():
            speech = level > max(self.config.min_speech_db, floor + self.config.speech_margin_db)
            decisions.append((speech, level))
            floor = level if level < floor else min(level, floor + self._rise)
        self.noise_floor_db = floor
        return decisions


def _parse_words(payload: dict[str, Any]) -> list[WordResult]:
    return [
        WordResult(
            word=str(w.get("word", "")),
            conf=float(w.get("conf", 0.0)),
            start=float(w.get("start", 0.0)),
            end=float(w.get("end", 0.0)),
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
    ) -> None:
        self.model = model
        self.grammar = grammar
        self.config = config or EndpointConfig()
        self.input_rate = input_rate
        self._clock = clock
        rate = model.info.sample_rate
        started = clock()
        self._rec: Any = recognizer_factory(model.model, rate, grammar.to_json())
        self._rec.SetWords(True)
        self._resampler = Resampler(input_rate, rate)
        self._batch: list[Samples] = []
        self._batched = 0
        self._batch_size = max(1, round(input_rate * self.config.batch_seconds))
        self._vad = EnergyVad(self.config, input_rate)
        self._segments: list[WordResult] = []
        self._segment_texts: list[str] = []
        self._processing = clock() - started
        self._fed = 0  # input samples
        self._frames = 0
        self._voiced_frames = 0
        self._silence_run = 0.0
        self._speech_started = False
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
        return self.feed(ulaw_decode(data))

    def feed_pcm16_bytes(self, data: bytes) -> list[RecognitionEvent]:
        """Feed little-endian PCM 16-bit bytes at the input rate."""
        return self.feed(pcm16_from_bytes(data))

    def feed(self, samples: Samples) -> list[RecognitionEvent]:
        """Feed PCM 16-bit samples at the input rate; returns what happened (maybe a final).

        Audio is gathered up to ``batch_seconds`` before it is processed, so events come at
        most that much audio later; their timing (in audio time) is unaffected.
        """
        if self.result is not None or samples.size == 0:
            return []
        self._batch.append(np.asarray(samples, dtype=np.int16))
        self._batched += samples.size
        if self._batched < self._batch_size:
            return []
        return self._process(self._take_batch())

    def _take_batch(self) -> Samples:
        batch = self._batch[0] if len(self._batch) == 1 else np.concatenate(self._batch)
        self._batch, self._batched = [], 0
        return batch

    def _process(self, samples: Samples) -> list[RecognitionEvent]:
        events: list[RecognitionEvent] = []
        started = self._clock()
        converted = self._resampler.process(samples)
        if converted.size and self._rec.AcceptWaveform(pcm16_to_bytes(converted)):
            self._close_segment(json.loads(self._rec.Result()))
        self._processing += self._clock() - started
        for speech, level in self._vad.frames(samples):
            self._frames += 1
            frame_start = (self._frames - 1) * self.config.frame_seconds
            was_prompt = self._prompt_flag or frame_start < self._prompt_until
            if speech:
                self._voiced_frames += 1
                self._silence_run = 0.0
                self._silence_energy = 0.0
                self._speech_peak_db = max(self._speech_peak_db, level)
                if not self._speech_started and (
                    self._voiced_frames * self.config.frame_seconds >= self.config.min_speech
                ):
                    self._speech_started = True
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
                if not self._speech_started:
                    self._voiced_frames = 0
                    self._speech_peak_db = -100.0
        self._fed += samples.size
        now = self.audio_seconds
        if now >= self._next_partial:
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
        if reason is not None:
            events.append(RecognitionEvent("final", result=self.finish(reason)))
        return events

    def _current_partial(self) -> str:
        started = self._clock()
        payload = json.loads(self._rec.PartialResult())
        self._processing += self._clock() - started
        running = str(payload.get("partial", ""))
        return " ".join(t for t in [*self._segment_texts, running] if t)

    def _close_segment(self, payload: dict[str, Any]) -> None:
        text = str(payload.get("text", "")).strip()
        if text:
            self._segment_texts.append(text)
            self._segments.extend(_parse_words(payload))

    def _end_reason(self, now: float) -> EndReason | None:
        cfg = self.config
        if not cfg.endpointing:
            return None
        if now >= cfg.max_length:
            return "max_length"
        if self._speech_started:
            if self._silence_run >= cfg.trailing_silence:
                if not self._false_start():
                    return "silence"
                # Steady noise taken for speech before the noise floor was learnt, and no
                # words: keep listening (the no-input timer keeps running).
                log.debug("false speech start before %.2f s: steady noise, no words", now)
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

    def _false_start(self) -> bool:
        """True when the "speech" was steady line noise: its level did not drop when it
        "ended" (the floor rose to meet it) and the recognizer heard no words."""
        frames = self._silence_run / self.config.frame_seconds
        trailing_db = 10.0 * math.log10(max(self._silence_energy / max(frames, 1.0), 1e-10))
        if self._speech_peak_db - trailing_db >= self.config.speech_margin_db / 2:
            return False  # the level fell: speech really ended
        return not (self._segment_texts or self._partial or self._current_partial())

    # ------------------------------------------------------------------ ending

    def finish(self, reason: EndReason) -> RecognitionResult:
        """End the utterance now (``FinalResult()``) and return the result.

        Calling it again returns the same result. The recognizer is released afterwards.
        """
        if self.result is not None:
            return self.result
        if self._batched:
            pending = self._take_batch()
            converted = self._resampler.process(pending)
            if converted.size and self._rec.AcceptWaveform(pcm16_to_bytes(converted)):
                self._close_segment(json.loads(self._rec.Result()))
            self._fed += pending.size
        started = self._clock()
        self._close_segment(json.loads(self._rec.FinalResult()))
        self._rec = None  # free the decoder now: memory stays flat over a long call
        self._processing += self._clock() - started
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
        )
        log.debug(
            "utterance ended (%s) after %.2f s: %r conf %.2f",
            reason,
            self.audio_seconds,
            self.result.text,
            confidence,
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

    Raises :class:`~speech.audio.AudioError` for unusable audio and
    :class:`~speech.grammar.GrammarError` for a grammar the model cannot serve.
    """
    clip = decode_wav(data, max_seconds=max_seconds)
    return transcribe(model, clip, build_grammar(model, kind, lang, keywords))
