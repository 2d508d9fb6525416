"""Stream captures: the ``/media-stream`` websocket and the state it shares through Redis.

``stream`` captures are recognised by :class:`MediaStreamCall` on the ``/media-stream``
websocket. A one-way stream (``<Start><Stream>``, a keypad ``<Gather>`` playing the prompt
meanwhile) stores the final result in Redis (:class:`StreamResults`) and redirects the live
call with ``update_call`` to the step URL with ``ev=speech``; a key pressed wins: a keypad
answer claims the stream result first, and a late final is then dropped. A bidirectional
stream (``<Connect><Stream>`` of a barge-in step) also plays the prompt
(:mod:`ivr.prompt_stream`), cuts it with ``clear`` when the caller talks or presses a key,
collects the keys, stores the result or the keys and closes the socket: Twilio then goes on
with the ``<Redirect>`` after the ``<Connect>``. The step webhook reads (or waits for) the
stored result (:mod:`ivr.voice`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from simple_websocket import ConnectionClosed

from contactcenter.services import Services
from ivr.capture import step_url
from ivr.prompt_stream import FRAMES_PER_S, KeyCollector, PromptPlayer, load_prompt_audio
from ivr.startup import IvrSetup
from ivr.voice_policy import EV_SPEECH, PROMPT_MARK
from speech import MediaStreamSession, RecognitionResult, StreamConfig, StreamEvent
from telephony import TelephonyError
from telephony.websocket import InlineWebSocket, WebSocketHub, shared_hub

log = logging.getLogger(__name__)

#: Seconds the stream's fall-through webhook waits for the recognizer's final result.
STREAM_RESULT_WAIT_S = 4.0
#: Seconds it waits for a stream that has not reported its start yet.
STREAM_START_WAIT_S = 2.0
#: Seconds a websocket still receiving audio lets the utterance end by itself after the
#: fall-through webhook asked for the result (an idle socket finishes at once).
STREAM_FINISH_GRACE_S = 1.5
#: Seconds without any message after which a media stream counts as dead (Twilio sends a
#: frame every 20 ms while the call is up): what was heard is finalised and the socket, and
#: the server thread it holds, let go — a half-open connection would keep them for ever.
STREAM_IDLE_CLOSE_S = 30.0
#: Seconds between the prompt frames' sends while a bidirectional stream plays a prompt.
PROMPT_PUMP_S = 0.02


class StreamResults:
    """Per (call, step version) state of a stream capture, shared through Redis.

    Fields of the hash ``ivr:stream:<CallSid>:<seq>``: ``state`` (listening, final,
    failed), ``stream_sid``, ``result`` (JSON), ``digit``, ``finish`` (a webhook asks the
    websocket to end the utterance now) and ``owner`` — who acts on the result, set once
    (``HSETNX``): ``redirect`` (the websocket redirects the call), ``webhook`` (the
    fall-through webhook applies it) or ``dtmf`` (a key was pressed: the speech is dropped).
    """

    PREFIX = "ivr:stream:"
    TTL_S = 900

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def _key(self, call_sid: str, seq: int) -> str:
        return f"{self.PREFIX}{call_sid}:{seq}"

    def _set(self, call_sid: str, seq: int, **fields: str) -> None:
        key = self._key(call_sid, seq)
        mapping: dict[bytes | bytearray | memoryview | str | int | float, Any] = {
            name: value for name, value in fields.items()
        }
        with self.redis.pipeline() as pipe:
            pipe.hset(key, mapping=mapping)
            pipe.expire(key, self.TTL_S)
            pipe.execute()

    def started(self, call_sid: str, seq: int, stream_sid: str) -> None:
        """The websocket of this capture started listening."""
        self._set(call_sid, seq, state="listening", stream_sid=stream_sid)

    def failed(self, call_sid: str, seq: int, reason: str) -> None:
        """The capture cannot be recognised (no model): the step goes on by keypad."""
        self._set(call_sid, seq, state="failed", reason=reason)

    def store_final(self, call_sid: str, seq: int, result: Mapping[str, Any]) -> None:
        """The recognizer's final result of the capture."""
        self._set(call_sid, seq, state="final", result=json.dumps(result, ensure_ascii=False))

    def store_digit(self, call_sid: str, seq: int, digit: str) -> None:
        """A key pressed on the stream (bidirectional streams only)."""
        self._set(call_sid, seq, digit=digit)

    def claim(self, call_sid: str, seq: int, owner: str) -> bool:
        """Become the one who acts on the result; False when someone else already is."""
        key = self._key(call_sid, seq)
        with self.redis.pipeline() as pipe:
            pipe.hsetnx(key, "owner", owner)
            pipe.expire(key, self.TTL_S)
            won, _ = pipe.execute()
        return bool(won)

    def owner(self, call_sid: str, seq: int) -> str | None:
        """Who acts on the result (None: nobody yet)."""
        raw = self.redis.hget(self._key(call_sid, seq), "owner")
        return raw.decode() if isinstance(raw, bytes) else raw

    def request_finish(self, call_sid: str, seq: int) -> None:
        """Ask the websocket to end the utterance (the keypad Gather timed out)."""
        self._set(call_sid, seq, finish=f"{time.time():.3f}")

    def finish_requested(self, call_sid: str, seq: int) -> float | None:
        """Seconds since a webhook asked to end the utterance (None: nobody asked)."""
        raw = self.redis.hget(self._key(call_sid, seq), "finish")
        if raw is None:
            return None
        try:
            return max(0.0, time.time() - float(raw))
        except ValueError:
            return 0.0

    def load(self, call_sid: str, seq: int) -> dict[str, str]:
        """Every field of the capture's state (empty when the stream never started)."""
        raw = self.redis.hgetall(self._key(call_sid, seq))
        return {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }

    def wait_final(
        self, call_sid: str, seq: int, *, timeout_s: float, poll_s: float = 0.05
    ) -> dict[str, str]:
        """The state once final (asking the websocket to finish the utterance), or as it is
        after ``timeout_s``; at once when the capture already ended. A stream that has not
        reported its start is waited for :data:`STREAM_START_WAIT_S` (it may never have
        connected)."""
        data = self.load(call_sid, seq)
        start_deadline = time.monotonic() + STREAM_START_WAIT_S
        while not data and time.monotonic() < start_deadline:
            time.sleep(poll_s)
            data = self.load(call_sid, seq)
        if not data or data.get("state") != "listening" or data.get("digit"):
            return data
        self.request_finish(call_sid, seq)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            time.sleep(poll_s)
            data = self.load(call_sid, seq)
            if data.get("state") != "listening" or data.get("digit"):
                return data
        log.warning(
            "call %s: no stream result for version %s within %.1f s", call_sid, seq, timeout_s
        )
        return data


