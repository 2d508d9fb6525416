"""The per-frame fast paths of the media pipeline give the same answers as the general ones."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from speech.audio import (
    Resampler,
    _kaiser_sinc,
    frames_energy_db,
    ulaw_decode,
    ulaw_decode_float,
    ulaw_encode,
)
from speech.recognizer import EndpointConfig, EnergyVad, RecognitionSession, _percentile
from speech.stream import _loads

from .conftest import (
    FakeKaldi,
    fake_model,
    make_fake_factory,
    syllables,
    yes_no_grammar,
)


def _noise(seconds: float, level: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(0, level, int(8000 * seconds)), -32768, 32767).astype(np.int16)


def test_single_frame_levels_equal_the_batched_levels() -> None:
    signal = np.concatenate(
        [_noise(0.4, 30, 1), _noise(0.5, 6000, 2), _noise(0.4, 30, 3), np.zeros(800, np.int16)]
    )
    one_by_one = EnergyVad(EndpointConfig(), 8000)
    batched = EnergyVad(EndpointConfig(), 8000)
    singles = [
        d for i in range(0, signal.size, 160) for d in one_by_one.frames(signal[i : i + 160])
    ]
    blocks = [d for i in range(0, signal.size, 480) for d in batched.frames(signal[i : i + 480])]
    assert [s for s, _ in singles] == [s for s, _ in blocks]
    np.testing.assert_allclose([lvl for _, lvl in singles], [lvl for _, lvl in blocks])
    expected = frames_energy_db(signal.reshape(-1, 160))
    np.testing.assert_allclose([lvl for _, lvl in singles], expected)
    assert one_by_one.noise_floor_db == pytest.approx(batched.noise_floor_db)
    assert singles[-1][1] == -100.0  # digital silence


def test_uneven_frames_carry_the_remainder() -> None:
    vad = EnergyVad(EndpointConfig(), 8000)
    signal = _noise(0.1, 500, 4)
    got = vad.frames(signal[:100]) + vad.frames(signal[100:261]) + vad.frames(signal[261:])
    assert len(got) == 5
    np.testing.assert_allclose([lvl for _, lvl in got], frames_energy_db(signal.reshape(5, 160)))


def _reference_upsample(x: np.ndarray, r: Resampler) -> np.ndarray:
    """2× up-sampling by plain per-phase convolution over the whole signal."""
    ext = np.concatenate([np.zeros(r._per_phase - 1), x.astype(np.float64)])
    y = np.empty(x.size * 2)
    for p in range(2):
        y[p::2] = np.convolve(ext, r._phases[p], mode="valid")
    return np.clip(np.rint(y), -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("sizes", [[160], [480], [1, 159, 333, 7]])
def test_double_rate_streaming_equals_one_convolution(sizes: list[int]) -> None:
    x = _noise(1.0, 12000, 5)  # loud enough to saturate sometimes
    r = Resampler(8000, 16000)
    out, pos, k = [], 0, 0
    while pos < x.size:
        n = sizes[k % len(sizes)]
        out.append(r.process(x[pos : pos + n]))
        pos, k = pos + n, k + 1
    np.testing.assert_array_equal(
        np.concatenate(out), _reference_upsample(x, Resampler(8000, 16000))
    )


@pytest.mark.parametrize("count", [1, 2, 3, 10, 149, 150])
@pytest.mark.parametrize("q", [0.0, 10.0, 50.0, 99.9, 100.0])
def test_noise_percentile_equals_numpy(count: int, q: float) -> None:
    values = list(np.random.default_rng(count).normal(-60, 5, count))
    assert _percentile(values, q) == pytest.approx(float(np.percentile(values, q)), abs=1e-12)
    with pytest.raises(ValueError, match="no values"):
        _percentile([], q)


def test_filter_design_is_shared_and_read_only() -> None:
    first, second = Resampler(8000, 16000), Resampler(8000, 16000)
    assert _kaiser_sinc(2, 1, 12) is _kaiser_sinc(2, 1, 12)
    np.testing.assert_array_equal(first._phases, second._phases)
    with pytest.raises(ValueError, match="read-only"):
        _kaiser_sinc(2, 1, 12)[0] = 1.0


@pytest.mark.parametrize(
    "raw",
    [
        '{"event":"media","media":{"chunk":"3","payload":"AAAA"}}',
        '{"event": "stop"}',
        ' {"event":"stop"}',
        '{"event":"stop"} ',
        '{"event":"stop"}{"x":1}',
        '{"event":',
        "[1, 2]",
        "not json",
        "",
        b'{"event":"stop"}',
        '{"event":"\u0441\u0442\u043e\u043f"}',
    ],
)
def test_json_shortcut_behaves_like_json_loads(raw: str | bytes) -> None:
    try:
        expected: object = json.loads(raw)
    except ValueError as exc:
        with pytest.raises(type(exc)):
            _loads(raw)
    else:
        assert _loads(raw) == expected


def test_float_ulaw_decoding_gives_the_pcm_values() -> None:
    codes = bytes(range(256))
    decoded = ulaw_decode_float(codes)
    assert decoded.dtype == np.float64
    np.testing.assert_array_equal(decoded, ulaw_decode(codes).astype(np.float64))
    decoded[0] = 1.0  # a new array each time: the table itself is never handed out
    assert ulaw_decode_float(codes)[0] == ulaw_decode(codes)[0]


def test_resampler_takes_float_pcm_values_like_int16() -> None:
    x = _noise(0.5, 9000, 6)
    from_int, from_float = Resampler(8000, 16000), Resampler(8000, 16000)
    for i in range(0, x.size, 160):
        np.testing.assert_array_equal(
            from_int.process(x[i : i + 160]), from_float.process(x[i : i + 160].astype(np.float64))
        )


def test_ulaw_frames_feed_the_decoder_what_pcm_frames_do() -> None:
    """``feed_ulaw`` (the media-stream path, float samples throughout) and ``feed`` of the
    decoded PCM give the decoder the same bytes and the session the same events."""
    audio = np.concatenate([_noise(0.6, 30, 7), syllables(1.2), _noise(1.0, 30, 8)])
    ulaw = ulaw_encode(audio)
    runs = []
    for use_ulaw in (True, False):
        FakeKaldi.instances.clear()
        session = RecognitionSession(
            fake_model(), yes_no_grammar(), recognizer_factory=make_fake_factory("네")
        )
        events = []
        for i in range(0, len(ulaw), 160):
            frame = ulaw[i : i + 160]
            fed = session.feed_ulaw(frame) if use_ulaw else session.feed(ulaw_decode(frame))
            events += [(e.kind, e.text) for e in fed]
        assert session.result is not None
        result = dataclasses.replace(session.result, processing_seconds=0.0)
        runs.append((events, bytes(FakeKaldi.instances[0].fed), result))
    assert runs[0] == runs[1]
    assert runs[0][0][-1] == ("final", "")
    assert runs[0][2].reason == "silence"
    assert runs[0][2].text == "네"
