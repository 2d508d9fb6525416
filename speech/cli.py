"""``contactcenter speech …``: speech tools for operators.

``parse`` shows how text is understood; ``transcribe`` recognises one WAV file; ``eval``
measures the model on a folder of labelled recordings (digit accuracy, word error rate,
real-time factor) in the format of ``tests/fixtures/audio/<lang>/manifest.json`` or a
``manifest.csv`` (columns ``file,expected`` and optionally ``text,kind,lang``).
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from speech.audio import read_wav
from speech.errors import (
    AudioError,
    DatasetError,
    GrammarError,
    SpeechUnavailable,
    UnknownLanguageError,
)
from speech.grammar import Grammar, build_grammar, parse_value
from speech.model_store import LoadedModel, get_model
from speech.numbers import parse_digits, parse_number, parse_yes_no
from speech.recognizer import transcribe

GRAMMAR_CHOICES = ("digits", "number", "yes_no", "free")
EVAL_KINDS = (*GRAMMAR_CHOICES, "menu")

_model_option = click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Model directory (default: VOSK_MODEL_PATH, then models/).",
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")


@click.group()
def speech() -> None:
    """Speech recognition tools: number understanding, models, transcription."""


@speech.command("parse")
@click.option("--lang", default="ru", show_default=True, help="Language pack (ru, en).")
@click.argument("text", nargs=-1, required=True)
def parse(lang: str, text: tuple[str, ...]) -> None:
    """Show how recognised TEXT is understood: digits, number and yes/no, one JSON value each.

    Example: contactcenter speech parse --lang ru "ноль ноль сорок пять"
    """
    phrase = " ".join(text)
    try:
        digits = parse_digits(phrase, lang)
        number = parse_number(phrase, lang)
        answer = parse_yes_no(phrase, lang)
    except UnknownLanguageError as exc:
        raise click.BadParameter(str(exc), param_hint="--lang") from None
    click.echo(f"digits: {json.dumps(digits, ensure_ascii=False)}")
    click.echo(f"number: {json.dumps(None if number is None else str(number))}")
    click.echo(f"yes_no: {json.dumps(answer)}")


def _load_model_or_exit(lang: str, model_path: Path | None) -> LoadedModel:
    try:
        return get_model(lang, model_path=model_path)
    except SpeechUnavailable as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def _value_text(value: str | Decimal | bool | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _understood(kind: str, text: str, lang: str, keywords: Sequence[str] = ()) -> str | None:
    """The value of ``text`` for grammar ``kind`` (None if none or no language pack).

    For a menu it is the first keyword heard.
    """
    tokens = [t for t in text.split() if t != "[unk]"]
    if kind == "menu":
        return next((t for t in tokens if t in keywords), None)
    words = " ".join(tokens)
    try:
        return _value_text(parse_value(kind, words, lang))
    except UnknownLanguageError:
        return None


@speech.command("transcribe")
@click.argument("wav", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--grammar",
    "kind",
    type=click.Choice(GRAMMAR_CHOICES),
    default="digits",
    show_default=True,
    help="Restrict recognition to the words of a step kind, or free vocabulary.",
)
@click.option("--lang", default="ru", show_default=True, help="Language of the speech.")
@_model_option
@_json_option
def transcribe_command(
    wav: Path, kind: str, lang: str, model_path: Path | None, as_json: bool
) -> None:
    """Recognise the speech in WAV (8 or 16 kHz mono, PCM 16-bit, μ-law or A-law).

    Prints the text, its confidence, the value understood and the real-time factor.
    Exit status: 2 for unusable audio, 1 when no model is available.
    """
    try:
        clip = read_wav(wav)
    except AudioError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    model = _load_model_or_exit(lang, model_path)
    try:
        grammar = build_grammar(model, kind, lang)
    except GrammarError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    started = time.perf_counter()
    result = transcribe(model, clip, grammar)
    elapsed = time.perf_counter() - started
    value = _understood(kind, result.text, lang)
    rtf = elapsed / clip.duration
    if as_json:
        payload = result.to_dict()
        payload.update(
            file=str(wav),
            model=model.info.name,
            value=value,
            real_time_factor=round(rtf, 4),
            missing_words=list(grammar.missing),
        )
        click.echo(json.dumps(payload, ensure_ascii=False))
        return
    click.echo(f"model:      {model.info.name} ({model.info.source})")
    click.echo(f"audio:      {clip.duration:.2f} s, {clip.sample_rate} Hz, {clip.encoding}")
    click.echo(f"text:       {result.text}")
    click.echo(f"confidence: {result.confidence:.2f}")
    click.echo(f"value:      {value if value is not None else '-'}")
    click.echo(f"rtf:        {rtf:.3f}")
    if grammar.missing:
        click.echo(f"warning: the model lacks {', '.join(grammar.missing)}", err=True)


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class EvalItem:
    """One labelled recording of a dataset."""

    file: str
    expected: str | None
    text: str | None
    kind: str
    lang: str
    keywords: tuple[str, ...] = ()


@dataclass
class ItemOutcome:
    """What the recognizer made of one item."""

    item: EvalItem
    heard: str = ""
    value: str | None = None
    correct: bool | None = None
    confidence: float = 0.0
    duration: float = 0.0
    processing: float = 0.0
    error: str | None = None


@dataclass
class EvalReport:
    """Totals over a dataset."""

    outcomes: list[ItemOutcome] = field(default_factory=list)
    digit_errors: int = 0
    digit_total: int = 0
    word_errors: int = 0
    word_total: int = 0

    @property
    def digit_accuracy(self) -> float | None:
        """1 − digit edit distance / expected digits, over digit items (None if none)."""
        if self.digit_total == 0:
            return None
        return max(0.0, 1.0 - self.digit_errors / self.digit_total)

    @property
    def word_error_rate(self) -> float | None:
        """Word edit distance / reference words over items with a text (None if none)."""
        return self.word_errors / self.word_total if self.word_total else None

    @property
    def value_accuracy(self) -> float | None:
        """Share of items with an expected value whose understood value equals it."""
        judged = [o for o in self.outcomes if o.correct is not None]
        return sum(1 for o in judged if o.correct) / len(judged) if judged else None

    @property
    def real_time_factor(self) -> float | None:
        """Total processing time / total audio time."""
        audio = sum(o.duration for o in self.outcomes)
        return sum(o.processing for o in self.outcomes) / audio if audio else None

    @property
    def errors(self) -> list[ItemOutcome]:
        """Items that could not be evaluated (unreadable audio, unknown grammar …)."""
        return [o for o in self.outcomes if o.error is not None]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary with per-item details."""
        return {
            "items": len(self.outcomes),
            "digit_accuracy": self.digit_accuracy,
            "word_error_rate": self.word_error_rate,
            "value_accuracy": self.value_accuracy,
            "real_time_factor": self.real_time_factor,
            "errors": len(self.errors),
            "details": [
                {
                    "file": o.item.file,
                    "kind": o.item.kind,
                    "expected": o.item.expected,
                    "heard": o.heard,
                    "value": o.value,
                    "correct": o.correct,
                    "confidence": round(o.confidence, 3),
                    "error": o.error,
                }
                for o in self.outcomes
            ],
        }


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance between two token sequences."""
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


def load_dataset(directory: Path, default_lang: str = "ru") -> list[EvalItem]:
    """Items of ``directory`` from its ``manifest.json`` or ``manifest.csv``."""
    json_path, csv_path = directory / "manifest.json", directory / "manifest.csv"
    rows: list[Any]
    if json_path.is_file():
        try:
            data = json.loads(json_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise DatasetError(f"{json_path}: not valid JSON ({exc})") from None
        if isinstance(data, dict):
            default_lang = str(data.get("language") or default_lang)
            data = data.get("items")
        if not isinstance(data, list):
            raise DatasetError(f"{json_path}: expected a list of items under 'items'")
        rows = data
    elif csv_path.is_file():
        try:
            with csv_path.open(encoding="utf-8", newline="") as fh:
                rows = list(csv.DictReader(fh))
        except (OSError, csv.Error, UnicodeDecodeError) as exc:
            raise DatasetError(f"{csv_path}: unreadable ({exc})") from None
    else:
        raise DatasetError(f"{directory}: no manifest.json or manifest.csv")
    items = []
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not row.get("file"):
            raise DatasetError(f"item {number} of the manifest has no 'file'")
        expected = row.get("expected")
        kind = str(row.get("kind") or "digits")
        if kind not in EVAL_KINDS:
            raise DatasetError(f"item {number}: unknown kind {kind!r}")
        raw_keywords = row.get("keywords") or ()
        if isinstance(raw_keywords, str):
            raw_keywords = raw_keywords.split(",")
        keywords = tuple(str(k).strip() for k in raw_keywords if str(k).strip())
        if kind == "menu" and not keywords:
            raise DatasetError(f"item {number}: a menu item needs 'keywords'")
        items.append(
            EvalItem(
                file=str(row["file"]),
                expected=None if expected in (None, "") else str(expected),
                text=str(row["text"]) if row.get("text") else None,
                kind=kind,
                lang=str(row.get("lang") or default_lang),
                keywords=keywords,
            )
        )
    if not items:
        raise DatasetError(f"{directory}: the manifest lists no recordings")
    return items


def evaluate(model: LoadedModel, directory: Path, items: Sequence[EvalItem]) -> EvalReport:
    """Recognise every item with its kind's grammar and compare with its labels."""
    report = EvalReport()
    grammars: dict[tuple[str, str, tuple[str, ...]], Grammar] = {}
    for item in items:
        outcome = ItemOutcome(item=item)
        report.outcomes.append(outcome)
        try:
            clip = read_wav(directory / item.file)
            key = (item.kind, item.lang, item.keywords)
            if key not in grammars:
                grammars[key] = build_grammar(model, item.kind, item.lang, item.keywords)
            started = time.perf_counter()
            result = transcribe(model, clip, grammars[key])
            outcome.processing = time.perf_counter() - started
        except (AudioError, GrammarError) as exc:
            outcome.error = str(exc)
            continue
        outcome.heard = result.text
        outcome.confidence = result.confidence
        outcome.duration = clip.duration
        outcome.value = _understood(item.kind, result.text, item.lang, item.keywords)
        if item.expected is not None:
            outcome.correct = outcome.value == item.expected
            if item.kind == "digits":
                got = outcome.value or ""
                report.digit_errors += edit_distance(list(item.expected), list(got))
                report.digit_total += len(item.expected)
        if item.text:
            ref = item.text.lower().split()
            hyp = [t.lower() for t in result.text.split() if t != "[unk]"]
            report.word_errors += edit_distance(ref, hyp)
            report.word_total += len(ref)
    return report


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


