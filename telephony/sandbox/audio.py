"""Just enough audio for the sandbox: read a WAV, make 8 kHz μ-law for Media Streams.

The speech package owns the full audio toolkit; the sandbox needs only to turn a caller's
WAV fixture (PCM 8/16-bit or G.711 μ-law, any rate, mono or stereo) into the 8 kHz μ-law
byte stream a phone line carries, and to write the WAV a ``<Record>`` produces.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 8000
FRAME_BYTES = 160  # 20 ms of 8 kHz μ-law

_BIAS = 0x84
_CLIP = 32635


class AudioError(ValueError):
    """The file is not a WAV the sandbox can play."""


def _mulaw_decode_table() -> npt.NDArray[np.int16]:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def mulaw_decode(data: bytes) -> npt.NDArray[np.int16]:
    """G.711 μ-law bytes to 16-bit PCM samples."""
    return _mulaw_decode_table()[np.frombuffer(data, dtype=np.uint8)]


def mulaw_encode(samples: npt.NDArray[np.int16]) -> bytes:
    """16-bit PCM samples to G.711 μ-law bytes."""
    pcm = samples.astype(np.int32)
    sign = np.where(pcm < 0, 0x80, 0)
    magnitude = np.minimum(np.where(pcm < 0, (-(pcm >> 2)) << 2, pcm), _CLIP) + _BIAS
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    exponent = np.clip(exponent, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    encoded = ~(sign | (exponent << 4) | mantissa) & 0xFF
    return bytes(encoded.astype(np.uint8).tobytes())


def _chunks(data: bytes) -> dict[bytes, bytes]:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError("not a RIFF/WAVE file")
    chunks: dict[bytes, bytes] = {}
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        chunks.setdefault(cid, data[pos + 8 : pos + 8 + size])
        pos += 8 + size + (size & 1)
    if b"fmt " not in chunks or b"data" not in chunks:
        raise AudioError("WAV file without fmt or data chunk")
    return chunks


def wav_to_pcm8k(data: bytes) -> npt.NDArray[np.int16]:
    """Decode WAV bytes to mono 16-bit PCM at 8 kHz."""
    chunks = _chunks(data)
    fmt = chunks[b"fmt "]
    if len(fmt) < 16:
        raise AudioError("truncated fmt chunk")
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == 0xFFFE and len(fmt) >= 26:  # WAVE_FORMAT_EXTENSIBLE: real tag in the GUID
        tag = struct.unpack("<H", fmt[24:26])[0]
    raw = chunks[b"data"]
    if channels < 1 or rate < 1:
        raise AudioError("WAV with no channels or a zero sample rate")
    if tag == 1 and bits == 16:
        samples = np.frombuffer(raw[: len(raw) - len(raw) % 2], dtype="<i2").astype(np.int16)
    elif tag == 1 and bits == 8:
        samples = ((np.frombuffer(raw, dtype=np.uint8).astype(np.int16) - 128) << 8).astype(
            np.int16
        )
    elif tag == 7 and bits == 8:
        samples = mulaw_decode(raw)
    else:
        raise AudioError(f"unsupported WAV encoding (format {tag}, {bits} bits)")
    usable = len(samples) - len(samples) % channels
    if channels > 1:
        samples = samples[:usable].reshape(-1, channels).mean(axis=1).astype(np.int16)
    if rate != SAMPLE_RATE and len(samples):
        duration = len(samples) / rate
        target = max(1, round(duration * SAMPLE_RATE))
        positions = np.linspace(0, len(samples) - 1, target)
        samples = np.interp(positions, np.arange(len(samples)), samples).astype(np.int16)
    return samples


def read_wav(path: str | Path) -> bytes:
    """Read a WAV file's bytes, with a clear error when it is missing or not a WAV."""
    p = Path(path)
    if not p.is_file():
        raise AudioError(f"audio file not found: {p}")
    data = p.read_bytes()
    _chunks(data)
    return data


def wav_to_mulaw(data: bytes) -> bytes:
    """WAV bytes to the 8 kHz μ-law stream a phone line carries."""
    return mulaw_encode(wav_to_pcm8k(data))


def wav_duration_s(data: bytes) -> float:
    """Duration of WAV bytes in seconds."""
    return len(wav_to_pcm8k(data)) / SAMPLE_RATE


def pcm_to_wav(samples: npt.NDArray[np.int16], rate: int = SAMPLE_RATE) -> bytes:
    """Mono 16-bit PCM samples to WAV bytes."""
    payload = samples.astype("<i2").tobytes()
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(payload),
        b"WAVE",
        b"fmt ",
        16,
        1,
        1,
        rate,
        rate * 2,
        2,
        16,
        b"data",
        len(payload),
    )
    return header + payload


def silence_wav(seconds: float) -> bytes:
    """A WAV of ``seconds`` of 8 kHz silence."""
    return pcm_to_wav(np.zeros(max(0, round(seconds * SAMPLE_RATE)), dtype=np.int16))


def frames(mulaw: bytes) -> list[bytes]:
    """Split μ-law audio into whole 160-byte (20 ms) frames, padding the last with silence."""
    if not mulaw:
        return []
    pad = (-len(mulaw)) % FRAME_BYTES
    data = mulaw + b"\xff" * pad
    return [data[i : i + FRAME_BYTES] for i in range(0, len(data), FRAME_BYTES)]
