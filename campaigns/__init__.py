"""Outbound campaigns: definitions, audience, compliance, pacing, and their RQ jobs.

The package's public API is its modules; other packages import names from them
(``from campaigns.status import subscribe``), never from the package itself:

* what a campaign is: :mod:`campaigns.definition`, :mod:`campaigns.audience`,
  :mod:`campaigns.planner`, :mod:`campaigns.compliance` (over :mod:`contactcenter.calendar_ru`),
  :mod:`campaigns.pacing`, :mod:`campaigns.sms`, :mod:`campaigns.keywords`;
* its RQ jobs: :mod:`campaigns.dispatcher`, :mod:`campaigns.dialing` (with
  :mod:`campaigns.facts`), :mod:`campaigns.reconcile`, over :mod:`campaigns.attempts` and
  :mod:`campaigns.queueing` (``QUEUE_NAME``, the queue ``contactcenter worker`` listens to);
* status callbacks: :mod:`campaigns.status` — ``subscribe(hooks)`` registers the campaign
  handlers of call, AMD and SMS statuses (the composition root calls it), and the inbound SMS
  keywords (``handle_inbound_sms``, ``keyword_reply``); :mod:`campaigns.outcomes`;
* supervisor operations: :mod:`campaigns.service`, :mod:`campaigns.report`, the command
  group ``campaigns.cli.campaign`` and the ``/api/campaigns`` blueprint over them;
* the exceptions: :mod:`campaigns.errors`.
"""

from __future__ import annotations

__all__: list[str] = []
