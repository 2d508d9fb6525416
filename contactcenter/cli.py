"""The ``contactcenter`` command line, grouped by area.

Each area owns its commands in its own package (``crm_store.cli``, ``ivr.cli`` …); this
module, on top of every package, assembles them and holds ``serve`` and ``worker``, the two
commands that run a wired process of the application (:mod:`contactcenter.wiring`).
"""

from __future__ import annotations

import sys
import threading

import click
from redis.exceptions import ConnectionError as RedisConnectionError
from rq import Queue, SimpleWorker, Worker
from werkzeug.serving import run_simple

from campaigns.cli import campaign
from campaigns.queueing import QUEUE_NAME as CAMPAIGN_QUEUE
from contactcenter.cli_support import settings_or_exit
from contactcenter.config import ConfigError
from contactcenter.ingest import IMPORT_QUEUE
from contactcenter.logs import configure_logging
from contactcenter.services import install_services
from contactcenter.wiring import build_services
from crm_store.cli import db_group, users_group
from crm_store.cli_contacts import consent_group, dnc_group
from crm_store.cli_data import import_group
from devtools.cli import demo_group, simulate
from ivr.cli import flows, recordings
from ivr.crm import sweep_records
from ivr.recordings import schedule_recordings_purge
from ivr.sms import IVR_QUEUE
from speech.cli import speech
from speech.models_cli import models_group
from telephony import TELEPHONY_QUEUE
from webhooks import create_app

__all__ = ["default_worker_queues", "main", "serve", "worker"]


@click.group()
@click.version_option(package_name="contactcenter")
def main() -> None:
    """Contact-center and IVR backend for electricity retailers."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--debug/--no-debug", default=False)
def serve(host: str, port: int, debug: bool) -> None:
    """Run the web app (webhooks, media streams, API) on HOST:PORT."""
    settings = settings_or_exit()
    try:
        app = create_app(settings)
    except ConfigError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"serving on http://{host}:{port}  (health: http://{host}:{port}/healthz)")
    run_simple(host, port, app, threaded=True, use_reloader=debug, use_debugger=debug)


def default_worker_queues() -> list[str]:
    """The queues ``contactcenter worker`` serves without ``--queue``: campaigns, ivr,
    telephony (the sandbox provider's call and SMS lives) and imports (files posted to
    ``/api/imports``)."""
    return [CAMPAIGN_QUEUE, IVR_QUEUE, TELEPHONY_QUEUE, IMPORT_QUEUE]


@main.command("worker")
@click.option(
    "--queue",
    "queues",
    multiple=True,
    help="Queue to listen to (repeatable; default: campaigns, ivr, telephony, imports).",
)
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
@click.option("--name", default=None, help="Worker name (default: host and pid).")
@click.option(
    "--fork/--no-fork",
    default=False,
    help="Run each job in a forked child (RQ's Worker) instead of in the worker process "
    "itself (the default: RQ's SimpleWorker).",
)
def worker(queues: tuple[str, ...], burst: bool, name: str | None, fork: bool) -> None:
    """Run an RQ worker with the scheduler on our queues (`rq worker --with-scheduler`).

    Jobs run in the worker process itself (RQ's ``SimpleWorker``): our jobs are short,
    idempotent and re-read their state, and a fork per job cost ~27 ms of CPU against ~5 ms
    (measured with the app loaded), with a new database connection each time. A job's
    timeout still applies (SIGALRM). A worker killed mid-job takes no other job with it (it
    runs one at a time, as a forking worker does); RQ's registry cleanup moves the job it
    held to the failed registry, from which the campaign dispatcher enqueues a dial job
    again. ``--fork`` gives each job a child
    process of its own (isolation from leaks and crashes, at that cost).

    By default it serves campaign jobs, the IVR's jobs (SMS a call asked for, the start and
    download of call recordings, the daily recordings retention) and the sandbox provider's
    call and SMS lives (the ``telephony`` queue). Its jobs run with the wired
    :class:`~contactcenter.services.Services` (the configured telephony provider). A worker
    of the ``ivr`` queue makes sure the retention job is scheduled at the next
    ``RECORDING_PURGE_AT`` (one job, however many workers start) and, in a background
    thread, writes the IVR steps that webhooks queued in Redis to the CRM in batches
    (:func:`ivr.crm.sweep_records`).
    """
    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    services = build_services(settings)
    install_services(services)
    names = list(queues) or default_worker_queues()
    try:
        services.redis.ping()
    except RedisConnectionError as exc:
        click.echo(f"error: Redis at {settings.redis_url} is not reachable ({exc})", err=True)
        sys.exit(3)
    sweep_stop = threading.Event()
    if IVR_QUEUE in names:
        at = schedule_recordings_purge(services)
        click.echo(f"call recordings retention scheduled at {at:%Y-%m-%d %H:%M} UTC")
        threading.Thread(target=sweep_records, args=(services, sweep_stop), daemon=True).start()
    connection = services.redis
    worker_class = Worker if fork else SimpleWorker
    rq_worker = worker_class(
        [Queue(n, connection=connection) for n in names], connection=connection, name=name
    )
    click.echo(f"worker {rq_worker.name} listening on {', '.join(names)}")
    try:
        rq_worker.work(with_scheduler=True, burst=burst, logging_level=settings.log_level)
    finally:
        sweep_stop.set()  # a burst worker's sweep ends with it


for _command in (
    speech,
    flows,
    recordings,
    db_group,
    users_group,
    models_group,
    import_group,
    demo_group,
    simulate,
    campaign,
    dnc_group,
    consent_group,
):
    main.add_command(_command)
