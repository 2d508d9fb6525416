"""Supervisor interfaces: the report (attribution, control group), the CLI and the REST API."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from campaign_factories import RUSSIAN_ZONES, add_debtor, phone_for
from campaign_harness import Clock, make_services, run_to_end, work
from click.testing import CliRunner
from flask import Flask
from rq import Queue
from sqlalchemy import select

from campaigns import service
from campaigns.definition import parse_definition
from campaigns.queueing import QUEUE_NAME
from campaigns.report import build_report
from contactcenter.cli import main
from contactcenter.config import Settings
from contactcenter.services import Services
from crm_store.consent import add_do_not_contact
from crm_store.db import Database
from crm_store.models import CampaignTarget, Interaction, Payment
from crm_store.users import create_user, issue_api_token
from ivr.sms import IVR_QUEUE
from telephony import TELEPHONY_QUEUE
from web.api import bp

START = dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC)

DEFINITION_YAML = """\
name: Долг декабрь
channel: voice
audience:
  min_debt: 100
voice:
  flow: debt_reminder
pacing: {calls_per_second: 20, max_concurrent: 20}
attribution_days: 10
"""


def test_report_attributes_payments_and_compares_with_control(
    db: Database, settings: Settings
) -> None:
    clock = Clock(START)
    scenario = {"calls": {"default": {"answer": "human"},
                          "numbers": {phone_for(1): {"answer": "no-answer"}}}}  # fmt: skip
    services, provider = make_services(settings, clock, scenario)
    with db.transaction() as s:
        for n in range(1, 41):
            add_debtor(s, n, today=START.date(), timezone=RUSSIAN_ZONES[n % 11])
    definition = parse_definition(
        {
            "name": "r",
            "channel": "voice",
            "audience": {"min_debt": 1},
            "pacing": {"calls_per_second": 50, "max_concurrent": 50, "global_calls_per_second": 50},
            "retry": {"no_answer": {"retry_after": "1h", "max_attempts": 1}},
            "control_group_percent": 25,
            "attribution_days": 10,
        }
    )
    cid = service.create_campaign(services, definition)
    service.launch(services, cid, start=False)
    run_to_end(services, provider, clock, cid, step_s=300)
    with db.transaction() as s:
        targets = list(s.scalars(select(CampaignTarget).where(CampaignTarget.campaign_id == cid)))
        treated = [t for t in targets if not t.control_group]
        control = [t for t in targets if t.control_group]
        # Two treated consumers pay within the window, one after it; one control pays.
        for t in treated[:2]:
            s.add(Payment(account_id=t.account_id, amount=Decimal("1500.00"),
                          paid_on=START.date() + dt.timedelta(days=3), channel="sbp"))  # fmt: skip
        s.add(Payment(account_id=treated[2].account_id, amount=Decimal(99),
                      paid_on=START.date() + dt.timedelta(days=30), channel="sbp"))  # fmt: skip
        s.add(Payment(account_id=control[0].account_id, amount=Decimal(500),
                      paid_on=START.date() + dt.timedelta(days=1), channel="bank"))  # fmt: skip
        # The IVR marks a right-party check on one call and an opt-out on another.
        call = s.scalars(select(Interaction).where(Interaction.campaign_id == cid)).first()
        assert call is not None
        call.data = {**call.data, "right_party": True}
        opt_out = add_do_not_contact(
            s, str(treated[3].phone), channel="voice", reason="ivr_opt_out"
        )
        opt_out.created_at = START + dt.timedelta(hours=1)  # during the (virtual) campaign
    report = build_report(services, cid)
    assert report.targets == len(treated)
    assert report.control_group == len(control) > 0
    assert report.calls_placed == len(treated)
    assert (
        report.calls_answered
        == report.reached
        == len(treated) - (1 if any(t.phone == phone_for(1) for t in treated) else 0)
    )
    assert report.right_party_contacts == 1
    assert report.opt_outs == 1
    assert (report.contacted.payers, report.contacted.paid) == (2, Decimal("3000.00"))
    assert (report.control.payers, report.control.paid) == (1, Decimal("500.00"))
    assert report.uplift == pytest.approx(2 / len(treated) - 1 / len(control))
    assert report.call_minutes >= 0
    data = report.as_dict()
    assert data["contacted"]["paid"] == "3000.00"
    json.dumps(data, default=str)


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings, redis_client: Any) -> CliRunner:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    return CliRunner()


def test_cli_lifecycle(db: Database, cli_env: CliRunner, tmp_path: Path) -> None:
    with db.transaction() as s:
        for n in range(1, 6):
            add_debtor(s, n, today=dt.datetime.now(dt.UTC).date())
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEFINITION_YAML.replace("min_debt: 100", "min_debt: -1"), encoding="utf-8")
    result = cli_env.invoke(main, ["campaign", "create", str(bad)])
    assert result.exit_code == 2
    assert "line 4: audience.min_debt" in result.output
    good = tmp_path / "good.yaml"
    good.write_text(DEFINITION_YAML, encoding="utf-8")
    result = cli_env.invoke(main, ["campaign", "create", str(good)])
    assert result.exit_code == 0, result.output
    cid = int(result.output.split()[1])
    result = cli_env.invoke(main, ["campaign", "preview", str(cid)])
    assert "audience: 5 accounts" in result.output
    assert "Europe/Moscow" in result.output
    result = cli_env.invoke(main, ["campaign", "launch", str(cid)])
    assert result.exit_code == 0, result.output
    assert "5 targets planned" in result.output
    result = cli_env.invoke(main, ["campaign", "status", str(cid), "--json"])
    status = json.loads(result.output)
    assert (status["status"], status["targets"]["pending"]) == ("running", 5)
    assert cli_env.invoke(main, ["campaign", "pause", str(cid)]).output.strip().endswith("paused")
    result = cli_env.invoke(main, ["campaign", "pause", str(cid)])
    assert result.exit_code == 1
    assert "it is paused" in result.output
    assert cli_env.invoke(main, ["campaign", "resume", str(cid)]).exit_code == 0
    result = cli_env.invoke(main, ["campaign", "status", str(cid)])
    assert "pending=5" in result.output
    assert "eta:" in result.output
    assert cli_env.invoke(main, ["campaign", "cancel", str(cid)]).exit_code == 0
    result = cli_env.invoke(main, ["campaign", "status", str(cid), "--watch"])
    assert "cancelled=5" in result.output
    result = cli_env.invoke(main, ["campaign", "report", str(cid)])
    assert "targets: 5" in result.output
    result = cli_env.invoke(main, ["campaign", "report", "999"])
    assert result.exit_code == 1
    assert "does not exist" in result.output
    assert cli_env.invoke(main, ["campaign", "status", "999"]).exit_code == 1


def _client(settings: Settings) -> Any:
    app = Flask(__name__)
    services = Services(settings.with_overrides(api_token="secret-token"))
    app.extensions["services"] = services
    app.register_blueprint(bp)
    return app.test_client(), services


def test_api_requires_a_token(db: Database, settings: Settings, redis_client: Any) -> None:
    client, services = _client(settings)
    assert client.get("/api/campaigns").status_code == 401
    assert client.get("/api/campaigns", headers={"Authorization": "Bearer nope"}).status_code == 401
    with db.transaction() as s:
        create_user(s, "olga", roles=["supervisor"])
        create_user(s, "op", roles=["operator"])
        olga, op = issue_api_token(s, "olga"), issue_api_token(s, "op")
    assert (
        client.get("/api/campaigns", headers={"Authorization": f"Bearer {olga}"}).status_code == 200
    )
    assert (
        client.get("/api/campaigns", headers={"Authorization": f"Bearer {op}"}).status_code == 403
    )
    services.db.dispose()


def test_api_lifecycle(db: Database, settings: Settings, redis_client: Any) -> None:
    services, provider = make_services(
        settings.with_overrides(api_token="secret-token"), Clock(START)
    )
    app = Flask(__name__)
    app.extensions["services"] = services
    app.register_blueprint(bp)
    client = app.test_client()
    auth = {"Authorization": "Bearer secret-token"}
    with db.transaction() as s:
        for n in range(1, 4):
            add_debtor(s, n, today=dt.datetime.now(dt.UTC).date())
    bad = client.post("/api/campaigns", json={"name": "x", "channel": "fax"}, headers=auth)
    assert bad.status_code == 422
    error = bad.get_json()["error"]
    assert error["code"] == "invalid"
    paths = {i["path"] for i in error["details"]}
    assert {"channel", "audience"} <= paths
    assert client.post("/api/campaigns", data="nope", headers=auth).status_code == 400
    body = {"name": "API", "channel": "sms", "audience": {"min_debt": 1},
            "sms": {"template": "Долг {amount} по ЛС {account}"}}  # fmt: skip
    created = client.post("/api/campaigns", json=body, headers=auth)
    assert created.status_code == 201
    cid = created.get_json()["id"]
    preview = client.get(f"/api/campaigns/{cid}/preview?sample=2", headers=auth).get_json()
    assert (preview["count"], len(preview["sample"])) == (3, 2)
    launched = client.post(f"/api/campaigns/{cid}/launch", headers=auth)
    assert launched.status_code == 202
    assert launched.get_json()["job_id"] == f"cc-launch-{cid}"
    assert client.post(f"/api/campaigns/{cid}/launch", headers=auth).status_code == 409  # queued
    # A worker plans the targets (and starts the dispatcher) with the sandbox provider.
    work(services)
    status = client.get(f"/api/campaigns/{cid}", headers=auth).get_json()
    assert status["status"] in ("running", "completed")
    assert status["total"] == 3
    assert client.post(f"/api/campaigns/{cid}/pause", headers=auth).get_json()["status"] == "paused"
    assert (
        client.post(f"/api/campaigns/{cid}/cancel", headers=auth).get_json()["status"]
        == "cancelled"
    )
    status = client.get(f"/api/campaigns/{cid}", headers=auth).get_json()
    # The SMS were sent before the cancel (09:00 in Moscow): they finish, nothing new starts.
    assert (status["status"], status["targets"]["in_progress"]) == ("cancelled", 3)
    provider.run_until_idle()
    status = client.get(f"/api/campaigns/{cid}", headers=auth).get_json()
    assert status["targets"]["done"] == 3
    assert len(provider.messages) == 3
    report = client.get(f"/api/campaigns/{cid}/report", headers=auth).get_json()
    assert report["targets"] == 3
    assert client.get("/api/campaigns/999", headers=auth).status_code == 404
    assert client.get("/api/campaigns/999/report", headers=auth).status_code == 404
    assert client.post(f"/api/campaigns/{cid}/explode", headers=auth).status_code == 404
    listed = client.get("/api/campaigns", headers=auth).get_json()["items"]
    assert listed[0]["id"] == cid
    services.db.dispose()


def test_worker_command_runs_a_burst(cli_env: CliRunner, settings: Settings) -> None:
    result = cli_env.invoke(main, ["worker", "--burst", "--name", "test-worker"])
    assert result.exit_code == 0, result.output
    assert "worker test-worker listening on campaigns, ivr, telephony, imports" in result.output


def test_default_worker_serves_campaign_ivr_and_telephony_queues(
    cli_env: CliRunner, settings: Settings, redis_client: Any
) -> None:
    """The sandbox provider's call and SMS lives run on the telephony queue: a default
    worker must take jobs from it as well as from the campaigns and ivr queues."""
    names = [QUEUE_NAME, IVR_QUEUE, TELEPHONY_QUEUE]
    assert len(set(names)) == 3
    jobs = [
        Queue(name, connection=redis_client).enqueue("operator.add", n, 40)
        for n, name in enumerate(names)
    ]
    other = Queue("elsewhere", connection=redis_client).enqueue("operator.add", 1, 1)
    result = cli_env.invoke(main, ["worker", "--burst", "--name", "all-queues"])
    assert result.exit_code == 0, result.output
    for n, job in enumerate(jobs):
        job.refresh()
        assert job.is_finished, (job.origin, job.get_status())
        assert job.return_value() == n + 40
    other.refresh()
    assert other.is_queued  # only our queues are served


def test_worker_command_reports_an_unreachable_redis(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    result = CliRunner().invoke(main, ["worker", "--burst"])
    assert result.exit_code == 3
    assert "not reachable" in result.output
