"""The TwiML verbs of a live call, except the Media Streams ones.

Say, Play, Pause, Redirect, Hangup, Reject, Gather (DTMF and speech, partial results),
Record (with its status callback), Dial (a ``<Number url>`` whisper is fetched on answer and
noted as ``whisper``) and Enqueue (``<Task>`` attributes noted), as Twilio documents them: Gather
defaults (``timeout`` 5 s, ``finishOnKey`` ``#``, ``''`` disables it, ``numDigits``
unlimited, ``action`` = current document URL, fall-through to the next verb on no input
unless ``actionOnEmptyResult``), Record (an empty recording continues with the next verb),
Dial/Enqueue action parameters. Each ``_verb_<name>`` is a generator: it yields an
:class:`~devtools.sandbox.twiml.InputRequest` when the caller may act and returns the next
document to fetch (or None to go on with the next verb).
"""

from __future__ import annotations

import json
import math
import re
import secrets
import xml.etree.ElementTree as ET  # only the Element type; parsing goes through defusedxml
from collections.abc import Generator
from urllib.parse import urljoin

from devtools.sandbox.audio import AudioError, silence_wav, wav_duration_s
from devtools.sandbox.call import CallCore
from devtools.sandbox.twiml import (
    API_VERSION,
    DTMF_KEYS,
    INFINITE_LOOP,
    PLAY_ASSUMED_S,
    ApplicationError,
    CallEnded,
    CallerAction,
    Fetch,
    InputRequest,
    attr_bool,
    attr_int,
    new_sid,
    say_duration_s,
)


