"""``contactcenter speech …``: speech tools for operators."""

from __future__ import annotations

import json

import click


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
    from speech.lang import UnknownLanguageError
    from speech.numbers import parse_digits, parse_number, parse_yes_no

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
