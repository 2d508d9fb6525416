"""A consumer file pushed to ``/api/imports/consumers`` carries the grid link columns too."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from rq import Queue, SimpleWorker
from sqlalchemy import select

from contactcenter.config import Settings
from contactcenter.ingest import IMPORT_QUEUE
from contactcenter.services import install_services
from crm_store.db import Database
from crm_store.importer import HEADERS
from crm_store.models import Account
from webhooks import create_app, services_of

AUTH = {"Authorization": "Bearer secret-token"}


@pytest.fixture
def app(settings: Settings, db: Database, redis_client: Any, tmp_path: Path) -> Iterator[Flask]:
    application = create_app(
        settings.with_overrides(api_token="secret-token", imports_dir=str(tmp_path / "imports"))
    )
    install_services(services_of(application))  # what the worker process has
    yield application
    services_of(application).db.dispose()


def test_a_pushed_consumer_file_sets_the_grid_link(app: Flask, db: Database) -> None:
    body = (
        ",".join(HEADERS[2]) + "\n"
        '7700112233,Иванов Иван Иванович,,"г. Москва, ул. Садовая, д. 15, кв. 48",'
        "Europe/Moscow,SN-1,6,общая,,,,,Ф-12,ПС Северная\n"
    ).encode()
    answer = app.test_client().post(
        "/api/imports/consumers",
        data={"file": (io.BytesIO(body), "consumers.csv")},
        headers=AUTH,
        content_type="multipart/form-data",
    )
    assert answer.status_code == 202, answer.get_json()
    services = services_of(app)
    queue = Queue(IMPORT_QUEUE, connection=services.redis)
    SimpleWorker([queue], connection=services.redis).work(burst=True, logging_level="WARNING")
    run = app.test_client().get(answer.get_json()["url"], headers=AUTH).get_json()
    assert run["status"] == "completed", run
    assert run["report"]["counts"]["created"] == 1
    with db.transaction() as s:
        account = s.scalars(select(Account)).one()
        assert (account.feeder, account.substation) == ("Ф-12", "ПС Северная")
