"""The TwiML interpreter: one live call executing our app's TwiML like Twilio does.

:class:`LiveCall.run` is a generator. It fetches TwiML, plays it, and *yields* an
:class:`InputRequest` whenever the caller could act (``<Gather>``, ``<Record>``,
``<Connect><Stream>``); the driver sends back a :class:`CallerAction`. The simulator drives
it step by step from a test; the sandbox provider drives it from a scripted callee.

Semantics follow Twilio's documentation of each verb (summarised in ``devtools/README.md``).
This module holds the call flow (documents, verbs in order, redirects, the end of the call);
the state and plumbing are :class:`~devtools.sandbox.call.CallCore`, the verbs
:mod:`devtools.sandbox.verbs` and :mod:`devtools.sandbox.streams`, the values they exchange
:mod:`devtools.sandbox.twiml`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # only the Element type; parsing goes through defusedxml
from collections.abc import Generator

from defusedxml.ElementTree import ParseError
from defusedxml.ElementTree import fromstring as parse_xml

from devtools.sandbox.streams import StreamVerbs
from devtools.sandbox.twiml import (
    VERBS,
    ApplicationError,
    CallEnded,
    CallerAction,
    Fetch,
    InputRequest,
)
from devtools.sandbox.verbs import TwimlVerbs


class LiveCall(TwimlVerbs, StreamVerbs):
    """One answered call executing TwiML."""

    def _load(self, fetch: Fetch) -> tuple[ET.Element, str]:
        self.documents += 1
        if self.documents > self.behaviour.max_documents:
            raise ApplicationError(
                11200, f"more than {self.behaviour.max_documents} TwiML documents"
            )
        if fetch.twiml is not None:
            try:
                root = parse_xml(fetch.twiml)
            except ParseError as exc:
                raise ApplicationError(12100, f"TwiML parse failure: {exc}") from exc
            return root, fetch.url
        resp = self.webhook(fetch.url, fetch.method, fetch.params)
        return self._parse(resp), fetch.url

    # -- the call ---------------------------------------------------------------------

    def run(self) -> Generator[InputRequest, CallerAction, None]:
        """Execute the call until it ends, yielding whenever the caller may act."""
        fetch: Fetch | None = Fetch(
            self.url or "", self.method, self.first_params, twiml=self.twiml
        )
        try:
            while fetch is not None:
                root, doc_url = self._load(fetch)
                if self.documents == 1:
                    self.status = "in-progress"
                    if self._after_first_document is not None:
                        self._after_first_document()
                fetch = yield from self._execute(root, doc_url)
        except CallEnded as end:
            self._finish(end.reason, end.status)
        except ApplicationError as exc:
            self.error_code = exc.code
            self.note("error", f"application error {exc}", code=exc.code)
            self.note("say", "We are sorry, an application error has occurred. Goodbye.")
            self._finish(f"application error {exc.code}", "completed")
        else:
            self._finish("no more TwiML", "completed")

    def _finish(self, reason: str, status: str) -> None:
        for stream in list(self.streams.values()):
            self._stop_stream(stream)
        self.streams.clear()
        self.status = status
        self.end_reason = reason
        self.ended = True
        self.note("end", f"call ended: {reason} ({status}, {self.duration_s} s)", status=status)

    def hang_up(self) -> None:
        """The caller hangs up while the call is not waiting for input."""
        if not self.ended:
            self._finish("caller hung up", "completed")

    def _execute(
        self, root: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, Fetch | None]:
        for verb in list(root):
            redirect = self._check_update()
            if redirect is not None:
                return redirect
            limit = self.behaviour.hangup_after_verbs
            if limit is not None and self.verbs_executed >= limit:
                raise CallEnded("caller hung up")
            self.verbs_executed += 1
            if verb.tag not in VERBS:  # TwiML is case-sensitive
                raise ApplicationError(12200, f"unknown TwiML verb <{verb.tag}>")
            handler = getattr(self, f"_verb_{verb.tag.lower()}")
            result = yield from handler(verb, doc_url)
            if result is not None:
                return result
        return None
