"""The sandbox provider: a local Twilio that calls our webhooks like the real one.

``place_call`` returns at once with a ``queued`` call; the call's life (status callbacks in
Twilio's order, AMD, the TwiML conversation with a scripted callee) runs

* ``mode="inline"`` — when the test calls :meth:`SandboxProvider.run_until_idle`;
* ``mode="thread"`` — in a background thread pool (:meth:`SandboxProvider.wait_idle` joins);
* ``mode="rq"`` — as an RQ job (:func:`devtools.sandbox.jobs.run_sandbox_call`) on the
  ``telephony`` queue, for processes that cannot keep threads alive (RQ work horses exit
  after each job). The job rebuilds the provider from the environment and posts the
  webhooks over HTTP to ``PUBLIC_BASE_URL``.

Live-call status and pending ``update_call`` requests live in a
:class:`~devtools.sandbox.state.CallState` (in memory, or in Redis so another process can
redirect or end a call). Time is a :class:`~devtools.sandbox.clock.Clock`; the default
virtual clock makes ringing and prompts take no real time.
"""

from __future__ import annotations

from devtools.sandbox.calls import SandboxCalls
from devtools.sandbox.messages import SandboxMessages


class SandboxProvider(SandboxCalls, SandboxMessages):
    """:class:`telephony.base.TelephonyProvider` emulating Twilio locally.

    Its plumbing is :class:`~devtools.sandbox.core.SandboxCore`; calls are
    :class:`~devtools.sandbox.calls.SandboxCalls`, SMS
    :class:`~devtools.sandbox.messages.SandboxMessages`.
    """