@speech.command("eval")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--lang", default="ru", show_default=True, help="Default language of items.")
@_model_option
@_json_option
def eval_command(directory: Path, lang: str, model_path: Path | None, as_json: bool) -> None:
    """Measure the model on DIRECTORY: digit accuracy, word error rate, real-time factor.

    Exit status: 2 when the manifest or a recording is unusable, 1 when no model exists.
    """
    try:
        items = load_dataset(directory, lang)
    except DatasetError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    model = _load_model_or_exit(items[0].lang, model_path)
    report = evaluate(model, directory, items)
    if as_json:
        payload = report.to_dict()
        payload["model"] = model.info.name
        click.echo(json.dumps(payload, ensure_ascii=False))
    else:
        click.echo(f"model: {model.info.name} ({model.info.source})")
        for o in report.outcomes:
            if o.error is not None:
                click.echo(f"  {o.item.file}: ERROR {o.error}")
                continue
            mark = {True: "ok ", False: "BAD", None: "   "}[o.correct]
            click.echo(
                f"  {mark} {o.item.file}: heard {o.heard!r} → {o.value or '-'}"
                f" (expected {o.item.expected or '-'}, conf {o.confidence:.2f})"
            )
        click.echo(f"items:            {len(report.outcomes)} ({len(report.errors)} errors)")
        click.echo(f"digit accuracy:   {_percent(report.digit_accuracy)}")
        click.echo(f"value accuracy:   {_percent(report.value_accuracy)}")
        click.echo(f"word error rate:  {_percent(report.word_error_rate)}")
        rtf = report.real_time_factor
        click.echo(f"real-time factor: {'-' if rtf is None else f'{rtf:.3f}'}")
    if report.errors:
        sys.exit(2)