class TwimlVerbs(CallCore):
    """The call's handlers of the TwiML verbs without Media Streams."""

    # -- verbs without input ----------------------------------------------------------

    def _say(self, verb: ET.Element) -> None:
        text = " ".join((verb.text or "").split())
        loop = attr_int(verb.get("loop"), 1)
        data = {"voice": verb.get("voice"), "language": verb.get("language") or "en-US"}
        if loop == INFINITE_LOOP:
            entry = self.note("say", text, loop="∞", **data)
            self._advance(self.behaviour.time_limit_s + 1, entry)
        for _ in range(max(1, loop)):
            entry = self.note("say", text, **data)
            self._advance(say_duration_s(text), entry)

    def _play(self, verb: ET.Element) -> None:
        digits = verb.get("digits")
        if digits:
            if set(digits) - DTMF_KEYS:
                raise ApplicationError(13221, f"invalid Play digits {digits!r}")
            self.note("play", f"DTMF {digits}", digits=digits)
            self._advance(0.1 * len(digits) + 0.4 * digits.count("w"))
            return
        url = (verb.text or "").strip()
        loop = attr_int(verb.get("loop"), 1)
        if loop == INFINITE_LOOP:
            entry = self.note("play", url, loop="∞")
            self._advance(self.behaviour.time_limit_s + 1, entry)
        for _ in range(max(1, loop)):
            entry = self.note("play", url)
            self._advance(PLAY_ASSUMED_S, entry)

    def _pause(self, verb: ET.Element) -> None:
        length = attr_int(verb.get("length"), 1)
        self.note("pause", f"{length} s", length=length)
        self._advance(length)

    def _verb_say(
        self, verb: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, Fetch | None]:
        self._say(verb)
        return None
        yield  # pragma: no cover - makes this a generator

    def _verb_play(
        self, verb: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, Fetch | None]:
        self._play(verb)
        return None
        yield  # pragma: no cover

    def _verb_pause(
        self, verb: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, Fetch | None]:
        self._pause(verb)
        return None
        yield  # pragma: no cover

    def _verb_redirect(
        self, verb: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, Fetch | None]:
        target = urljoin(doc_url, (verb.text or "").strip() or doc_url)
        self.note("redirect", target, url=target)
        return Fetch(target, (verb.get("method") or "POST").upper())
        yield  # pragma: no cover

    def _verb_hangup(
        self, verb: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, Fetch | None]:
        raise CallEnded("hung up by the application")
        yield  # pragma: no cover

    def _verb_reject(
        self, verb: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, Fetch | None]:
        reason = verb.get("reason") or "rejected"
        self.note("reject", reason)
        raise CallEnded(f"rejected ({reason})", "busy" if reason == "busy" else "no-answer")
        yield  # pragma: no cover

    # -- Gather -----------------------------------------------------------------------

    def _prompts(self, verb: ET.Element) -> tuple[str, ...]:
        prompts: list[str] = []
        for child in verb:
            if child.tag == "Say":
                self._say(child)
                prompts.append(" ".join((child.text or "").split()))
            elif child.tag == "Play":
                self._play(child)
            elif child.tag == "Pause":
                self._pause(child)
            else:
                raise ApplicationError(12200, f"<{child.tag}> cannot be nested in <{verb.tag}>")
        return tuple(prompts)

    def _verb_gather(
        self, verb: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, Fetch | None]:
        inputs = set((verb.get("input") or "dtmf").split())
        if not inputs or inputs - {"dtmf", "speech"}:
            raise ApplicationError(12200, f"invalid Gather input {verb.get('input')!r}")
        action_url = urljoin(doc_url, verb.get("action") or doc_url)
        method = (verb.get("method") or "POST").upper()
        timeout = attr_int(verb.get("timeout"), 5)
        finish_on_key = verb.get("finishOnKey", "#")
        num_digits = attr_int(verb.get("numDigits"), 0)
        on_empty = attr_bool(verb.get("actionOnEmptyResult"))
        prompts = self._prompts(verb)
        action = yield InputRequest("gather", dict(verb.attrib), prompts)
        redirect = self._check_update()
        if redirect is not None:
            return redirect
        params: dict[str, str] | None = None
        if action.kind == "hangup":
            raise CallEnded("caller hung up")
        if action.kind == "press":
            self._stream_dtmf(action.value)
            if "dtmf" in inputs:
                params = self._collect_digits(action.value, finish_on_key, num_digits, timeout)
            else:
                self.note("input", f"pressed {action.value} (ignored: Gather takes speech)")
                self._advance(timeout)
        elif action.kind in ("speech", "audio"):
            text = action.value
            if action.kind == "audio":
                self._stream_audio(action)
            else:
                self.note("input", f"said «{text}»", text=text)
                self._advance(say_duration_s(text))
            if "speech" in inputs and text.strip():
                self._partial_results(verb, doc_url, text)
                params = {"SpeechResult": text, "Confidence": f"{action.confidence:.2f}"}
            else:
                reason = "Gather takes dtmf only" if "speech" not in inputs else "no words"
                self.note("input", f"speech ignored ({reason})")
                self._advance(timeout)
        else:
            self.note("input", f"silence ({timeout} s timeout)")
            self._advance(timeout)
        if params is None:
            if not on_empty:
                self.note("gather", "no input: falling through to the next verb")
                return None
            params = {}
        return Fetch(action_url, method, params)

    def _collect_digits(
        self, keys: str, finish_on_key: str, num_digits: int, timeout: int
    ) -> dict[str, str] | None:
        collected = ""
        finished = False
        ignored = ""
        for i, key in enumerate(keys.replace("w", "")):
            if finish_on_key and key in finish_on_key:
                finished = True
                ignored = keys.replace("w", "")[i + 1 :]
                break
            collected += key
            if num_digits and len(collected) >= num_digits:
                finished = True
                ignored = keys.replace("w", "")[i + 1 :]
                break
        self.note("input", f"pressed {keys}", digits=collected, keys=keys)
        self._advance(0.3 * len(keys))
        if ignored:
            self.note("input", f"keys after the end of input ignored: {ignored}")
        if not finished:
            self._advance(timeout)  # the inter-digit timeout ends the input
        if not collected:
            return None
        return {"Digits": collected}

    def _partial_results(self, verb: ET.Element, doc_url: str, text: str) -> None:
        callback = verb.get("partialResultCallback")
        if not callback:
            return
        url = urljoin(doc_url, callback)
        method = (verb.get("partialResultCallbackMethod") or "POST").upper()
        words = text.split()
        for n in range(1, len(words) + 1):
            partial = " ".join(words[:n])
            try:
                self.webhook(
                    url,
                    method,
                    {
                        "UnstableSpeechResult": partial,
                        "StableSpeechResult": " ".join(words[: n - 1]),
                        "Stability": "0.8",
                        "SequenceNumber": str(n),
                        "LanguageCode": verb.get("language") or "en-US",
                    },
                )
            except ApplicationError:
                continue  # partial results are fire-and-forget

    # -- Record -----------------------------------------------------------------------

    def _verb_record(
        self, verb: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, Fetch | None]:
        action_url = urljoin(doc_url, verb.get("action") or doc_url)
        method = (verb.get("method") or "POST").upper()
        timeout = attr_int(verb.get("timeout"), 5)
        max_length = attr_int(verb.get("maxLength"), 3600)
        finish_on_key = verb.get("finishOnKey", "1234567890*#")
        if attr_bool(verb.get("playBeep"), True):
            self.note("beep", "beep")
        action = yield InputRequest("record", dict(verb.attrib))
        redirect = self._check_update()
        if redirect is not None:
            return redirect
        wav: bytes | None = None
        params: dict[str, str] = {}
        hung_up = False
        if action.kind == "audio" and action.audio:
            wav = action.audio
            self._stream_audio(action)
        elif action.kind == "speech":
            self.note("input", f"said «{action.value}» (recorded as silence: no audio)")
            wav = silence_wav(say_duration_s(action.value))
            self._advance(say_duration_s(action.value))
        elif action.kind == "press":
            key = action.value[0]
            self.note("input", f"pressed {action.value}")
            if finish_on_key and key in finish_on_key:
                params["Digits"] = key
        elif action.kind == "hangup":
            hung_up = True
        else:
            self.note("input", f"silence ({timeout} s timeout)")
            self._advance(timeout)
        duration = 0
        if wav is not None:
            try:
                seconds = wav_duration_s(wav)
            except AudioError as exc:
                raise ValueError(f"caller audio is not a usable WAV: {exc}") from exc
            duration = min(max_length, math.ceil(seconds))
            if duration > 0 and not hung_up:
                self._advance(timeout)  # Twilio ends the recording after `timeout` of silence
        if duration <= 0:
            self.note("record", "empty recording: continuing with the next verb")
            if hung_up:
                raise CallEnded("caller hung up")
            return None
        assert wav is not None  # noqa: S101 - narrowed above: duration > 0 needs audio
        rec_sid = new_sid("RE")
        rec_url = (
            f"{self.api_base_url}/{API_VERSION}/Accounts/{self.account_sid}/Recordings/{rec_sid}"
        )
        if self._store_recording is not None:
            self._store_recording(rec_sid, self.sid, wav, duration)
        self.recordings.append({"sid": rec_sid, "url": rec_url, "duration": duration})
        self.note("record", f"recorded {duration} s ({rec_sid})", sid=rec_sid, url=rec_url)
        params.update(
            {"RecordingUrl": rec_url, "RecordingSid": rec_sid, "RecordingDuration": str(duration)}
        )
        self._recording_status(verb, doc_url, rec_sid, rec_url, duration)
        if hung_up:
            params["Digits"] = "hangup"
            self.status = "completed"
            try:
                self.webhook(action_url, method, params)
            finally:
                raise CallEnded("caller hung up during the recording")
        return Fetch(action_url, method, params)

    def _recording_status(
        self, verb: ET.Element, doc_url: str, sid: str, url: str, duration: int
    ) -> None:
        callback = verb.get("recordingStatusCallback")
        if not callback:
            return
        events = (verb.get("recordingStatusCallbackEvent") or "completed").split()
        if "completed" not in events:
            return
        try:
            self.webhook(
                urljoin(doc_url, callback),
                (verb.get("recordingStatusCallbackMethod") or "POST").upper(),
                {
                    "RecordingSid": sid,
                    "RecordingUrl": url,
                    "RecordingStatus": "completed",
                    "RecordingDuration": str(duration),
                    "RecordingChannels": "1",
                    "RecordingSource": "RecordVerb",
                },
            )
        except ApplicationError:
            self.note("error", "recording status callback failed")

    # -- Dial and Enqueue -------------------------------------------------------------

    def _verb_dial(
        self, verb: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, Fetch | None]:
        targets = [f"{child.tag.lower()}:{(child.text or '').strip()}" for child in verb]
        if (verb.text or "").strip():
            targets.insert(0, f"number:{(verb.text or '').strip()}")
        if not targets:
            raise ApplicationError(12200, "<Dial> without a number")
        status = self.behaviour.dial_status
        duration = self.behaviour.dial_duration_s if status == "completed" else 0
        time_limit = attr_int(verb.get("timeLimit"), 14400)
        duration = min(duration, time_limit)
        self.note("dial", f"dial {', '.join(targets)} → {status}", targets=targets, status=status)
        ring = min(attr_int(verb.get("timeout"), 30), 5) if status != "no-answer" else 30
        self._advance(ring)
        if status == "completed":
            for child in verb:
                if child.tag == "Number" and child.get("url"):
                    self._whisper(child, doc_url)
        self._advance(duration)
        action = verb.get("action")
        if not action:
            return None
        params = {"DialCallStatus": status, "DialCallSid": new_sid("CA")}
        if status == "completed":
            params["DialCallDuration"] = str(duration)
        return Fetch(urljoin(doc_url, action), (verb.get("method") or "POST").upper(), params)
        yield  # pragma: no cover

    def _whisper(self, number: ET.Element, doc_url: str) -> None:
        """``<Number url>``: the called party's leg fetches the URL on answer and hears its
        ``<Say>``/``<Play>`` before the bridge (noted as ``whisper`` entries)."""
        url = urljoin(doc_url, number.get("url") or "")
        called = (number.text or "").strip()
        resp = self.webhook(
            url,
            (number.get("method") or "POST").upper(),
            {
                "CallSid": new_sid("CA"),
                "ParentCallSid": self.sid,
                "From": self.from_,
                "To": called,
                "Called": called,
                "Direction": "outbound-dial",
                "CallStatus": "in-progress",
            },
        )
        for child in self._parse(resp):
            if child.tag == "Say":
                text = " ".join((child.text or "").split())
                entry = self.note("whisper", text, to=called, language=child.get("language"))
                self._advance(say_duration_s(text), entry)
            elif child.tag == "Play":
                self.note("whisper", (child.text or "").strip(), to=called, play=True)
            elif child.tag == "Pause":
                self._advance(attr_int(child.get("length"), 1))

    @staticmethod
    def _task_attributes(verb: ET.Element) -> dict[str, object] | None:
        """The JSON attributes of ``<Enqueue><Task>`` (None without one); invalid JSON is
        an application error, as TaskRouter refuses it."""
        task = verb.find("Task")
        if task is None:
            return None
        try:
            attributes = json.loads(task.text or "")
        except ValueError:
            raise ApplicationError(12200, "<Task> is not valid JSON") from None
        if not isinstance(attributes, dict):
            raise ApplicationError(12200, "<Task> must be a JSON object")
        return attributes

    def _verb_enqueue(
        self, verb: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, Fetch | None]:
        name = (verb.text or "").strip()
        workflow_sid = verb.get("workflowSid")
        if workflow_sid is not None and not re.fullmatch(r"WW[0-9a-fA-F]{32}", workflow_sid):
            raise ApplicationError(12200, f"invalid Enqueue workflowSid {workflow_sid!r}")
        if (not name and workflow_sid is None) or len(name) > 64:
            raise ApplicationError(12200, "<Enqueue> needs a queue name of at most 64 chars")
        task = self._task_attributes(verb)
        queue_sid = "QU" + secrets.token_hex(16)
        if workflow_sid is not None:
            self.note(
                "enqueue",
                f"task for workflow {workflow_sid}",
                queue=name or None,
                workflow_sid=workflow_sid,
                task=task,
            )
        else:
            self.note("enqueue", f"queued in «{name}»", queue=name, task=task)
        wait_url = verb.get("waitUrl")
        if wait_url:
            resp = self.webhook(
                urljoin(doc_url, wait_url),
                (verb.get("waitUrlMethod") or "POST").upper(),
                {
                    "QueueSid": queue_sid,
                    "QueuePosition": "1",
                    "QueueTime": "0",
                    "AvgQueueTime": "0",
                    "CurrentQueueSize": "1",
                },
            )
            for child in self._parse(resp):
                if child.tag == "Say":
                    self._say(child)
                elif child.tag == "Play":
                    self._play(child)
                elif child.tag == "Pause":
                    self._pause(child)
        result = self.behaviour.queue_result
        self._advance(self.behaviour.queue_time_s)
        self.note("enqueue", f"left the queue: {result}", result=result)
        action = verb.get("action")
        if not action:
            if result == "hangup":
                raise CallEnded("caller hung up in the queue")
            return None
        params = {
            "QueueResult": result,
            "QueueSid": queue_sid,
            "QueueTime": str(self.behaviour.queue_time_s),
        }
        fetch = Fetch(urljoin(doc_url, action), (verb.get("method") or "POST").upper(), params)
        if result == "hangup":
            self.status = "completed"
            self.webhook(fetch.url, fetch.method, fetch.params)
            raise CallEnded("caller hung up in the queue")
        return fetch
        yield  # pragma: no cover
