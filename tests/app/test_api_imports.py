"""``/api/imports``: files pushed by a billing system, imported by a real RQ worker."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from rq import Queue, SimpleWorker
from sqlalchemy import func, select

from contactcenter.config import Settings
from contactcenter.ingest import IMPORT_QUEUE, import_progress
from contactcenter.services import install_services
from crm_store.db import Database
from crm_store.ledger import add_charge, balance
from crm_store.models import Account, Charge, Consumer, ImportRun, Payment
from crm_store.users import create_user, issue_api_token
from webhooks import create_app, services_of

AUTH = {"Authorization": "Bearer secret-token"}
REGISTRY = (
    "Лицевой счёт;Сумма;Дата платежа;№ платежа;Агент\r\n"
    "5500112233;1\u00a0234,56;01.12.2026 10:15;SB-1;ПАО Сбербанк\r\n"
    "5500112233;100.00;01.12.2026;SB-2;СБП\r\n"
    "9900000000;50,00;01.12.2026;SB-3;Почта России\r\n"
    "abc;x;32.12.2026;;\r\n"
).encode("cp1251")
ACCRUALS = "Лицевой счёт;Период;Начислено\n5500112233;2026-10;1 000,00\n".encode()


@pytest.fixture
def app(settings: Settings, db: Database, redis_client: Any, tmp_path: Path) -> Iterator[Flask]:
    application = create_app(
        settings.with_overrides(api_token="secret-token", imports_dir=str(tmp_path / "imports"))
    )
    install_services(services_of(application))  # what the worker process has
    yield application
    services_of(application).db.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def account(db: Database) -> int:
    with db.transaction() as s:
        row = Account(
            consumer=Consumer(full_name="Иванов Иван Иванович"),
            number_raw="5500112233",
            number="5500112233",
            timezone="Europe/Moscow",
        )
        s.add(row)
        s.flush()
        add_charge(
            s, row.id, period=date(2026, 10, 1), amount=Decimal(2000), due_date=date(2026, 11, 10)
        )
        return int(row.id)


def work(app: Flask) -> int:
    """Run the queued import jobs with a real RQ worker (burst)."""
    services = services_of(app)
    queue = Queue(IMPORT_QUEUE, connection=services.redis)
    count = int(queue.count)
    SimpleWorker([queue], connection=services.redis).work(burst=True, logging_level="WARNING")
    return count


def post_file(client: FlaskClient, kind: str, data: bytes, name: str = "file.csv") -> Any:
    return client.post(
        f"/api/imports/{kind}",
        data={"file": (io.BytesIO(data), name)},
        headers=AUTH,
        content_type="multipart/form-data",
    )


def test_requires_a_supervisor_token(client: FlaskClient, db: Database) -> None:
    assert client.post("/api/imports/payments").status_code == 401
    with db.transaction() as s:
        create_user(s, "op", roles=["operator"])
        token = issue_api_token(s, "op")
    denied = client.get("/api/imports", headers={"Authorization": f"Bearer {token}"})
    assert denied.status_code == 403
    assert denied.get_json()["error"]["message"] == (
        "the imports.write permission is required (your roles: operator)"
    )


def test_a_payments_registry_is_queued_then_imported_by_a_worker(
    app: Flask, client: FlaskClient, db: Database, account: int, tmp_path: Path
) -> None:
    answer = post_file(client, "payments", REGISTRY, "реестр 01.12.csv")
    assert answer.status_code == 202
    body = answer.get_json()
    run_id = body["id"]
    assert body["status"] == "queued"
    assert answer.headers["Location"] == body["url"] == f"/api/imports/{run_id}"
    stored = tmp_path / "imports" / f"{run_id}.csv"
    assert stored.read_bytes() == REGISTRY
    queued = client.get(body["url"], headers=AUTH).get_json()
    assert (queued["status"], queued["kind"], queued["source"]) == (
        "queued",
        "payments",
        "реестр 01.12.csv",
    )
    assert queued["actor"] == "api:api-token"
    with db.transaction() as s:  # nothing is imported before a worker runs the job
        assert s.scalar(select(func.count()).select_from(Payment)) == 0

    assert work(app) == 1
    done = client.get(body["url"], headers=AUTH).get_json()
    assert done["status"] == "completed", done
    assert done["progress"]["percent"] == 100
    report = done["report"]
    assert report["rows_read"] == 4
    assert report["rows_rejected"] == 1
    assert report["counts"]["recorded"] == 2
    assert report["counts"]["kept_aside"] == 1
    assert done["rows_done"] >= 3
    assert done["batches_committed"] == 1
    assert not stored.exists()  # the upload is deleted once imported
    progress = import_progress(services_of(app).redis, run_id)
    assert progress is not None
    assert progress["total"] == progress["done"] == len(REGISTRY)
    with db.transaction() as s:
        assert balance(s, account, date(2026, 12, 5)).debt == Decimal("665.44")

    again = post_file(client, "payments", REGISTRY).get_json()["id"]
    work(app)
    second = client.get(f"/api/imports/{again}", headers=AUTH).get_json()
    assert second["status"] == "completed"
    assert second["report"]["counts"].get("recorded", 0) == 0
    assert second["report"]["counts"]["unchanged"] == 2
    with db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Payment)) == 2
    first = client.get("/api/imports?limit=1", headers=AUTH).get_json()
    listed = first["items"]
    assert [r["id"] for r in listed] == [again]
    assert listed[0]["report"] is None
    older = client.get(f"/api/imports?limit=1&cursor={first['next_cursor']}", headers=AUTH)
    assert [r["id"] for r in older.get_json()["items"]] == [run_id]


def test_a_raw_body_of_accruals_and_a_consumer_file(
    app: Flask, client: FlaskClient, db: Database, account: int
) -> None:
    answer = client.post(
        "/api/imports/charges?filename=accruals.csv",
        data=ACCRUALS,
        headers={**AUTH, "Content-Type": "text/csv; charset=utf-8"},
    )
    assert answer.status_code == 202
    consumers = (
        Path(__file__).resolve().parents[1] / "fixtures" / "csv" / "consumers_mixed.csv"
    ).read_bytes()
    second = post_file(client, "consumers", consumers, "consumers.csv")
    assert second.status_code == 202
    assert work(app) == 2
    charges = client.get(answer.get_json()["url"], headers=AUTH).get_json()
    assert charges["status"] == "completed", charges
    assert charges["report"]["counts"]["created"] == 1
    with db.transaction() as s:
        assert (
            s.scalar(select(func.count()).select_from(Charge).where(Charge.source == "import")) >= 1
        )
    people = client.get(second.get_json()["url"], headers=AUTH).get_json()
    assert people["status"] == "completed", people
    assert people["report"]["counts"]["created"] > 0
    assert people["report"]["lines"][0] == "Файл: " + str(
        Path(services_of(app).settings.imports_dir) / f"{people['id']}.csv"
    )


def test_a_file_that_is_not_a_registry_fails_with_one_line(
    app: Flask, client: FlaskClient, db: Database
) -> None:
    run_id = post_file(client, "payments", b"\x00\x01\x02binary\xff" * 50, "x.csv").get_json()["id"]
    work(app)
    failed = client.get(f"/api/imports/{run_id}", headers=AUTH).get_json()
    assert failed["status"] == "failed"
    assert failed["error"]
    assert "\n" not in failed["error"]
    with db.transaction() as s:
        assert s.get(ImportRun, run_id).status == "failed"


def test_bad_requests_answer_json(app: Flask, client: FlaskClient, db: Database) -> None:
    unknown = post_file(client, "meters", b"x")
    assert unknown.status_code == 404
    assert "unknown import kind" in unknown.get_json()["error"]["message"]
    empty = post_file(client, "payments", b"")
    assert (empty.status_code, empty.get_json()["error"]["message"]) == (400, "the file is empty")
    with db.transaction() as s:  # the refused upload left a failed run, nothing queued
        assert s.scalars(select(ImportRun.status)).all() == ["failed"]
    assert work(app) == 0
    no_file = client.post("/api/imports/payments", json={"a": 1}, headers=AUTH)
    assert no_file.status_code == 400
    assert "multipart field 'file'" in no_file.get_json()["error"]["message"]
    missing = client.get("/api/imports/999999", headers=AUTH)
    assert (missing.status_code, missing.get_json()) == (
        404,
        {
            "error": {
                "code": "not_found",
                "message": "import 999999 does not exist",
                "details": None,
            }
        },
    )
    wrong_method = client.put("/api/imports/payments", headers=AUTH)
    assert wrong_method.status_code == 405
    assert wrong_method.is_json
    assert wrong_method.get_json()["error"]["code"] == "method_not_allowed"
    nowhere = client.get("/api/nowhere", headers=AUTH)
    assert nowhere.status_code == 404
    assert nowhere.is_json


def test_uploads_over_the_limit_are_refused_with_413(
    settings: Settings, db: Database, redis_client: Any, tmp_path: Path
) -> None:
    app = create_app(
        settings.with_overrides(
            api_token="secret-token", imports_dir=str(tmp_path / "i"), import_max_mb=1
        )
    )
    client = app.test_client()
    small = post_file(client, "payments", REGISTRY)
    assert small.status_code == 202
    big = client.post(
        "/api/imports/payments",
        data=b"5500112233;1,00;01.12.2026;X;\n" * 40_000,
        headers={**AUTH, "Content-Type": "text/csv"},
    )
    assert big.status_code == 413
    assert big.get_json()["error"] == {
        "code": "too_large",
        "message": "request entity too large",
        "details": None,
    }
    services_of(app).db.dispose()
