"""Audio for the sandbox, over :mod:`speech.audio` (G.711, resampling, WAV).

The sandbox needs to turn a caller's WAV fixture (PCM 16-bit, μ-law or A-law, mono, any
common rate) into the 8 kHz μ-law byte stream a phone line carries, split it into 20 ms
Media Streams frames, and write the WAV a ``<Record>`` produces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from speech import AudioError, decode_wav, encode_wav, resample, ulaw_decode, ulaw_encode

SAMPLE_RATE = 8000
FRAME_BYTES = 160  # 20 ms of 8 kHz μ-law
MAX_SECONDS = 3600.0  # <Record maxLength> is at most an hour
INPUT_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)

__all__ = [
    "FRAME_BYTES",
    "SAMPLE_RATE",
    "AudioError",
    "frames",
    "mulaw_decode",
    "mulaw_encode",
    "pcm_to_wav",
    "read_wav",
    "silence_wav",
    "wav_duration_s",
    "wav_to_mulaw",
    "wav_to_pcm8k",
]


def mulaw_decode(data: bytes) -> npt.NDArray[np.int16]:
    """G.711 μ-law bytes to 16-bit PCM samples."""
    return ulaw_decode(data)


def mulaw_encode(samples: npt.NDArray[np.int16]) -> bytes:
    """16-bit PCM samples to G.711 μ-law bytes."""
    return ulaw_encode(samples)


def wav_to_pcm8k(data: bytes) -> npt.NDArray[np.int16]:
    """Decode WAV bytes to mono 16-bit PCM at 8 kHz."""
    clip = decode_wav(data, allowed_rates=INPUT_RATES, max_seconds=MAX_SECONDS)
    if clip.sample_rate == SAMPLE_RATE:
        return clip.samples
    return resample(clip.samples, clip.sample_rate, SAMPLE_RATE)


def read_wav(path: str | Path) -> bytes:
    """A WAV file's bytes, checked to be playable; a clear :class:`AudioError` otherwise."""
    p = Path(path)
    if not p.is_file():
        raise AudioError(f"audio file not found: {p}")
    data = p.read_bytes()
    try:
        wav_to_pcm8k(data)
    except AudioError as exc:
        raise AudioError(f"{p}: {exc}") from None
    return data


def wav_to_mulaw(data: bytes) -> bytes:
    """WAV bytes to the 8 kHz μ-law stream a phone line carries."""
    return mulaw_encode(wav_to_pcm8k(data))


def wav_duration_s(data: bytes) -> float:
    """Duration of WAV bytes in seconds."""
    return len(wav_to_pcm8k(data)) / SAMPLE_RATE


def pcm_to_wav(samples: npt.NDArray[np.int16], rate: int = SAMPLE_RATE) -> bytes:
    """Mono 16-bit PCM samples to WAV bytes."""
    return encode_wav(samples, rate)


def silence_wav(seconds: float) -> bytes:
    """A WAV of ``seconds`` of 8 kHz silence."""
    return pcm_to_wav(np.zeros(max(1, round(seconds * SAMPLE_RATE)), dtype=np.int16))


def call_recording_wav(seconds: float, channels: int = 1) -> bytes:
    """A whole-call recording of ``seconds``: 8 kHz 16-bit PCM, mono or dual-channel
    (caller and our side); the emulated line is silent, so the samples are zero."""
    import io
    import wave

    n = max(1, round(seconds * SAMPLE_RATE))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(np.zeros(n * channels, dtype=np.int16).tobytes())
    return buf.getvalue()


def frames(mulaw: bytes) -> list[bytes]:
    """Split μ-law audio into whole 160-byte (20 ms) frames, padding the last with silence."""
    if not mulaw:
        return []
    pad = (-len(mulaw)) % FRAME_BYTES
    data = mulaw + b"\xff" * pad
    return [data[i : i + FRAME_BYTES] for i in range(0, len(data), FRAME_BYTES)]
