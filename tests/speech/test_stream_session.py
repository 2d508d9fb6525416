"""MediaStreamSession with synthetic Twilio Media Streams messages (recognizer stand-in)."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest

from speech.audio import Resampler, pcm16_to_bytes, ulaw_decode, ulaw_encode
from speech.model_store import LoadedModel
from speech.recognizer import EndpointConfig
from speech.stream import MediaStreamSession, StreamConfig, StreamEvent

from .conftest import FakeKaldi, silence, tone

STREAM_SID = "MZ00000000000000000000000000000001"
CALL_SID = "CA00000000000000000000000000000001"


class Twilio:
    """Builds the messages Twilio sends, numbering them like Twilio does."""

    def __init__(self) -> None:
        self.seq = 0
        self.chunk = 0

    def _next(self) -> str:
        self.seq += 1
        return str(self.seq)

    def connected(self) -> str:
        return json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})

    def start(self, **params: str) -> str:
        return json.dumps(
            {
                "event": "start",
                "sequenceNumber": self._next(),
                "streamSid": STREAM_SID,
                "start": {
                    "accountSid": "AC" + "0" * 32,
                    "callSid": CALL_SID,
                    "streamSid": STREAM_SID,
                    "tracks": ["inbound"],
                    "customParameters": params,
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
            }
        )

    def media_frames(self, samples: np.ndarray, frame: int = 160) -> list[str]:
        payload = ulaw_encode(samples)
        messages = []
        for start in range(0, len(payload), frame):
            self.chunk += 1
            messages.append(
                json.dumps(
                    {
                        "event": "media",
                        "sequenceNumber": self._next(),
                        "streamSid": STREAM_SID,
                        "media": {
                            "track": "inbound",
                            "chunk": str(self.chunk),
                            "timestamp": str((self.chunk - 1) * 20),
                            "payload": base64.b64encode(payload[start : start + frame]).decode(),
                        },
                    }
                )
            )
        return messages

    def dtmf(self, digit: str) -> str:
        return json.dumps(
            {
                "event": "dtmf",
                "sequenceNumber": self._next(),
                "streamSid": STREAM_SID,
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    def mark(self, name: str) -> str:
        return json.dumps(
            {
                "event": "mark",
                "sequenceNumber": self._next(),
                "streamSid": STREAM_SID,
                "mark": {"name": name},
            }
        )

    def stop(self) -> str:
        return json.dumps(
            {
                "event": "stop",
                "sequenceNumber": self._next(),
                "streamSid": STREAM_SID,
                "stop": {"accountSid": "AC" + "0" * 32, "callSid": CALL_SID},
            }
        )


@pytest.fixture
def events() -> list[StreamEvent]:
    return []


@pytest.fixture
def session(
    fake_loaded_model: LoadedModel, fake_factory: Any, events: list[StreamEvent]
) -> MediaStreamSession:
    config = StreamConfig(default_lang="ko", endpoint=EndpointConfig(stable_partial=100))
    return MediaStreamSession(
        fake_loaded_model, events.append, config, recognizer_factory=fake_factory()
    )


def kinds(events: list[StreamEvent]) -> list[str]:
    return [e.kind for e in events]


def fed_samples(rec: FakeKaldi) -> np.ndarray:
    return np.frombuffer(bytes(rec.fed), dtype="<i2")


def test_full_call_gives_a_final_result(
    session: MediaStreamSession, events: list[StreamEvent]
) -> None:
    tw = Twilio()
    session.handle_message(tw.connected())
    session.handle_message(tw.start(grammar="yes_no", lang="ko"))
    for message in tw.media_frames(np.concatenate([silence(0.2), tone(0.8), silence(1.0)])):
        session.handle_message(message)
    assert kinds(events)[0] == "started"
    assert events[0].call_sid == CALL_SID
    assert events[0].custom_parameters == {"grammar": "yes_no", "lang": "ko"}
    finals = [e for e in events if e.kind == "final"]
    assert len(finals) == 1
    assert finals[0].result is not None
    assert finals[0].result.reason == "silence"
    assert finals[0].text == "네"
    assert session.grammar is not None
    assert session.grammar.kind == "yes_no"
    session.handle_message(tw.stop())
    assert kinds(events)[-1] == "stopped"
    assert kinds(events).count("final") == 1  # the stop does not add a second final


def test_out_of_order_frames_are_reordered(
    session: MediaStreamSession, fake_recognizers: list[FakeKaldi]
) -> None:
    tw = Twilio()
    session.handle_message(tw.start(lang="ko"))
    audio = tone(0.2)  # 10 frames
    frames = tw.media_frames(audio)
    shuffled = [frames[i] for i in (0, 2, 1, 3, 5, 4, 6, 9, 8, 7)]
    for message in shuffled:
        session.handle_message(message)
    session.handle_message(frames[4])  # a duplicate arriving late
    session.handle_message(tw.stop())
    expected = Resampler(8000, 16000).process(ulaw_decode(ulaw_encode(audio)))
    assert bytes(fake_recognizers[0].fed) == pcm16_to_bytes(expected)
    assert session.frames_dropped == 1
    assert session.frames_lost == 0


def test_a_frame_that_never_comes_is_skipped(
    session: MediaStreamSession, fake_recognizers: list[FakeKaldi]
) -> None:
    tw = Twilio()
    session.handle_message(tw.start(lang="ko"))
    frames = tw.media_frames(tone(0.3))  # 15 frames
    for i, message in enumerate(frames):
        if i != 3:
            session.handle_message(message)
    assert session.frames_lost == 1
    session.handle_message(tw.stop())
    assert fed_samples(fake_recognizers[0]).size == 2 * 160 * 14  # all but the lost one


def test_partial_frames_of_any_size(
    session: MediaStreamSession, fake_recognizers: list[FakeKaldi]
) -> None:
    tw = Twilio()
    session.handle_message(tw.start(lang="ko"))
    audio = tone(0.1)
    for size in (1, 37, 160, 3):
        for message in tw.media_frames(audio, frame=size)[:5]:
            session.handle_message(message)
    session.handle_message(tw.stop())
    total = 5 * (1 + 37 + 160 + 3)
    assert fed_samples(fake_recognizers[0]).size == 2 * total
    assert session.malformed == 0


@pytest.mark.parametrize(
    "message",
    [
        "not json at all",
        "[1, 2, 3]",
        json.dumps({"event": "unknown"}),
        json.dumps({"no": "event"}),
        json.dumps({"event": "media"}),
        json.dumps({"event": "media", "media": {"payload": "***not base64***"}}),
        json.dumps({"event": "dtmf", "dtmf": {}}),
        json.dumps({"event": "start", "start": "oops"}),
        b"\xff\xfe binary",
    ],
)
def test_malformed_messages_are_ignored(
    session: MediaStreamSession, events: list[StreamEvent], message: str | bytes
) -> None:
    tw = Twilio()
    session.handle_message(tw.start(lang="ko"))
    session.handle_message(message)
    assert session.malformed == 1
    for frame in tw.media_frames(np.concatenate([tone(0.5), silence(1.0)])):
        session.handle_message(frame)
    assert "final" in kinds(events)


def test_unsupported_media_format_is_rejected(
    session: MediaStreamSession, events: list[StreamEvent]
) -> None:
    start = json.loads(Twilio().start())
    start["start"]["mediaFormat"] = {"encoding": "audio/x-l16", "sampleRate": 16000}
    session.handle_message(json.dumps(start))
    assert session.malformed == 1
    assert events == []


def test_dtmf_wins_over_speech(session: MediaStreamSession, events: list[StreamEvent]) -> None:
    tw = Twilio()
    session.handle_message(tw.start(lang="ko"))
    for message in tw.media_frames(tone(0.4)):
        session.handle_message(message)
    session.handle_message(tw.dtmf("5"))
    for message in tw.media_frames(np.concatenate([tone(0.4), silence(1.0)])):
        session.handle_message(message)
    session.handle_message(tw.dtmf("#"))
    session.handle_message(tw.stop())
    assert "final" not in kinds(events)
    dtmf = [e for e in events if e.kind == "dtmf"]
    assert [e.digit for e in dtmf] == ["5", "#"]
    assert dtmf[0].result is not None
    assert dtmf[0].result.reason == "dtmf"
    assert dtmf[0].result.text == "네"  # what was heard is kept for the record
    assert dtmf[1].result is None
    assert kinds(events)[-1] == "stopped"


def test_dropped_socket_finalises_what_was_heard(
    session: MediaStreamSession, events: list[StreamEvent]
) -> None:
    tw = Twilio()
    session.handle_message(tw.start(lang="ko"))
    for message in tw.media_frames(tone(0.5)):
        session.handle_message(message)
    assert "final" not in kinds(events)
    session.close()
    assert kinds(events)[-2:] == ["final", "stopped"]
    result = events[-2].result
    assert result is not None
    assert result.reason == "hangup"
    assert result.text == "네"
    session.close()  # a second close is harmless
    session.handle_message(tw.stop())
    assert kinds(events).count("stopped") == 1


def test_stop_before_any_speech(session: MediaStreamSession, events: list[StreamEvent]) -> None:
    tw = Twilio()
    session.handle_message(tw.start(lang="ko"))
    for message in tw.media_frames(silence(0.5)):
        session.handle_message(message)
    session.handle_message(tw.stop())
    final = next(e for e in events if e.kind == "final")
    assert final.result is not None
    assert final.result.text == ""
    assert not final.result.speech_detected


def test_barge_in_during_prompt(session: MediaStreamSession, events: list[StreamEvent]) -> None:
    tw = Twilio()
    session.handle_message(tw.start(lang="ko", prompt_seconds="2.5"))
    for message in tw.media_frames(np.concatenate([silence(0.5), tone(0.5), silence(1.0)])):
        session.handle_message(message)
    assert "barge_in" in kinds(events)
    assert kinds(events)[-1] == "final"


def test_prompt_mark_starts_the_no_input_timer(
    fake_loaded_model: LoadedModel, fake_factory: Any, events: list[StreamEvent]
) -> None:
    config = StreamConfig(default_lang="ko", endpoint=EndpointConfig(no_input_timeout=1.0))
    session = MediaStreamSession(
        fake_loaded_model, events.append, config, recognizer_factory=fake_factory()
    )
    tw = Twilio()
    session.handle_message(tw.start(prompt_mark="prompt-1"))
    for message in tw.media_frames(silence(3.0)):
        session.handle_message(message)
    assert "final" not in kinds(events)  # the prompt is still playing
    session.handle_message(tw.mark("other"))
    session.handle_message(tw.mark("prompt-1"))
    for message in tw.media_frames(silence(1.1)):
        session.handle_message(message)
    final = next(e for e in events if e.kind == "final")
    assert final.result is not None
    assert final.result.reason == "no_input"
    assert final.result.duration == pytest.approx(4.0, abs=0.08)


def test_unknown_grammar_falls_back_to_the_default(
    session: MediaStreamSession, events: list[StreamEvent]
) -> None:
    session.handle_message(Twilio().start(grammar="nonsense", lang="ko"))
    assert session.grammar is not None
    assert session.grammar.kind == "digits"


def test_outbound_track_is_not_recognised(
    session: MediaStreamSession, fake_recognizers: list[FakeKaldi]
) -> None:
    tw = Twilio()
    session.handle_message(tw.start(lang="ko"))
    message = json.loads(tw.media_frames(tone(0.02))[0])
    message["media"]["track"] = "outbound"
    session.handle_message(json.dumps(message))
    assert len(fake_recognizers[0].fed) == 0
