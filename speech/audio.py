"""Audio as a phone line delivers it: G.711 codecs, resampling, WAV reading, frame energy.

Everything works on numpy ``int16`` sample arrays (PCM 16-bit, mono). The G.711 tables are
computed once on first use from the ITU-T G.711 bit layout, not taken from the deprecated
``audioop`` module. Bad input raises :class:`AudioError` with a message meant for a person.
"""

from __future__ import annotations

import functools
import io
import math
import struct
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from speech.errors import AudioError

Samples = npt.NDArray[np.int16]

DEFAULT_ALLOWED_RATES: Final = (8000, 16000)
DEFAULT_MAX_SECONDS: Final = 120.0

_WAVE_FORMAT_PCM: Final = 0x0001
_WAVE_FORMAT_ALAW: Final = 0x0006
_WAVE_FORMAT_MULAW: Final = 0x0007
_WAVE_FORMAT_EXTENSIBLE: Final = 0xFFFE

_ULAW_BIAS: Final = 0x84


# --------------------------------------------------------------------------- G.711


@cache
def _ulaw_table() -> Samples:
    codes = np.arange(256, dtype=np.int32)
    u = ~codes & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


@cache
def _alaw_table() -> Samples:
    codes = np.arange(256, dtype=np.int32)
    a = codes ^ 0x55
    sign = a & 0x80
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = np.where(
        exponent == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0),
    )
    # In A-law a set sign bit means a positive sample.
    return np.where(sign != 0, magnitude, -magnitude).astype(np.int16)


@cache
def _ulaw_encode_table() -> npt.NDArray[np.uint8]:
    """μ-law code for every 16-bit sample value, indexed by ``sample + 32768``.

    Follows the reference G.711 encoder on 14-bit magnitudes (as Sun's ``g711.c``).
    """
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(pcm), 8159) + (_ULAW_BIAS >> 2)
    seg_ends = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
    segment = np.searchsorted(seg_ends, magnitude, side="left")
    code = (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)  # beyond the last segment: clip
    return (code ^ mask).astype(np.uint8)


def ulaw_decode(data: bytes) -> Samples:
    """Decode G.711 μ-law bytes (one byte per sample) to PCM 16-bit samples."""
    return _ulaw_table()[np.frombuffer(data, dtype=np.uint8)]


@cache
def _ulaw_float_table() -> npt.NDArray[np.float64]:
    table = _ulaw_table().astype(np.float64)
    table.setflags(write=False)
    return table


def ulaw_decode_float(data: bytes) -> npt.NDArray[np.float64]:
    """Decode G.711 μ-law bytes to the same sample values as :func:`ulaw_decode`, as
    ``float64`` (what the level meter and the resampler compute with: no conversion)."""
    return _ulaw_float_table()[np.frombuffer(data, dtype=np.uint8)]


def alaw_decode(data: bytes) -> Samples:
    """Decode G.711 A-law bytes (one byte per sample) to PCM 16-bit samples."""
    return _alaw_table()[np.frombuffer(data, dtype=np.uint8)]


def ulaw_encode(samples: Samples) -> bytes:
    """Encode PCM 16-bit samples to G.711 μ-law bytes (for fixtures and the sandbox)."""
    pcm = np.asarray(samples, dtype=np.int16).astype(np.int32) + 32768
    return _ulaw_encode_table()[pcm].tobytes()


def pcm16_to_bytes(samples: Samples) -> bytes:
    """Little-endian PCM 16-bit bytes, as Vosk's ``AcceptWaveform`` expects."""
    return np.asarray(samples, dtype="<i2").tobytes()


def pcm16_from_bytes(data: bytes) -> Samples:
    """Samples from little-endian PCM 16-bit bytes; a trailing odd byte is an error."""
    if len(data) % 2:
        raise AudioError("PCM 16-bit data has an odd number of bytes")
    return np.frombuffer(data, dtype="<i2").astype(np.int16)


# --------------------------------------------------------------------------- resampling


@functools.lru_cache(maxsize=16)
def _kaiser_sinc(up: int, down: int, zero_crossings: int) -> npt.NDArray[np.float64]:
    """Low-pass FIR for rational resampling, designed at the up-sampled rate (read-only;
    cached: a resampler per utterance would redesign it every time, ~0.3 ms)."""
    factor = max(up, down)
    cutoff = 0.5 / factor * 0.92  # cycles per up-sampled sample, a little below Nyquist
    length = 2 * zero_crossings * factor + 1
    n = np.arange(length, dtype=np.float64) - (length - 1) / 2
    taps = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(length, 8.0)
    result = np.asarray(taps * up / taps.sum(), dtype=np.float64)
    result.setflags(write=False)
    return result


