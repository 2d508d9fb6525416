"""Developer tools: they sit on top of the application and may import any package.

* :mod:`devtools.sandbox` — a local Twilio (TwiML interpreter, status callbacks, AMD, SMS,
  Media Streams, the REST API subset our adapter uses), wired as the ``sandbox`` provider
* :mod:`devtools.simulator` — simulated inbound calls through the real webhooks
* :mod:`devtools.script` — simulator scripts (steps and expectations)
* :mod:`devtools.flow_coverage` — which IVR flow steps and branches simulated calls visit
  (:mod:`devtools.flow_coverage_plugin`: the pytest plugin that records them)
* :mod:`devtools.demo` — deterministic demo data (``seed_demo``)
* :mod:`devtools.cli` — ``contactcenter simulate …`` and ``contactcenter demo seed``

See ``devtools/README.md`` for the sandbox's scenario format and how tests use it.
"""
