"""G.711 codecs, resampling and WAV validation (no model needed)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from speech.audio import (
    Resampler,
    alaw_decode,
    decode_wav,
    encode_wav,
    frame_energy_db,
    pcm16_from_bytes,
    read_wav,
    resample,
    ulaw_decode,
    ulaw_encode,
)
from speech.errors import AudioError

# Values from the ITU-T G.711 tables (as printed by Sun's g711.c and audioop).
ULAW_KNOWN = {0x00: -32124, 0x7F: 0, 0x80: 32124, 0xFF: 0, 0x7E: -8, 0xFE: 8, 0x0F: -16764}
ALAW_KNOWN = {0xD5: 8, 0x55: -8, 0x2A: -32256, 0xAA: 32256, 0x80: 5504}


def sine(freq: float, rate: int, seconds: float = 1.0, amplitude: float = 10000) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def dominant_frequency(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(x.size)))
    return float(np.argmax(spectrum) * rate / x.size)


def test_ulaw_table_matches_g711_values() -> None:
    decoded = ulaw_decode(bytes(ULAW_KNOWN))
    assert decoded.tolist() == list(ULAW_KNOWN.values())


def test_alaw_table_matches_g711_values() -> None:
    decoded = alaw_decode(bytes(ALAW_KNOWN))
    assert decoded.tolist() == list(ALAW_KNOWN.values())


def test_ulaw_encode_known_values() -> None:
    pcm = np.array([0, 1000, -1000, 32767, -32768, 8, -8], dtype=np.int16)
    assert list(ulaw_encode(pcm)) == [0xFF, 0xCE, 0x4E, 0x80, 0x00, 0xFE, 0x7E]


def test_ulaw_every_code_round_trips() -> None:
    codes = bytes(range(256))
    again = ulaw_encode(ulaw_decode(codes))
    # 0x7F and 0xFF both decode to 0 (negative and positive zero); 0 encodes as 0xFF.
    expected = bytes(0xFF if c == 0x7F else c for c in codes)
    assert again == expected


def test_ulaw_quantisation_error_is_small() -> None:
    pcm = sine(440, 8000)
    back = ulaw_decode(ulaw_encode(pcm)).astype(np.int32)
    error = np.abs(back - pcm.astype(np.int32))
    # μ-law step is at most 1/16 of the segment: ≤ ~3 % of the magnitude plus a small floor.
    assert np.all(error <= np.abs(pcm.astype(np.int32)) * 0.035 + 8)


def test_decode_accepts_odd_sizes() -> None:
    assert ulaw_decode(b"\xff" * 37).size == 37
    assert ulaw_decode(b"").size == 0


def test_pcm16_from_odd_bytes_is_an_error() -> None:
    with pytest.raises(AudioError, match="odd number"):
        pcm16_from_bytes(b"\x00\x01\x02")


@pytest.mark.parametrize(("src", "dst"), [(8000, 16000), (16000, 8000), (8000, 22050)])
def test_resampled_sine_keeps_its_frequency(src: int, dst: int) -> None:
    out = resample(sine(440, src), src, dst)
    assert out.size == round(src * dst / src)
    assert dominant_frequency(out, dst) == pytest.approx(440, abs=2)


def test_upsampled_sine_matches_the_ideal_signal() -> None:
    out = resample(sine(1000, 8000), 8000, 16000).astype(np.float64)
    ideal = sine(1000, 16000).astype(np.float64)
    # Away from the edges the interpolation error is tiny (< 0.1 % of full scale).
    assert np.max(np.abs(out[200:-200] - ideal[200:-200])) < 32


def test_downsampling_removes_what_cannot_be_represented() -> None:
    # 5 kHz at 16 kHz is above the 4 kHz Nyquist of 8 kHz: it must not alias to 3 kHz.
    out = resample(sine(5000, 16000), 16000, 8000)
    rms = float(np.sqrt(np.mean(out[100:-100].astype(np.float64) ** 2)))
    assert rms < 10000 / np.sqrt(2) * 0.01  # attenuated by more than 40 dB


def test_streaming_resampler_equals_whole_signal() -> None:
    x = sine(300, 8000, seconds=0.5)
    whole = resample(x, 8000, 16000)
    r = Resampler(8000, 16000)
    sizes = [160, 1, 37, 160, 3, 200]
    pieces, pos, i = [], 0, 0
    while pos < x.size:
        n = sizes[i % len(sizes)]
        pieces.append(r.process(x[pos : pos + n]))
        pos, i = pos + n, i + 1
    streamed = np.concatenate(pieces)
    assert streamed.size == 2 * x.size
    np.testing.assert_array_equal(streamed[r.delay :], whole[: streamed.size - r.delay])


def test_same_rate_is_a_copy() -> None:
    x = sine(440, 8000, 0.1)
    np.testing.assert_array_equal(resample(x, 8000, 8000), x)
    np.testing.assert_array_equal(Resampler(8000, 8000).process(x), x)


def test_invalid_rates() -> None:
    with pytest.raises(AudioError):
        Resampler(0, 16000)


def test_frame_energy() -> None:
    assert frame_energy_db(np.zeros(160, dtype=np.int16)) == -100.0
    full = np.full(160, 32767, dtype=np.int16)
    assert frame_energy_db(full) == pytest.approx(0.0, abs=0.01)
    assert frame_energy_db(sine(440, 8000, 0.02, amplitude=3277)) == pytest.approx(-23, abs=0.5)


# --------------------------------------------------------------------------- WAV


@pytest.mark.parametrize("encoding", ["pcm16", "mulaw"])
def test_wav_round_trip(tmp_path: Path, encoding: str) -> None:
    x = sine(440, 8000, 0.3)
    path = tmp_path / "x.wav"
    path.write_bytes(encode_wav(x, 8000, encoding))
    clip = read_wav(path)
    assert clip.sample_rate == 8000
    assert clip.encoding == encoding
    assert clip.duration == pytest.approx(0.3)
    expected = x if encoding == "pcm16" else ulaw_decode(ulaw_encode(x))
    np.testing.assert_array_equal(clip.samples, expected)


def test_alaw_wav_is_read() -> None:
    codes = bytes([0xD5, 0x55, 0x2A, 0xAA] * 10)
    clip = decode_wav(_wav_header(6, 1, 8000, 8, codes))
    assert clip.encoding == "alaw"
    assert clip.samples[:4].tolist() == [8, -8, -32256, 32256]


def test_wav_written_by_sox_is_read(audio_fixtures: Path) -> None:
    clip = read_wav(audio_fixtures / "ko" / "yes_ne.wav")
    assert (clip.sample_rate, clip.encoding) == (8000, "mulaw")
    assert 0.3 < clip.duration < 3


def _wav_header(tag: int, channels: int, rate: int, bits: int, payload: bytes) -> bytes:
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * channels * bits // 8, 2, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a WAV file"),
        (b"hello world, not audio at all", "not a WAV file"),
        (b"RIFF\x10\x00\x00\x00WAVEjunk\x00\x00\x00\x00", "no format chunk"),
        (_wav_header(1, 2, 8000, 16, b"\x00" * 64), "2 channels"),
        (_wav_header(1, 1, 44100, 16, b"\x00" * 64), "44100 Hz is not supported"),
        (_wav_header(1, 1, 8000, 16, b""), "empty"),
        (_wav_header(3, 1, 8000, 32, b"\x00" * 64), "unsupported WAV encoding"),
        (_wav_header(1, 1, 8000, 16, b"\x00" * 64)[:-40], "truncated"),
    ],
)
def test_bad_wavs_are_clear_errors(data: bytes, message: str) -> None:
    with pytest.raises(AudioError, match=message):
        decode_wav(data)


def test_too_long_is_an_error() -> None:
    data = encode_wav(np.zeros(8000 * 3, dtype=np.int16), 8000)
    with pytest.raises(AudioError, match=r"3\.0 s long; the limit is 2 s"):
        decode_wav(data, max_seconds=2)
    assert decode_wav(data, max_seconds=5).duration == pytest.approx(3)


def test_allowed_rates_are_configurable() -> None:
    data = encode_wav(np.zeros(160, dtype=np.int16), 16000)
    with pytest.raises(AudioError, match="allowed: 8000 Hz"):
        decode_wav(data, allowed_rates=(8000,))


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="cannot read"):
        read_wav(tmp_path / "nope.wav")


def test_error_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"garbage")
    with pytest.raises(AudioError, match=r"corrupt\.wav: not a WAV file"):
        read_wav(bad)