class Resampler:
    """Streaming polyphase resampler from ``src_rate`` to ``dst_rate`` (any rational ratio).

    Keeps the input history between calls, so 20 ms telephone frames fed one at a time give
    the same output as the whole signal at once (no clicks at frame boundaries). The output
    lags the input by :attr:`delay` output samples (the filter's group delay).
    """

    def __init__(self, src_rate: int, dst_rate: int, zero_crossings: int = 12) -> None:
        if src_rate <= 0 or dst_rate <= 0:
            raise AudioError(f"invalid sample rates {src_rate} → {dst_rate}")
        g = math.gcd(src_rate, dst_rate)
        self.src_rate = src_rate
        self.dst_rate = dst_rate
        self.up = dst_rate // g
        self.down = src_rate // g
        self.passthrough = self.up == self.down
        taps = _kaiser_sinc(self.up, self.down, zero_crossings)
        self._per_phase = math.ceil(len(taps) / self.up)
        padded = np.zeros(self._per_phase * self.up)
        padded[: len(taps)] = taps
        # phases[p, j] = taps[p + j * up]
        self._phases = padded.reshape(self._per_phase, self.up).T.copy()
        self._history = np.zeros(self._per_phase - 1, dtype=np.float64)
        self._consumed = 0  # input samples consumed so far
        self._produced = 0  # output samples produced so far
        self.delay = (len(taps) - 1) // 2 // self.down

    def process(self, samples: Samples | npt.NDArray[np.float64]) -> Samples:
        """Resample one chunk (PCM 16-bit values, as ``int16`` or ``float64``); returns the
        output samples that chunk completes."""
        x = np.asarray(samples)
        if self.passthrough:
            return x.astype(np.int16, copy=True)
        if x.size == 0:
            return np.zeros(0, dtype=np.int16)
        ext = np.concatenate((self._history, x), dtype=np.float64)
        total_in = self._consumed + x.size
        if self.down == 1 and self._produced == self._consumed * self.up:
            # Integer up-sampling (8 → 16 kHz): output phase p is the history convolved with
            # phase p of the filter; the phases interleave. (No BLAS: a matrix product here
            # woke OpenBLAS's thread pool on every batch.)
            y = np.empty(x.size * self.up)
            for p in range(self.up):
                y[p :: self.up] = np.convolve(ext, self._phases[p], "valid")
            self._produced = total_in * self.up
            self._consumed = total_in
            self._history = ext[-(self._per_phase - 1) :]
            return _to_int16(y)
        # Output m needs input index floor(m * down / up) to exist.
        last = (total_in * self.up - 1) // self.down
        m = np.arange(self._produced, last + 1, dtype=np.int64)
        t = m * self.down
        phase = t % self.up
        pos = t // self.up - (self._consumed - (self._per_phase - 1))
        idx = pos[:, None] - np.arange(self._per_phase)[None, :]
        y = np.einsum("ij,ij->i", ext[idx], self._phases[phase])
        self._produced = int(last + 1)
        self._consumed = total_in
        self._history = ext[-(self._per_phase - 1) :] if self._per_phase > 1 else self._history
        return _to_int16(y)


def _to_int16(y: npt.NDArray[np.float64]) -> Samples:
    """Round and saturate filter output to PCM 16-bit (in place on ``y``)."""
    np.rint(y, out=y)
    np.clip(y, -32768, 32767, out=y)
    return y.astype(np.int16)


