"""The Media Streams verbs of a live call: ``<Start><Stream>``, ``<Stop>``, ``<Connect>``.

A stream is a websocket to our app (:class:`~devtools.sandbox.media.MediaStream`): a
``<Start>`` stream listens while the call goes on; ``<Connect><Stream>`` holds the call
(yielding an ``InputRequest("stream")`` for each caller action) until the app closes it.
Stream status callbacks follow Twilio's ``StreamEvent`` values.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # only the Element type; parsing goes through defusedxml
from collections.abc import Generator
from urllib.parse import urljoin

from devtools.sandbox.call import CallCore
from devtools.sandbox.media import MediaStream, MediaStreamError
from devtools.sandbox.twiml import (
    ApplicationError,
    CallEnded,
    CallerAction,
    Fetch,
    InputRequest,
    new_sid,
)


class StreamVerbs(CallCore):
    """The call's handlers of the Media Streams verbs."""

    # -- Streams ----------------------------------------------------------------------

    def _open_stream(self, node: ET.Element, bidirectional: bool) -> MediaStream | None:
        url = node.get("url")
        if not url:
            raise ApplicationError(12200, "<Stream> without a url")
        track = node.get("track") or "inbound_track"
        if bidirectional and track != "inbound_track":
            raise ApplicationError(31941, "<Connect><Stream> supports only inbound_track")
        params = {p.get("name", ""): p.get("value", "") for p in node if p.tag == "Parameter"}
        stream = MediaStream(
            url,
            token=self.token,
            account_sid=self.account_sid,
            call_sid=self.sid,
            stream_sid=new_sid("MZ"),
            name=node.get("name"),
            track=track,
            custom_parameters=params,
            bidirectional=bidirectional,
            ws_connect=self._ws_connect,
            realtime=self.realtime,
        )
        try:
            stream.open()
        except MediaStreamError as exc:
            self.note("error", f"stream {url} failed: {exc}", code=31920)
            self._stream_status(node, stream, "stream-error")
            return None
        self.streams[stream.name or stream.stream_sid] = stream
        self.note("stream", f"stream opened to {url}", url=url, stream_sid=stream.stream_sid)
        self._stream_status(node, stream, "stream-started")
        return stream

    def _stream_status(self, node: ET.Element, stream: MediaStream, event: str) -> None:
        callback = node.get("statusCallback")
        if not callback:
            return
        try:
            self.webhook(
                callback,
                (node.get("statusCallbackMethod") or "POST").upper(),
                {
                    "StreamSid": stream.stream_sid,
                    "StreamName": stream.name or stream.stream_sid,
                    "StreamEvent": event,
                    "Timestamp": self.clock.now().isoformat(),
                },
            )
        except ApplicationError:
            self.note("error", "stream status callback failed")

    def _stop_stream(self, stream: MediaStream) -> None:
        stream.poll()
        stream.stop()
        self._note_stream_audio(stream)
        self.note("stream", f"stream {stream.stream_sid} stopped", stream_sid=stream.stream_sid)

    def _note_stream_audio(self, stream: MediaStream) -> None:
        if stream.audio_from_app:
            ms = len(stream.audio_from_app) // 8
            self.note("play", f"stream audio from the app ({ms} ms)", ms=ms)
            stream.audio_from_app.clear()

    def _verb_start(
        self, verb: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, Fetch | None]:
        for node in verb:
            if node.tag != "Stream":
                self.note("error", f"<Start><{node.tag}> is not emulated; skipped")
                continue
            self._open_stream(node, bidirectional=False)
        return None
        yield  # pragma: no cover

    def _verb_stop(
        self, verb: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, Fetch | None]:
        for node in verb:
            if node.tag != "Stream":
                continue
            name = node.get("name")
            for key, stream in list(self.streams.items()):
                if name is None or key == name:
                    self._stop_stream(stream)
                    del self.streams[key]
        return None
        yield  # pragma: no cover

    def _verb_connect(
        self, verb: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, Fetch | None]:
        nodes = [n for n in verb if n.tag == "Stream"]
        if not nodes:
            raise ApplicationError(12200, "<Connect> without <Stream> is not emulated")
        stream = self._open_stream(nodes[0], bidirectional=True)
        if stream is not None:
            key = stream.name or stream.stream_sid
            while not stream.closed_by_app:
                stream.poll()
                self._note_stream_audio(stream)
                if stream.closed_by_app:
                    break
                action = yield InputRequest("stream", dict(nodes[0].attrib))
                if action.kind == "hangup":
                    raise CallEnded("caller hung up")
                if action.kind == "audio":
                    self._stream_audio(action)
                    stream.wait_closed(0.3)
                elif action.kind == "press":
                    self.note("input", f"pressed {action.value}")
                    self._stream_dtmf(action.value)
                    stream.wait_closed(0.3)
                else:
                    if action.kind == "speech":
                        self.note("input", f"said «{action.value}» (no audio to stream)")
                    if not stream.wait_closed(self.behaviour.stream_close_timeout_s):
                        self._note_stream_audio(stream)
                        raise CallEnded("caller hung up (the stream never ended)")
            self._note_stream_audio(stream)
            self.note("stream", "the app closed the stream", stream_sid=stream.stream_sid)
            stream.stop()
            self.streams.pop(key, None)
        action_url = verb.get("action")
        if action_url:
            return Fetch(urljoin(doc_url, action_url), (verb.get("method") or "POST").upper())
        return None
