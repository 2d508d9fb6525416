"""Fuzzing Media Streams input: whatever a peer sends — garbage bytes as websocket frames,
non-JSON, JSON of any shape, Twilio-shaped messages with wrong values — is ignored (counted
as malformed) or ends the stream cleanly, never an exception out of the handlers. The
session runs the real (small, Korean) Vosk model."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from speech.model_store import LoadedModel
from speech.stream import MediaStreamSession, StreamConfig, StreamEvent
from telephony.websocket import FrameParser, ProtocolViolation, encode_frame
from tests.abuse.strategies import HOSTILE, any_text, fuzz
from tests.speech_fixtures import load_ko_model

EVENTS = ("connected", "start", "media", "dtmf", "mark", "stop", "clear", "", "START")
KINDS = {"started", "partial", "barge_in", "final", "dtmf", "mark", "stopped"}

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True),
        st.sampled_from(HOSTILE),
        any_text,
    ),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=12,
)
payloads = st.one_of(
    st.binary(max_size=480).map(lambda b: base64.b64encode(b).decode()),
    st.sampled_from(["", "!!!", "=", "AAA", "a" * 7]),
    json_values,
)
fields = st.fixed_dictionaries(
    {"event": st.sampled_from(EVENTS)},
    optional={
        "sequenceNumber": st.one_of(st.integers(-5, 10**20).map(str), json_values),
        "streamSid": st.one_of(st.just("MZ" + "1" * 32), json_values),
        "start": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "callSid": st.one_of(st.just("CA" + "2" * 32), json_values),
                    "streamSid": json_values,
                    "tracks": json_values,
                    "customParameters": st.one_of(
                        st.dictionaries(
                            st.sampled_from(
                                ["grammar", "lang", "keywords", "call_sid", "step_token",
                                 "prompt_seconds", "no_input_s", "keys_max", "keys_end"]
                            ),
                            json_values,
                            max_size=5,
                        ),
                        json_values,
                    ),
                    "mediaFormat": json_values,
                },
            ),
            json_values,
        ),
        "media": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "track": st.sampled_from(["inbound", "outbound", ""]),
                    "chunk": json_values,
                    "timestamp": json_values,
                    "payload": payloads,
                },
            ),
            json_values,
        ),
        "dtmf": json_values,
        "mark": json_values,
    },
)  # fmt: skip
messages = st.one_of(
    fields.map(lambda m: json.dumps(m, allow_nan=True)),
    json_values.map(json.dumps),
    any_text,
    st.binary(max_size=64),
)


@pytest.fixture
def model(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    return load_ko_model(tmp_path_factory)


def _start() -> str:
    return json.dumps(
        {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": "MZ" + "1" * 32,
            "start": {
                "callSid": "CA" + "2" * 32,
                "streamSid": "MZ" + "1" * 32,
                "tracks": ["inbound"],
                "customParameters": {"step_token": "hotline:menu:1", "grammar": "digits"},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }
    )


@fuzz(60)
@given(batch=st.lists(messages, max_size=12), started=st.booleans())
def test_any_message_is_ignored_or_ends_the_stream_cleanly(
    model: LoadedModel, batch: list[Any], started: bool
) -> None:
    events: list[StreamEvent] = []
    session = MediaStreamSession(model, events.append, StreamConfig(default_lang="ko"))
    if started:
        session.handle_message(_start())
    for raw in batch:
        session.handle_message(raw)
    session.close()
    assert session.finished
    assert {event.kind for event in events} <= KINDS


@fuzz(200)
@given(chunks=st.lists(st.binary(max_size=300), max_size=6))
def test_garbage_websocket_bytes_are_messages_or_a_protocol_violation(
    chunks: list[bytes],
) -> None:
    parser = FrameParser(max_message_bytes=4096)
    for chunk in chunks:
        try:
            for opcode, payload in parser.feed(chunk):
                assert isinstance(opcode, int)
                assert isinstance(payload, str | bytes)
        except ProtocolViolation as exc:
            assert exc.code >= 1000  # noqa: PT017 - either outcome is fine, checked
            return


@fuzz(100)
@given(payload=st.binary(max_size=600), opcode=st.sampled_from([0x0, 0x1, 0x2, 0x8, 0x9, 0xA, 0x3]))
def test_masked_frames_with_any_payload_parse_or_violate(payload: bytes, opcode: int) -> None:
    frame = encode_frame(opcode, payload, mask_key=b"\x01\x02\x03\x04")
    parser = FrameParser(max_message_bytes=512)
    try:
        parser.feed(frame)
    except ProtocolViolation as exc:
        assert exc.code >= 1000  # noqa: PT017 - either outcome is fine, checked


def test_a_start_message_of_the_wrong_shape_is_ignored(model: LoadedModel) -> None:
    """Regression: ``"start": null`` (or a list) raised AttributeError out of the handler."""
    events: list[StreamEvent] = []
    session = MediaStreamSession(model, events.append, StreamConfig(default_lang="ko"))
    for shape in (None, [], "x", 1):
        session.handle_message(json.dumps({"event": "start", "start": shape}))
    assert session.malformed == 4
    session.handle_message(_start())
    assert [event.kind for event in events] == ["started"]
    session.close()
