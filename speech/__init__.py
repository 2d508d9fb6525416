"""Speech: audio decoding, Vosk recognition sessions, grammars, number understanding.

Public API (other packages import from here)::

    from speech import get_model, resolve_model, SpeechUnavailable, recognize_wav

    info = resolve_model("ru", model_path=settings.vosk_model_path)  # raises SpeechUnavailable
    model = load_model(info)                      # once per process, shared by all threads
    check_vocabulary(model, "ru", {"main_menu": ["показания", "баланс"]})
    result = recognize_wav(model, wav_bytes, "digits", "ru")  # RecognitionResult
    value = parse_value("digits", result.text, "ru")

    session = MediaStreamSession(model, on_event, StreamConfig())  # Twilio Media Streams
    session.handle_message(raw_text); session.close()

Nothing here loads a model or builds a recognizer at import time.
"""

from __future__ import annotations

from speech.audio import AudioError
from speech.grammar import (
    GRAMMAR_KINDS,
    Grammar,
    GrammarError,
    build_grammar,
    check_vocabulary,
    grammar_words,
    parse_value,
)
from speech.model_store import (
    LoadedModel,
    ModelInfo,
    SpeechUnavailable,
    get_model,
    load_model,
    missing_words,
    resolve_model,
)
from speech.recognizer import EndpointConfig, RecognitionResult, recognize_wav
from speech.stream import MediaStreamSession, StreamConfig, StreamEvent

__all__ = [
    "GRAMMAR_KINDS",
    "AudioError",
    "EndpointConfig",
    "Grammar",
    "GrammarError",
    "LoadedModel",
    "MediaStreamSession",
    "ModelInfo",
    "RecognitionResult",
    "SpeechUnavailable",
    "StreamConfig",
    "StreamEvent",
    "build_grammar",
    "check_vocabulary",
    "get_model",
    "grammar_words",
    "load_model",
    "missing_words",
    "parse_value",
    "recognize_wav",
    "resolve_model",
]
