"""The web layer: one Flask blueprint per module, composed by :func:`webhooks.create_app`.

- :mod:`web.voice` — the hotline's voice webhooks and the call status callbacks (``/voice/…``);
- :mod:`web.sms` — the number's Messaging URL and SMS status callbacks (``/sms/…``);
- :mod:`web.media` — the ``/media-stream`` websocket of Twilio Media Streams;
- :mod:`web.api_common` — what the ``/api`` blueprints share (tokens, scope, errors, pages);
- :mod:`web.api` — campaigns (``/api/campaigns``);
- :mod:`web.api_consumers`, :mod:`web.api_cases`, :mod:`web.api_users` — the CRM over REST;
- :mod:`web.api_outages`, :mod:`web.api_contacts`, :mod:`web.api_imports` — outages, do-not-contact
  and consents, billing files pushed in;
- :mod:`web.api_docs` — ``/api/openapi.json`` and ``/api/docs``;
- :mod:`web.console` — the supervisors' and operators' web console (``/console``);
- :mod:`web.common` — what the views share: the app's services, the Twilio signature check,
  the outage guard and the TwiML response.

Views stay thin: they check the request, hand it to a plain module (``ivr``, ``campaigns``,
``crm_store``) and return what it produced.
"""
