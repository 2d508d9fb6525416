"""A new user's first campaign: the shipped examples select demo debtors; an empty
audience is reported at launch (CLI and API)."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from flask import Flask

from campaigns import service
from campaigns.definition import flow_names_in, load_definition, parse_definition
from contactcenter.cli import main
from contactcenter.config import Settings
from contactcenter.services import Services
from crm_store.db import Database
from devtools.demo import seed_demo
from web.api import bp

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ROOT / "call_flows.yaml"


def _doc_example() -> dict[str, Any]:
    text = (ROOT / "docs" / "campaigns.md").read_text(encoding="utf-8")
    block = re.search(r"## A campaign file.*?```yaml\n(.*?)```", text, re.DOTALL)
    assert block is not None
    loaded: dict[str, Any] = yaml.safe_load(block.group(1))
    return loaded


def test_shipped_campaign_examples_select_demo_debtors(
    db: Database, settings: Settings, redis_client: Any
) -> None:
    seed_demo(db, consumers=200, seed=1)
    services = Services(settings)
    flows = flow_names_in(str(FLOWS))
    definitions = [
        load_definition(ROOT / "docs" / "examples" / "debt_campaign.yaml", flow_names=flows),
        parse_definition(_doc_example(), flow_names=flows),
    ]
    try:
        for definition in definitions:
            cid = service.create_campaign(services, definition)
            assert service.preview(services, cid, sample_size=0).count > 0, definition.name
    finally:
        services.db.dispose()


NOBODY = {"name": "Никого", "channel": "sms", "audience": {"min_debt": 10_000_000},
          "sms": {"template": "Долг {amount} по ЛС {account}"}}  # fmt: skip


def test_a_launch_with_zero_targets_says_so_on_the_cli(
    monkeypatch: pytest.MonkeyPatch,
    db: Database,
    settings: Settings,
    redis_client: Any,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    file = tmp_path / "nobody.yaml"
    file.write_text(yaml.safe_dump(NOBODY, allow_unicode=True), encoding="utf-8")
    runner = CliRunner()
    created = runner.invoke(main, ["campaign", "create", str(file)])
    assert created.exit_code == 0, created.output
    cid = int(created.output.split()[1])
    result = runner.invoke(main, ["campaign", "launch", str(cid)])
    assert result.exit_code == 0, result.output
    assert f"warning: campaign {cid} has 0 targets" in result.output


def test_a_launch_with_zero_targets_says_so_in_the_api(
    db: Database, settings: Settings, redis_client: Any
) -> None:
    app = Flask(__name__)
    services = Services(settings.with_overrides(api_token="secret-token"))
    app.extensions["services"] = services
    app.register_blueprint(bp)
    client = app.test_client()
    auth = {"Authorization": "Bearer secret-token"}
    try:
        cid = client.post("/api/campaigns", json=NOBODY, headers=auth).get_json()["id"]
        launched = client.post(f"/api/campaigns/{cid}/launch", headers=auth)
        assert launched.status_code == 202
        body = launched.get_json()
        assert body["audience"] == 0
        assert "0 targets" in body["warning"]
    finally:
        services.db.dispose()


def test_watch_prints_a_line_per_refresh_when_not_a_terminal(
    monkeypatch: pytest.MonkeyPatch, db: Database, settings: Settings, redis_client: Any
) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    services = Services(settings)
    try:
        cid = service.create_campaign(services, parse_definition(NOBODY))
        service.launch(services, cid, start=False)
        # The campaign runs until a supervisor cancels it, a second from now.
        timer = threading.Timer(1.0, service.cancel, args=(services, cid))
        timer.start()
        result = CliRunner().invoke(
            main, ["campaign", "status", str(cid), "--watch", "--interval", "0.2"]
        )
        timer.join()
    finally:
        services.db.dispose()
    assert result.exit_code == 0, result.output
    lines = [x for x in result.output.splitlines() if x.startswith(f"campaign {cid} [")]
    assert len(lines) >= 3, result.output
    assert lines[0].startswith(f"campaign {cid} [running]")
    assert lines[-1].startswith(f"campaign {cid} [cancelled]")
