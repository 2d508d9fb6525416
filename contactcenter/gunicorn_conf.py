"""gunicorn server hooks, loaded by ``gunicorn -c python:contactcenter.gunicorn_conf …``.

With ``PROMETHEUS_MULTIPROC_DIR`` set, each worker writes its metrics to files there
(:mod:`contactcenter.metrics`); when a worker exits, :func:`child_exit` marks it dead so its
live gauges (media streams open) leave the sum. The directory must exist and be empty when
the server starts (the deployment's entry point wipes it). Other gunicorn settings come from
the command line or ``GUNICORN_CMD_ARGS``, except one: gunicorn's control socket (new in
gunicorn 25, a Unix socket in the user's home) is off — the image's user has no writable home,
and nothing here uses it.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import multiprocess

from contactcenter.metrics import multiprocess_mode

control_socket_disable = True


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook: a worker exited; drop its live gauges from the shared metrics."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(worker.pid)
