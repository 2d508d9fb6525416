"""SMS segment counting (GSM-7 160/153, UCS-2 70/67)."""

from __future__ import annotations

import pytest

from telephony.sms import Encoding, count_segments, preview


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", Encoding.GSM7, 0, 1),
        ("a" * 160, Encoding.GSM7, 160, 1),
        ("a" * 161, Encoding.GSM7, 161, 2),
        ("a" * 306, Encoding.GSM7, 306, 2),
        ("a" * 307, Encoding.GSM7, 307, 3),
        ("€" * 80, Encoding.GSM7, 160, 1),  # extension characters take two septets
        ("€" * 81, Encoding.GSM7, 162, 2),
        ("я" * 70, Encoding.UCS2, 70, 1),
        ("я" * 71, Encoding.UCS2, 71, 2),
        ("я" * 134, Encoding.UCS2, 134, 2),
        ("я" * 135, Encoding.UCS2, 135, 3),
        ("a" * 159 + "я", Encoding.UCS2, 160, 3),  # one Cyrillic letter switches everything
        ("😀" * 35, Encoding.UCS2, 70, 1),  # outside the BMP: two code units each
    ],
)
def test_segments(text: str, encoding: Encoding, units: int, segments: int) -> None:
    assert count_segments(text) == (encoding, units, segments)


def test_extension_char_is_not_split_across_parts() -> None:
    # 152 septets then '€' (2 septets) does not fit in a 153-septet part.
    text = "a" * 152 + "€" + "a" * 10
    assert count_segments(text) == (Encoding.GSM7, 164, 2)
    text = "a" * 152 + "€" + "a" * 152
    assert count_segments(text)[2] == 3


def test_surrogate_pair_is_not_split_across_parts() -> None:
    text = "я" * 66 + "😀" + "я" * 66  # 66 units + 2 would exceed 67 in the first part
    enc, units, segments = count_segments(text)
    assert (enc, units) == (Encoding.UCS2, 134)
    assert segments == 3


def test_preview_reports_parts() -> None:
    shown = preview("я" * 100)
    assert (shown.segments, shown.per_segment, shown.characters) == (2, 67, 100)