def resample(samples: Samples, src_rate: int, dst_rate: int) -> Samples:
    """Resample a whole signal, compensating the filter delay (output length is exact)."""
    x = np.asarray(samples, dtype=np.int16)
    if src_rate == dst_rate:
        return x.copy()
    r = Resampler(src_rate, dst_rate)
    expected = round(x.size * r.up / r.down)
    tail = np.zeros(r.delay * r.down // r.up + r._per_phase + 1, dtype=np.int16)
    block = 16000
    parts = [r.process(x[i : i + block]) for i in range(0, x.size, block)]
    parts.append(r.process(tail))
    out = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
    return out[r.delay : r.delay + expected]


# --------------------------------------------------------------------------- energy


def frame_energy_db(samples: Samples) -> float:
    """Root-mean-square level of a frame in dBFS (−100 for digital silence)."""
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        return -100.0
    return float(frames_energy_db(x.reshape(1, -1))[0])


def frames_energy_db(frames: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Levels in dBFS of the rows of a 2-D array of frames (−100 for digital silence)."""
    x = np.asarray(frames, dtype=np.float64)
    power = np.einsum("ij,ij->i", x, x) / (max(1, x.shape[1]) * 32768.0 * 32768.0)
    return np.asarray(10.0 * np.log10(np.maximum(power, 1e-10)), dtype=np.float64)


# --------------------------------------------------------------------------- WAV


@dataclass(frozen=True)
class AudioClip:
    """Decoded mono audio: PCM 16-bit samples, their rate and the file's encoding."""

    samples: Samples
    sample_rate: int
    encoding: str  # "pcm16" | "mulaw" | "alaw"

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.samples.size / self.sample_rate


def _parse_riff(data: bytes) -> tuple[int, int, int, int, bytes]:
    """(format tag, channels, rate, bits per sample, data bytes) of a RIFF/WAVE file."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError("not a WAV file (no RIFF/WAVE header)")
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    payload: bytes | None = None
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = data[pos + 8 : pos + 8 + size]
        if chunk_id == b"fmt ":
            if len(body) < 16:
                raise AudioError("corrupt WAV file: the format chunk is too short")
            tag, channels, rate, _byte_rate, _align, bits = struct.unpack_from("<HHIIHH", body)
            if tag == _WAVE_FORMAT_EXTENSIBLE and len(body) >= 26:
                (tag,) = struct.unpack_from("<H", body, 24)  # first 2 bytes of the sub-format
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            # Streaming writers leave the size as 0 or 0xFFFFFFFF: take what is there.
            payload = data[pos + 8 :] if size in (0, 0xFFFFFFFF) else body
            if len(payload) < size and size not in (0, 0xFFFFFFFF):
                raise AudioError(
                    f"corrupt WAV file: the data chunk says {size} bytes, the file has "
                    f"{len(payload)} (truncated?)"
                )
        pos += 8 + size + (size & 1)
    if fmt is None:
        raise AudioError("corrupt WAV file: no format chunk")
    if payload is None:
        raise AudioError("corrupt WAV file: no data chunk")
    return (*fmt, payload)


def decode_wav(
    data: bytes,
    *,
    allowed_rates: tuple[int, ...] = DEFAULT_ALLOWED_RATES,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> AudioClip:
    """Decode WAV bytes (mono PCM 16-bit, μ-law or A-law) into an :class:`AudioClip`.

    Raises :class:`AudioError` for a corrupt file, an unsupported encoding, a rate not in
    ``allowed_rates``, more than one channel, no samples, or more than ``max_seconds``.
    """
    tag, channels, rate, bits, payload = _parse_riff(data)
    if channels != 1:
        raise AudioError(f"the recording has {channels} channels; a mono recording is needed")
    if rate not in allowed_rates:
        allowed = ", ".join(str(r) for r in allowed_rates)
        raise AudioError(f"sample rate {rate} Hz is not supported (allowed: {allowed} Hz)")
    if tag == _WAVE_FORMAT_PCM and bits == 16:
        samples = pcm16_from_bytes(payload[: len(payload) - len(payload) % 2])
        encoding = "pcm16"
    elif tag == _WAVE_FORMAT_MULAW and bits == 8:
        samples, encoding = ulaw_decode(payload), "mulaw"
    elif tag == _WAVE_FORMAT_ALAW and bits == 8:
        samples, encoding = alaw_decode(payload), "alaw"
    else:
        raise AudioError(
            f"unsupported WAV encoding (format {tag:#06x}, {bits} bits); "
            "use PCM 16-bit, μ-law or A-law"
        )
    if samples.size == 0:
        raise AudioError("the recording is empty (no samples)")
    duration = samples.size / rate
    if duration > max_seconds:
        raise AudioError(f"the recording is {duration:.1f} s long; the limit is {max_seconds:g} s")
    return AudioClip(samples=samples, sample_rate=rate, encoding=encoding)


def read_wav(
    path: str | Path,
    *,
    allowed_rates: tuple[int, ...] = DEFAULT_ALLOWED_RATES,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> AudioClip:
    """Read and validate a WAV file; see :func:`decode_wav`."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AudioError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return decode_wav(data, allowed_rates=allowed_rates, max_seconds=max_seconds)
    except AudioError as exc:
        raise AudioError(f"{path}: {exc}") from None


def encode_wav(samples: Samples, sample_rate: int, encoding: str = "pcm16") -> bytes:
    """A mono WAV file of ``samples`` as PCM 16-bit or μ-law (``encoding="mulaw"``)."""
    if encoding == "pcm16":
        payload, tag, bits = pcm16_to_bytes(samples), _WAVE_FORMAT_PCM, 16
    elif encoding == "mulaw":
        payload, tag, bits = ulaw_encode(samples), _WAVE_FORMAT_MULAW, 8
    else:
        raise AudioError(f"cannot write encoding {encoding!r} (pcm16 or mulaw)")
    block_align = bits // 8
    fmt = struct.pack("<HHIIHH", tag, 1, sample_rate, sample_rate * block_align, block_align, bits)
    if tag != _WAVE_FORMAT_PCM:
        fmt += struct.pack("<H", 0)  # cbSize, required for non-PCM formats
    out = io.BytesIO()
    riff_size = 4 + (8 + len(fmt)) + (8 + len(payload) + (len(payload) & 1))
    out.write(b"RIFF" + struct.pack("<I", riff_size) + b"WAVE")
    out.write(b"fmt " + struct.pack("<I", len(fmt)) + fmt)
    out.write(b"data" + struct.pack("<I", len(payload)) + payload)
    if len(payload) & 1:
        out.write(b"\x00")
    return out.getvalue()
