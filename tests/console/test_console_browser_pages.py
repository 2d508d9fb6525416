"""The console's work pages in a real browser (headless Chromium through Playwright) against
the real app served live: the issue's "done when" —

* a supervisor creates a campaign from the form, launches it and watches it progress on the
  page without a reload (the campaign's jobs run on RQ with the sandbox provider and a
  virtual clock, as the campaign tests drive them);
* a consumer's calls, SMS and recordings appear in one timeline, and the recording plays
  (a recorded hotline call made by the call simulator, an SMS through the signed webhook);
* a region-scoped user cannot reach another region's consumer by page, search or export —

and a screenshot of every page (``var/screenshots/console-*.png``). No page breaks the
Content-Security-Policy (no inline scripts or styles): the browser's CSP reports fail a test.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rq import Queue, SimpleWorker
from sqlalchemy import select

from crm_store.db import Database
from crm_store.models import Account, Campaign, Interaction
from devtools.sandbox import WsgiTransport
from devtools.sandbox.transport import signed_request
from devtools.simulator import Simulator
from ivr.sms import IVR_QUEUE
from tests.campaigns.campaign_factories import add_debtor
from tests.campaigns.campaign_harness import Clock, dispose_all, make_services, step, work
from tests.console.conftest import LiveServer
from tests.console.pages_fixtures import (
    MOSCOW,
    TVER,
    add_account,
    add_call,
    add_campaign,
    add_ledger,
    add_meter,
    add_reading,
    add_sms,
    earlier_today,
)
from webhooks import services_of

pytestmark = [pytest.mark.integration, pytest.mark.slow]

IN_WINDOW = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)  # Friday, 12:00 in Moscow
HOTLINE = "+78001234567"
CALLER = "+79161234567"
CAMPAIGN_YAML = """\
name: Долги ноября
channel: voice
audience:
  min_debt: 100
  regions: [Москва]
voice:
  flow: debt_reminder
  amd_policy: hangup_retry
retry:
  busy: {retry_after: 30m, max_attempts: 3}
  no_answer: {retry_after: 2h, max_attempts: 2}
pacing:
  calls_per_second: 50
  max_concurrent: 50
  global_calls_per_second: 50
  global_max_concurrent: 100