class MediaStreamCall:
    """One ``/media-stream`` websocket: Twilio Media Streams → our recognizer → the call.

    Messages go into a :class:`speech.MediaStreamSession` built with the step's grammar
    (``customParameters``: grammar, lang, keywords, call_sid, step_token, prompt_seconds or
    prompt/prompt_mark, no_input_s, keys_*). A stream with a ``prompt`` parameter is
    bidirectional (``<Connect><Stream>``): the prompt is played and cut on barge-in or a key
    (``clear``), keys are collected, and the result or the keys are stored before the socket
    is closed (Twilio then fetches the ``<Redirect>`` after the ``<Connect>``). On a one-way
    stream the final result is stored and, unless a key or the fall-through webhook got there
    first, the live call is redirected with ``update_call`` to the step URL with
    ``ev=speech``; ``clear`` is never sent there (nothing of ours plays on it). A dropped
    socket finalises what was heard (stored, no redirect: the call's fall-through picks it
    up). ``setup`` gives the process's speech model; ``ws`` is a
    :class:`telephony.websocket.InlineWebSocket`; ``hub`` the
    :class:`~telephony.websocket.WebSocketHub` that reads it (default: the process's).
    """

    def __init__(
        self,
        services: Services,
        setup: IvrSetup,
        ws: InlineWebSocket,
        *,
        poll_s: float = 0.2,
        hub: WebSocketHub | None = None,
    ) -> None:
        self.services = services
        self.setup = setup
        self.ws = ws
        self.hub = hub
        self.poll_s = poll_s
        self.store = StreamResults(services.redis)
        self.call_sid: str | None = None
        self.flow = ""
        self.step = ""
        self.seq: int | None = None
        self.stream_sid = ""
        self.delivered = False
        self.bidirectional = False
        self.player: PromptPlayer | None = None
        self.keys: KeyCollector | None = None
        self.closing = False  # we closed the socket: the loop ends
        self.session: MediaStreamSession | None = None
        self.lock = threading.Lock()  # the session: hub thread (messages) vs this one

    def run(self) -> None:
        """Serve the socket until ``stop``, until it closes or until we close it.

        The socket is read by the process's :class:`~telephony.websocket.WebSocketHub`
        (the session, decoding included, runs there); this thread takes the session's
        events (Redis, the provider's REST API), sends a bidirectional stream's prompt and
        polls for a finish request.
        """
        holder = self.setup.speech
        model = holder.get()
        if model is None:
            self.refuse()
            return
        events: queue.SimpleQueue[StreamEvent | None] = queue.SimpleQueue()  # None: the end
        session = MediaStreamSession(model, events.put, StreamConfig(default_lang=holder.lang))
        self.session = session
        lock = self.lock
        last_message = time.monotonic()

        def on_messages(batch: list[str | bytes]) -> None:
            nonlocal last_message
            with lock:
                for raw in batch:
                    session.handle_message(raw)
                last_message = time.monotonic()
                if session.finished:
                    events.put(None)  # this thread lets the socket go (detach below)

        def on_closed() -> None:
            log.info("media stream %s: socket closed by the peer", self.stream_sid or "-")
            with lock:
                session.close()  # finalises what was heard
            events.put(None)

        subscription = (self.hub or shared_hub()).attach(self.ws, on_messages, on_closed)
        last_check = time.monotonic()
        dead = False
        try:
            while not self.closing:
                sending = self.player is not None and self.player.sending
                try:
                    event = events.get(timeout=PROMPT_PUMP_S if sending else self.poll_s)
                except queue.Empty:
                    pass
                else:
                    if event is None:
                        break
                    self.on_event(event)
                self.pump()
                now = time.monotonic()
                if now - last_message >= STREAM_IDLE_CLOSE_S and not dead:
                    log.warning(
                        "media stream %s: nothing for %.0f s; closing it as dead",
                        self.stream_sid or "-",
                        now - last_message,
                    )
                    dead = True
                    subscription.detach()
                    with lock:
                        session.close()  # its final (reason hangup) is queued before the end
                    events.put(None)
                if now - last_check >= self.poll_s and not self.bidirectional:
                    last_check = now
                    self.finish_if_asked(session, lock, idle=now - last_message >= self.poll_s)
        except RedisError as exc:
            # The call's keypad Gather and its fall-through go on without the stream.
            log.warning("media stream %s: Redis unavailable (%s); closing", self.stream_sid, exc)
            self.close()
            return
        finally:
            subscription.detach()
            subscription.wait_released()
        log.info(
            "media stream %s ended: %d frames, %d lost, %d malformed",
            self.stream_sid or "-",
            session.frames_received,
            session.frames_lost,
            session.malformed,
        )

    def refuse(self) -> None:
        """No usable model: read up to ``start``, mark the capture failed, close."""
        try:
            for _ in range(10):
                raw = self.ws.receive(timeout=5)
                if raw is None:
                    break
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(message, dict) and message.get("event") == "start":
                    start = message.get("start") or {}
                    self.bind(str(start.get("callSid") or ""), start.get("customParameters") or {})
                    if self.call_sid and self.seq is not None:
                        self.store.failed(self.call_sid, self.seq, "no_model")
                    break
        except ConnectionClosed:
            pass
        log.warning("media stream refused: no speech model (call %s)", self.call_sid or "-")

    def bind(self, call_sid: str, params: Mapping[str, Any]) -> None:
        """Take the call and the step (``step_token`` = ``flow:step:seq``) of the stream."""
        self.call_sid = call_sid or str(params.get("call_sid") or "") or None
        flow, _, rest = str(params.get("step_token") or "").partition(":")
        step, _, seq = rest.partition(":")
        if flow and step and seq.isdigit():
            self.flow, self.step, self.seq = flow, step, int(seq)
        else:
            log.warning(
                "media stream for call %s: bad step_token %r", call_sid, params.get("step_token")
            )

    def on_event(self, event: StreamEvent) -> None:
        """React to the session's events."""
        if event.kind == "started":
            self.stream_sid = event.stream_sid or ""
            self.bind(event.call_sid or "", event.custom_parameters)
            if event.custom_parameters.get("prompt"):
                self.start_prompt(event.custom_parameters)
            elif self.call_sid and self.seq is not None:
                self.store.started(self.call_sid, self.seq, self.stream_sid)
        elif event.kind == "barge_in":
            # The caller talks over the prompt: stop it and flush what Twilio still buffers
            # (only a bidirectional stream plays anything of ours).
            self.interrupt("speech")
        elif event.kind == "mark":
            if self.player is not None and event.text == self.player.mark:
                self.player.heard = True
        elif event.kind == "final" and event.result is not None:
            if self.bidirectional:
                self.deliver(event.result, redirect=False)
                if event.result.reason != "hangup":
                    self.close()
            else:
                self.deliver(event.result, redirect=event.result.reason != "hangup")
        elif event.kind == "dtmf" and event.digit:
            if self.bidirectional:
                self.on_key(event.digit)
            else:
                self.key_pressed(event.digit)

    # ---- bidirectional streams -----------------------------------------------------

    def start_prompt(self, params: Mapping[str, str]) -> None:
        """A bidirectional stream started: load its prompt and start playing it."""
        self.bidirectional = True
        if self.call_sid is None or self.seq is None:
            self.close()
            return
        audio = load_prompt_audio(self.services.redis, params.get("prompt", ""))
        if audio is None:
            # Never silence for the caller: the step goes on by keypad after a notice.
            log.warning("call %s: prompt audio %s not found", self.call_sid, params.get("prompt"))
            self.store.failed(self.call_sid, self.seq, "prompt_missing")
            self.close()
            return
        session = self.session
        start = session.frames_received if session is not None else 0
        mark = params.get("prompt_mark") or PROMPT_MARK
        self.player = PromptPlayer(audio, self.stream_sid, mark, start_frame=start)
        self.keys = KeyCollector.from_parameters(dict(params))
        self.store.started(self.call_sid, self.seq, self.stream_sid)
        self.pump()

    def pump(self) -> None:
        """Send the prompt frames due now; end a key entry the caller paused after."""
        session = self.session
        if session is None or self.closing:
            return
        frames = session.frames_received
        player = self.player
        if player is not None:
            for message in player.pump(frames):
                self.send(message)
            if player.overdue(frames):
                log.warning("media stream %s: the prompt's mark never came back", self.stream_sid)
                self.prompt_over()
        if self.keys is not None and self.keys.expired(frames) and not self.delivered:
            self.deliver_keys()

    def interrupt(self, why: str) -> None:
        """Cut the prompt (barge-in by ``why``): stop sending, ``clear`` what plays."""
        player = self.player
        if player is None or not player.playing:
            return
        sent = player.sent / FRAMES_PER_S
        if player.stop():
            self.send(player.clear_message())
        log.info(
            "media stream %s: prompt cut by %s (%.1f s of %.1f s sent)",
            self.stream_sid,
            why,
            sent,
            player.seconds,
        )
        self.prompt_over()

    def prompt_over(self) -> None:
        """The caller no longer hears the prompt: the no-input timer may run."""
        if self.player is not None:
            self.player.stopped = True
        session = self.session
        if session is None:
            return
        with self.lock:
            utterance = session.utterance
            if utterance is not None and not utterance.done:
                utterance.set_prompt_playing(False)

    def on_key(self, digit: str) -> None:
        """A key on a bidirectional stream: the speech is dropped, the keys collected."""
        if self.delivered or self.keys is None or self.session is None:
            return
        self.interrupt("a key")
        if self.keys.add(digit, self.session.frames_received):
            self.deliver_keys()

    def deliver_keys(self) -> None:
        """Store the keys (handed to the step as type-ahead) and close the socket."""
        if self.delivered or self.keys is None or self.call_sid is None or self.seq is None:
            return
        self.delivered = True
        self.store.store_digit(self.call_sid, self.seq, self.keys.digits)
        self.store.claim(self.call_sid, self.seq, "dtmf")
        log.info("call %s: %d key(s) pressed on the stream", self.call_sid, len(self.keys.digits))
        self.close()

    def send(self, message: str) -> None:
        """Send a message to Twilio (a socket closed meanwhile is not an error)."""
        try:
            self.ws.send(message)
        except ConnectionClosed:
            self.closing = True

    def close(self) -> None:
        """Close the socket: Twilio goes on with the TwiML after the ``<Connect>``."""
        self.closing = True
        if self.player is not None:
            self.player.stopped = True
        with contextlib.suppress(ConnectionClosed):
            self.ws.close()

    # ---- one-way streams -----------------------------------------------------------

    def finish_if_asked(self, session: Any, lock: threading.Lock, *, idle: bool) -> None:
        """End the utterance when the fall-through webhook waits for it: at once on an idle
        socket (no audio comes), else after :data:`STREAM_FINISH_GRACE_S` so speech still
        arriving can end by itself. ``lock`` guards the session (Redis is asked outside)."""
        utterance = session.utterance
        if (
            self.delivered
            or self.call_sid is None
            or self.seq is None
            or utterance is None
            or utterance.done
        ):
            return
        waited = self.store.finish_requested(self.call_sid, self.seq)
        if waited is None or (not idle and waited < STREAM_FINISH_GRACE_S):
            return
        with lock:
            if utterance.done:
                return  # it ended by itself meanwhile: its final event is on the way
            result = utterance.finish("end_of_audio")
        self.deliver(result, redirect=False)

    def deliver(self, result: RecognitionResult, *, redirect: bool) -> None:
        """Store the final result; redirect the call to it unless someone else acts."""
        if self.delivered or self.call_sid is None or self.seq is None:
            return
        self.delivered = True
        self.store.store_final(self.call_sid, self.seq, result.to_dict())
        log.info(
            "call %s: stream heard %r (confidence %.2f, %s after %.2f s)",
            self.call_sid,
            result.text,
            result.confidence,
            result.reason,
            result.duration,
        )
        if redirect and self.store.claim(self.call_sid, self.seq, "redirect"):
            self.redirect()

    def key_pressed(self, digit: str) -> None:
        """A key on the stream wins over speech: the utterance is dropped."""
        if self.delivered or self.call_sid is None or self.seq is None:
            return
        self.delivered = True
        self.store.store_digit(self.call_sid, self.seq, digit)
        if self.store.claim(self.call_sid, self.seq, "dtmf"):
            self.redirect()

    def redirect(self) -> None:
        """Move the live call to the step URL with ``ev=speech`` (provider REST API)."""
        if self.call_sid is None or self.seq is None:
            return
        url = step_url(
            self.services.settings.public_base_url, self.flow, self.step, self.seq, EV_SPEECH
        )
        try:
            self.services.telephony.update_call(self.call_sid, url=url)
        except (TelephonyError, ValueError) as exc:
            # The keypad Gather's fall-through picks the stored result up instead.
            log.warning("call %s: redirect after the stream result failed: %s", self.call_sid, exc)
