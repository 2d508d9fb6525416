"""A real forking RQ worker for the crash test (run as a subprocess).

Usage: ``python campaign_crash_worker.py DATABASE_URL REDIS_URL NOW_ISO``. Runs the
campaign queue in burst mode with :class:`LedgerProvider` and a fixed clock.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from campaign_ledger import LedgerProvider
from rq import Queue, Worker

from campaigns.queueing import QUEUE_NAME
from contactcenter.config import Settings
from contactcenter.services import Services, install_services


def main() -> None:
    """Run the worker until the queue is empty (or until the test kills it)."""
    database_url, redis_url, now_iso = sys.argv[1:4]
    now = dt.datetime.fromisoformat(now_iso)
    services = Services(
        Settings(
            database_url=database_url, redis_url=redis_url, public_base_url="http://localhost"
        ),
        clock=lambda: now,
    )
    services.telephony = LedgerProvider(services)
    install_services(services)
    queue = Queue(QUEUE_NAME, connection=services.redis)
    Worker([queue], connection=services.redis).work(burst=True, logging_level="WARNING")


if __name__ == "__main__":
    main()
