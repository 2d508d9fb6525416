"""The web layer: one Flask blueprint per module, composed by :func:`webhooks.create_app`.

- :mod:`web.voice` — the hotline's voice webhooks and the call status callbacks (``/voice/…``);
- :mod:`web.sms` — the number's Messaging URL and SMS status callbacks (``/sms/…``);
- :mod:`web.media` — the ``/media-stream`` websocket of Twilio Media Streams;
- :mod:`web.api` — the supervisors' REST API (``/api/campaigns``);
- :mod:`web.api_outages` — planned and emergency outages pushed in (``/api/outages``);
- :mod:`web.common` — what the views share: the app's services, the Twilio signature check,
  the outage guard and the TwiML response.

Views stay thin: they check the request, hand it to a plain module (``ivr``, ``campaigns``,
``crm_store``) and return what it produced.
"""
