"""Each flow file that goes live is compared with the last one: changed flows are audited."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from contactcenter.config import Settings
from crm_store.db import Database
from crm_store.models import AuditLog
from ivr.startup import SHARED_PARTS
from webhooks import create_app, services_of

ROOT = Path(__file__).resolve().parents[2]


def _start(settings: Settings, flows: Path) -> None:
    app = create_app(settings.with_overrides(flows_file=str(flows)))
    services_of(app).db.dispose()


def _flow_rows(db: Database) -> list[tuple[str, str, str, Any, Any, str | None]]:
    with db.session() as s:
        rows = s.execute(
            select(
                AuditLog.entity_id,
                AuditLog.action,
                AuditLog.actor,
                AuditLog.before,
                AuditLog.after,
                AuditLog.reason,
            )
            .where(AuditLog.entity == "flow")
            .order_by(AuditLog.id)
        ).all()
    return [tuple(r) for r in rows]


def test_a_deployed_flow_file_is_audited_once_per_change(
    settings: Settings, db: Database, redis_client: Any, tmp_path: Path
) -> None:
    shipped = (ROOT / "call_flows.yaml").read_text(encoding="utf-8")
    flows = tmp_path / "flows.yaml"
    flows.write_text(shipped, encoding="utf-8")

    _start(settings, flows)
    first = _flow_rows(db)
    names = {row[0] for row in first}
    assert {"hotline", "debt_reminder", SHARED_PARTS} <= names
    assert {row[1] for row in first} == {"insert"}
    assert {row[2] for row in first} == {"deploy"}
    assert all(row[5] == f"FLOWS_FILE {flows}" for row in first)
    hotline = next(row for row in first if row[0] == "hotline")
    assert len(hotline[4]["sha256"]) == 64
    assert hotline[4]["steps"] > 10

    _start(settings, flows)  # a restart (or another instance) with the same file
    assert _flow_rows(db) == first

    marker = "Inbound hotline - identification, readings, balance, payment, outages."
    assert marker in shipped
    flows.write_text(shipped.replace(marker, "Входящая линия."), encoding="utf-8")
    _start(settings, flows)
    changed = _flow_rows(db)[len(first) :]
    assert [(row[0], row[1]) for row in changed] == [("hotline", "update")]
    before, after = changed[0][3], changed[0][4]
    assert before == hotline[4]
    assert after["description"] == "Входящая линия."
    assert after["sha256"] != before["sha256"]


def test_a_flow_removed_from_the_file_is_audited_as_deleted(
    settings: Settings, db: Database, redis_client: Any, tmp_path: Path
) -> None:
    two = tmp_path / "two.yaml"
    two.write_text(
        "flows:\n"
        "  main:\n    start: bye\n    steps:\n      bye: {type: hangup}\n"
        "  spare:\n    start: bye\n    steps:\n      bye: {type: hangup}\n",
        encoding="utf-8",
    )
    one = tmp_path / "one.yaml"
    one.write_text("flows:\n  main:\n    start: bye\n    steps:\n      bye: {type: hangup}\n")
    _start(settings, two)
    _start(settings, one)
    tail = [(row[0], row[1], row[4]) for row in _flow_rows(db)][-1:]
    assert tail == [("spare", "delete", None)]
    _start(settings, two)  # brought back: a new insert
    assert [(row[0], row[1]) for row in _flow_rows(db)][-1:] == [("spare", "insert")]


def test_an_unmigrated_database_does_not_stop_the_server(
    settings: Settings, redis_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    empty = settings.with_overrides(database_url=f"sqlite:///{tmp_path / 'empty.db'}")
    with caplog.at_level(logging.WARNING, logger="ivr.startup"):
        _start(empty, ROOT / "call_flows.yaml")
    assert "flow versions not audited (database)" in caplog.text
