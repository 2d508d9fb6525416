"""gunicorn server hooks, loaded by ``gunicorn -c python:contactcenter.gunicorn_conf …``.

With ``PROMETHEUS_MULTIPROC_DIR`` set, each worker writes its metrics to files there
(:mod:`contactcenter.metrics`); when a worker exits, :func:`child_exit` marks it dead so its
live gauges (media streams open) leave the sum. The directory must exist and be empty when
the server starts (the deployment's entry point wipes it). Other gunicorn settings come from
the command line or ``GUNICORN_CMD_ARGS``, except one: gunicorn's control socket (new in
gunicorn 25, a Unix socket in the user's home) is off — the image's user has no writable home,
and nothing here uses it.

:func:`post_worker_init` freezes what start-up built (:func:`freeze_startup_objects`): the
app holds ~220,000 long-lived objects (flows, SQLAlchemy mappers, OpenAPI models), and
every full collection of Python's garbage collector walked them all (~120 ms, every ~75
console requests: the p95 tail of docs/benchmarks.md's console figures).
"""

from __future__ import annotations

import gc
from typing import Any

from prometheus_client import multiprocess

from contactcenter.metrics import multiprocess_mode

control_socket_disable = True


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook: a worker exited; drop its live gauges from the shared metrics."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(worker.pid)


def freeze_startup_objects() -> None:
    """Collect once, then move every object alive now to the collector's permanent
    generation (:func:`gc.freeze`): later collections skip them. For a process whose
    start-up objects live as long as it does (a server worker after loading the app)."""
    gc.collect()
    gc.freeze()


def post_worker_init(worker: Any) -> None:
    """gunicorn hook: the worker loaded the app; freeze the start-up objects."""
    freeze_startup_objects()
