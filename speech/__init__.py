"""Speech: audio decoding, Vosk recognition sessions, grammars, number understanding.

Public API (other packages import from here; it holds what they use)::

    from speech import SpeechModel, SpeechUnavailable, resolve_model, recognize_wav

    info = resolve_model("ru", model_path=settings.vosk_model_path)  # raises SpeechUnavailable
    speech_model = SpeechModel("ru", info)     # loaded on first use, shared by all threads
    model = speech_model.get()                 # a LoadedModel, or None: use the keypad
    check_vocabulary(model, "ru", {"main_menu": ["показания", "баланс"]})
    result = recognize_wav(model, wav_bytes, "digits", "ru")  # RecognitionResult
    value = parse_value("digits", result.text, "ru")

    session = MediaStreamSession(model, on_event, StreamConfig())  # Twilio Media Streams
    session.handle_message(raw_text); session.close()

    samples = ulaw_decode(payload)              # G.711 and WAV helpers (the sandbox's audio)

    tts = text_to_speech("espeak-ng -v ru --stdout", "var/tts-cache")  # prompts we play
    audio = tts.synthesize("Назовите номер счёта")  # 8 kHz μ-law, cached; TtsError

The exceptions are in :mod:`speech.errors` (the tree is drawn there). The modules behind the
API (:mod:`speech.audio`, :mod:`speech.model_store`, :mod:`speech.recognizer`,
:mod:`speech.grammar`, :mod:`speech.numbers`, :mod:`speech.lang`, :mod:`speech.stream`) hold
more for the speech CLI, the benchmarks and the tests.

Nothing here loads a model or builds a recognizer at import time.
"""

from __future__ import annotations

from speech.audio import decode_wav, encode_wav, resample, ulaw_decode, ulaw_encode
from speech.errors import AudioError, GrammarError, SpeechError, SpeechUnavailable, TtsError
from speech.grammar import check_vocabulary, grammar_words, parse_value
from speech.model_holder import SpeechModel
from speech.model_store import LoadedModel, ModelInfo, resolve_model
from speech.recognizer import RecognitionResult, recognize_wav
from speech.stream import MediaStreamSession, StreamConfig, StreamEvent
from speech.tts import TextToSpeech, text_to_speech, wav_to_ulaw

__all__ = [
    "AudioError",
    "GrammarError",
    "LoadedModel",
    "MediaStreamSession",
    "ModelInfo",
    "RecognitionResult",
    "SpeechError",
    "SpeechModel",
    "SpeechUnavailable",
    "StreamConfig",
    "StreamEvent",
    "TextToSpeech",
    "TtsError",
    "check_vocabulary",
    "decode_wav",
    "encode_wav",
    "grammar_words",
    "parse_value",
    "recognize_wav",
    "resample",
    "resolve_model",
    "text_to_speech",
    "ulaw_decode",
    "ulaw_encode",
    "wav_to_ulaw",
]