"""
SCENARIO = {
    "calls": {
        "default": {"answer": "human", "ring_s": 3},
        "numbers": {"+79160000003": {"answer": "busy"}, "+79160000005": {"answer": "no-answer"}},
    }
}


@pytest.fixture
def csp_errors(browser_page: Any) -> Iterator[list[str]]:
    """The page's console messages about the Content-Security-Policy (must stay empty)."""
    found: list[str] = []
    browser_page.on(
        "console",
        lambda msg: found.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    return found


def _wait(page: Any, expression: str, timeout_s: float = 20.0) -> None:
    """Wait until the JavaScript ``expression`` is true in the page (polled with
    ``page.evaluate``: Playwright's ``wait_for_function`` evaluates its predicate with
    ``eval``, which the console's CSP forbids)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"the page never got to: {expression}")
        page.wait_for_timeout(100)


def _logout(page: Any, live: LiveServer) -> None:
    page.goto(f"{live.url}/console/password")
    page.click("form[action='/console/logout'] button")


# --------------------------------------------------------------------------- campaigns


def test_a_supervisor_launches_a_campaign_and_watches_it_progress(
    live_server: LiveServer,
    browser_page: Any,
    login_as: Callable[..., None],
    make_user: Callable[..., str],
    screenshot: Callable[[Any, str], Path],
    csp_errors: list[str],
    db: Database,
    tmp_path: Path,
) -> None:
    page = browser_page
    clock = Clock(IN_WINDOW)
    # the campaign's worker: RQ in this process, the sandbox provider, a virtual clock (it
    # starts from an empty Redis, so it is made before anyone logs in)
    services, provider = make_services(live_server.settings, clock, SCENARIO)
    services_of(live_server.app).clock = clock
    try:
        with db.transaction() as s:
            for n in range(1, 13):
                add_debtor(s, n, today=IN_WINDOW.date(), region=MOSCOW, phone=f"+7916000{n:04d}")
            add_debtor(s, 50, today=IN_WINDOW.date(), region=TVER)
            add_campaign(s, "Тверь: долги", [TVER])
        make_user("anna", ["supervisor"], [MOSCOW], display_name="Анна Сергеевна")
        login_as(page, "anna")

        page.goto(f"{live_server.url}/console/campaigns/new")
        page.fill("#name", "Долги ноября")
        page.select_option("#channel", "voice")
        page.fill("#min_debt", "abc")
        page.click("#campaign-form button[type=submit]")
        assert page.text_content("#error-min_debt") == "введите число"
        assert page.text_content("#error-regions")  # no region chosen: not all of the user's
        screenshot(page, "console-campaign-new-errors")
        broken = tmp_path / "november.yaml"
        broken.write_text(CAMPAIGN_YAML.replace("max_concurrent: 50", "max_concurrent: 0"), "utf-8")
        page.set_input_files("#file", str(broken))
        page.click("#campaign-upload button[type=submit]")
        assert "должно быть не меньше 1" in page.text_content("#line-14")
        screenshot(page, "console-campaign-upload-errors")
        good = tmp_path / "good.yaml"
        good.write_text(CAMPAIGN_YAML, "utf-8")
        page.set_input_files("#file", str(good))
        with page.expect_navigation():
            page.click("#campaign-upload button[type=submit]")
        assert re.search(r"/console/campaigns/\d+$", page.url)
        campaign_id = int(page.url.rsplit("/", 1)[1])
        assert page.text_content("#campaign-status") == "черновик"

        page.goto(f"{live_server.url}/console/campaigns/{campaign_id}/preview")
        assert page.text_content("#audience-count") == "12"
        assert MOSCOW in page.text_content("#audience-regions")
        screenshot(page, "console-campaign-preview")

        page.goto(f"{live_server.url}/console/campaigns/{campaign_id}")
        with page.expect_navigation():
            page.click("#action-launch")
        assert page.text_content("#campaign-status") == "запускается"
        page.evaluate("window.__sameDocument = 'yes'")  # gone if the page reloads

        work(services)  # the launch job: the targets are planned
        _wait(page, "document.querySelector('#campaign-progress').dataset.total === '12'")
        assert page.text_content("#campaign-status") == "идёт"
        for _ in range(3):
            step(services, provider, campaign_id)
            clock.advance(seconds=60)
        _wait(page, "Number(document.querySelector('#campaign-progress').dataset.finished) > 0")
        first = int(page.get_attribute("#campaign-progress", "data-finished"))
        assert 0 < first < 12
        _wait(page, "Number(document.querySelector('#campaign-charts').dataset.updates) > 2")
        screenshot(page, "console-campaign-running")

        for _ in range(200):
            result = step(services, provider, campaign_id)
            if result.status != "running":
                break
            clock.advance(minutes=30)
        _wait(page, "document.querySelector('#campaign-status').textContent === 'завершена'")
        assert page.get_attribute("#campaign-progress", "data-finished") == "12"
        assert "ответил" in page.text_content("#campaign-attempts")
        assert "занято" in page.text_content("#campaign-attempts")
        assert page.evaluate("window.__sameDocument") == "yes"  # updated without a reload
        assert page.get_attribute("#campaign-progress", "hx-get") is None  # polling stopped
        _wait(page, "document.querySelector('#campaign-charts').dataset.finished === 'true'")
        screenshot(page, "console-campaign-completed")

        page.goto(f"{live_server.url}/console/campaigns")
        listing = page.text_content("#campaigns-table")
        assert "Долги ноября" in listing
        assert "Тверь" not in listing
        screenshot(page, "console-campaigns")
        page.goto(f"{live_server.url}/console/campaigns/{campaign_id}/report")
        with page.expect_download() as download:
            page.click("#report-xlsx")
        assert download.value.suggested_filename == f"campaign-{campaign_id}-report.xlsx"
        screenshot(page, "console-campaign-report")
        page.goto(f"{live_server.url}/console/dashboard")
        _wait(page, "Number(document.querySelector('#dashboard-charts').dataset.updates) >= 1")
        screenshot(page, "console-dashboard-after-campaign")
        with db.session() as s:
            assert s.get(Campaign, campaign_id).status == "completed"  # type: ignore[union-attr]
        assert csp_errors == []
    finally:
        dispose_all()


# --------------------------------------------------------------------------- 360


def _recorded_call_and_sms(live: LiveServer) -> tuple[str, str]:
    """A recorded hotline call from :data:`CALLER` (the simulator, jobs on RQ) and an SMS
    from the same phone through the signed webhook; their SIDs."""
    app = live.app
    with Simulator.for_app(app) as sim:
        call = sim.call(from_=CALLER, to=HOTLINE)
        assert call.heard("запис")  # the greeting announces the recording
        call.press("1")  # "your address is …, right?" — yes
        call.press("2")  # the balance
        call.hangup()
        assert call.ended
        SimpleWorker(
            [Queue(IVR_QUEUE, connection=services_of(app).redis)],
            connection=services_of(app).redis,
        ).work(burst=True)  # the download of the recording, through the simulator
        call_sid = call.sid
    sms_sid = "SM" + "7" * 32
    answer = signed_request(
        WsgiTransport(app),
        live.settings.webhook_auth_token,
        "POST",
        f"{live.settings.public_base_url}/sms/incoming",
        {"MessageSid": sms_sid, "From": CALLER, "To": HOTLINE, "Body": "Передаю показания 12345"},
    )
    assert answer.status == 200
    return call_sid, sms_sid


def _people(db: Database) -> dict[str, int]:
    with db.transaction() as s:
        msk = add_account(s, "Иванова Мария Петровна", MOSCOW, "5500123456", phone=CALLER)
        msk.service_address = "улица Мира, дом семь"
        add_ledger(s, msk, charged="2234.56", paid="1000.00")
        meter = add_meter(s, msk, zones=2)
        add_reading(s, meter, 4521, zone="T1", source="ivr_voice", confidence=0.93)
        add_reading(s, meter, 1830, zone="T2", source="ivr_dtmf")
        tver = add_account(s, "Петров Пётр", TVER, "7700000001", phone="+79169990000")
        add_call(
            s,
            tver,
            phone="+79169990000",
            outcome="transferred_queue",
            handoff={"account_number": "7700000001", "reason": "debt"},
            started_at=earlier_today(5),
        )
        return {"msk": msk.consumer_id, "tver": tver.consumer_id}


def test_a_consumers_calls_sms_and_recordings_are_in_one_timeline(
    live_server: LiveServer,
    browser_page: Any,
    login_as: Callable[..., None],
    make_user: Callable[..., str],
    screenshot: Callable[[Any, str], Path],
    csp_errors: list[str],
    db: Database,
) -> None:
    page = browser_page
    people = _people(db)
    call_sid, _sms_sid = _recorded_call_and_sms(live_server)
    with db.session() as s:
        call = s.scalars(select(Interaction).where(Interaction.provider_sid == call_sid)).one()
        account = s.scalars(select(Account).where(Account.number == "5500123456")).one()
        assert call.account_id == account.id  # the IVR identified the caller's account
    make_user("olga", ["operator"], [MOSCOW], display_name="Ольга")
    login_as(page, "olga")

    page.goto(f"{live_server.url}/console/consumers")
    page.fill("#consumer-q", "8 (916) 123-45-67")
    with page.expect_navigation():
        page.click("form[role=search] button")
    screenshot(page, "console-consumer-search")
    with page.expect_navigation():
        page.click(f"tr[data-consumer='{people['msk']}'] a")
    assert page.text_content("#consumer-name") == "Иванова Мария Петровна"
    kinds = page.eval_on_selector_all(
        "#timeline li[data-kind]", "els => els.map(e => e.dataset.kind)"
    )
    assert kinds[:2] == ["sms", "call"]  # newest first: the SMS came after the call
    assert "Передаю показания 12345" in page.text_content("#timeline")
    audio = page.locator("#timeline audio[data-recording]")
    assert audio.count() == 1
    _wait(
        page,
        "(() => { const a = document.querySelector('#timeline audio');"
        " return a.readyState >= 1 && a.duration > 0 && a.error === null; })()",
    )
    page.evaluate("document.querySelector('#timeline audio').muted = true")
    page.evaluate("document.querySelector('#timeline audio').play()")
    _wait(page, "document.querySelector('#timeline audio').currentTime > 0")
    page.click("#timeline li[data-kind=call] summary")
    assert "main_menu" in page.text_content("#timeline li[data-kind=call]")
    assert "4521" in page.text_content(".readings")
    screenshot(page, "console-consumer-360")

    page.goto(f"{live_server.url}/console/desk")
    assert page.locator("#handoffs tr[data-call]").count() == 0  # Tver's transfer is not hers
    page.fill("#consumer-q", "5500123456")
    with page.expect_navigation():
        page.click("form[role=search] button")
    with page.expect_navigation():
        page.click(f"tr[data-consumer='{people['msk']}'] a")
    page.select_option("#outcome", "operator_reading_taken")
    page.fill("#note", "Показания приняты, <script>alert(1)</script>")
    with page.expect_navigation():
        page.click("#note-form button[type=submit]")
    first = page.locator("#timeline li[data-kind]").first
    assert first.get_attribute("data-kind") == "note"
    assert "<script>alert(1)</script>" in first.text_content()  # shown as text, not run
    screenshot(page, "console-desk-consumer")
    assert csp_errors == []


# --------------------------------------------------------------------------- regions


def test_a_region_user_cannot_reach_another_regions_consumer(
    live_server: LiveServer,
    browser_page: Any,
    login_as: Callable[..., None],
    make_user: Callable[..., str],
    screenshot: Callable[[Any, str], Path],
    csp_errors: list[str],
    db: Database,
) -> None:
    page = browser_page
    people = _people(db)
    with db.transaction() as s:
        tver_campaign = add_campaign(s, "Тверь: долги", [TVER]).id
    make_user("boss", ["supervisor"], display_name="Руководитель")
    make_user("anna", ["supervisor"], [MOSCOW])

    login_as(page, "boss")
    page.goto(f"{live_server.url}/console/dashboard")
    assert page.text_content("#fig-calls-today") == "1"
    page.goto(f"{live_server.url}/console/desk")
    assert page.locator("#handoffs tr[data-call]").count() == 1
    screenshot(page, "console-desk")
    page.goto(f"{live_server.url}/console/flows")
    assert page.locator("#flows-valid").count() == 1
    _wait(  # every graph is drawn (Graphviz's SVG) and loaded
        page,
        "[...document.querySelectorAll('img[data-flow]')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
        " && document.querySelectorAll('img[data-flow]').length > 0",
    )
    screenshot(page, "console-flows")
    _logout(page, live_server)

    login_as(page, "anna")
    page.goto(f"{live_server.url}/console/consumers")
    for query in ("+79169990000", "7700000001", "Пётр"):
        page.fill("#consumer-q", query)
        with page.expect_navigation():
            page.click("form[role=search] button")
        assert page.locator("#no-results").count() == 1, query
    screenshot(page, "console-consumer-search-other-region")
    tver = people["tver"]
    response = page.goto(f"{live_server.url}/console/consumers/{tver}")
    assert response.status == 404
    assert "Петров" not in page.content()
    screenshot(page, "console-consumer-404")
    for path in (
        f"/console/consumers/{tver}/timeline.csv",
        f"/console/consumers/{tver}/timeline",
        f"/console/desk/consumers/{tver}",
        f"/console/campaigns/{tver_campaign}/report.csv",
        f"/console/campaigns/{tver_campaign}/report.xlsx",
    ):
        answer = page.request.get(f"{live_server.url}{path}")
        assert answer.status == 404, path
        assert "Петров" not in answer.text()
    page.goto(f"{live_server.url}/console/dashboard")
    _wait(page, "Number(document.querySelector('#dashboard-charts').dataset.updates) >= 1")
    assert page.text_content("#fig-calls-today") == "0"  # Tver's call is not counted
    assert csp_errors == []


# --------------------------------------------------------------------------- dashboard


def test_the_dashboard_refreshes_itself(
    live_server: LiveServer,
    browser_page: Any,
    login_as: Callable[..., None],
    make_user: Callable[..., str],
    screenshot: Callable[[Any, str], Path],
    csp_errors: list[str],
    db: Database,
) -> None:
    page = browser_page
    now = earlier_today(1)
    outcomes = ["completed_in_ivr"] * 6 + ["hung_up_in_ivr"] * 2 + ["transferred_queue"] * 3
    with db.transaction() as s:
        msk = add_account(s, "Иванова Мария", MOSCOW, "5500123456", phone=CALLER)
        meter = add_meter(s, msk, zones=2)
        for n, outcome in enumerate(outcomes):
            add_call(
                s,
                msk,
                outcome=outcome,
                started_at=earlier_today(1 + n),
                heard=(("двенадцать тысяч", 0.55 + n * 0.04),),
            )
        add_call(s, msk, status="in-progress", outcome=None, ended=False, started_at=now)
        for n in range(5):
            add_reading(
                s, meter, 100 + n, source="ivr_voice" if n < 3 else "ivr_dtmf", submitted_at=now
            )
        for status in ("delivered", "delivered", "delivered", "undelivered", "sent"):
            add_sms(s, msk, status=status, started_at=now)
        add_campaign(s, "Долги ноября", [MOSCOW], launched_at=now)
    make_user("boss", ["supervisor"], display_name="Руководитель")
    login_as(page, "boss")
    page.goto(f"{live_server.url}/console/dashboard")
    page.evaluate("window.__sameDocument = 'yes'")
    assert page.text_content("#fig-calls-today") == "12"
    assert page.text_content("#fig-in-ivr") == "1"
    assert page.text_content("#fig-readings") == "3 / 2"
    _wait(page, "Number(document.querySelector('#dashboard-charts').dataset.updates) >= 1")
    screenshot(page, "console-dashboard")
    with db.transaction() as s:
        account = s.scalars(select(Account).where(Account.number == "5500123456")).one()
        add_call(s, account, outcome="transferred_queue", started_at=dt.datetime.now(dt.UTC))
    _wait(page, "document.querySelector('#fig-calls-today').textContent === '13'", 30)
    _wait(page, "Number(document.querySelector('#dashboard-charts').dataset.updates) >= 2", 30)
    assert page.evaluate("window.__sameDocument") == "yes"  # refreshed without a reload
    assert csp_errors == []
