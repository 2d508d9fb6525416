"""The console's login, sessions, security and admin pages in a real browser (headless
Debian chromium through Playwright), with screenshots in ``var/screenshots/``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import url_for
from sqlalchemy import select

from crm_store.audit import acting_as
from crm_store.models import User
from crm_store.users import set_active
from tests.console.conftest import PASSWORD, LiveServer
from tests.console.test_console_admin import KURSK, TVER, add_region_data
from web.console import NAV
from web.console.auth import CONTENT_SECURITY_POLICY

Page = Any


def first_section(server: LiveServer) -> str:
    """The first section of the navigation the app has (where an admin lands)."""
    with server.app.test_request_context():
        return next(url_for(e) for _l, e, _p in NAV if e in server.app.view_functions)


@pytest.fixture
def csp_errors(browser_page: Page) -> list[str]:
    """Messages of the browser console about blocked content (CSP), collected as pages load."""
    found: list[str] = []
    browser_page.on(
        "console",
        lambda msg: (
            found.append(msg.text)
            if msg.type == "error" and "Content Security Policy" in msg.text
            else None
        ),
    )
    return found


def test_login_wrong_password_then_success(
    browser_page: Page,
    live_server: LiveServer,
    make_user: Callable[..., str],
    login_as: Callable[..., None],
    screenshot: Callable[[Page, str], Any],
    csp_errors: list[str],
) -> None:
    make_user("root", ["admin"], display_name="Администратор Пётр")
    page = browser_page
    answer = page.goto(f"{live_server.url}/console/users")
    assert page.url.startswith(f"{live_server.url}/console/login?next=/console/users")
    assert answer is not None
    screenshot(page, "console-login")
    login_as(page, "root", "not the password")
    assert page.locator("#login-error").inner_text() == "Неверное имя пользователя или пароль."
    assert page.input_value("#username") == "root"
    login_as(page, "root", PASSWORD)
    assert page.url == f"{live_server.url}{first_section(live_server)}"
    assert page.locator(".userbox .username").inner_text() == "Администратор Пётр"
    assert page.locator(".mainnav a", has_text="Пользователи").count() == 1
    # a wanted page survives the login
    page.context.clear_cookies()
    page.goto(f"{live_server.url}/console/users/root")
    login_as_next(page)
    assert page.url == f"{live_server.url}/console/users/root"
    assert csp_errors == []


def login_as_next(page: Page) -> None:
    """Log in as root on the login page the browser was sent to (keeping ``next``)."""
    page.fill("#username", "root")
    page.fill("#password", PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")


def test_lockout_after_repeated_failures(
    browser_page: Page,
    live_server: LiveServer,
    make_user: Callable[..., str],
    login_as: Callable[..., None],
    screenshot: Callable[[Page, str], Any],
) -> None:
    make_user("anna", ["supervisor"])
    for _ in range(live_server.settings.console_login_max_failures - 1):
        login_as(browser_page, "anna", "wrong password!")
        assert "Неверное имя" in browser_page.locator("#login-error").inner_text()
    login_as(browser_page, "anna", "wrong password!")
    assert "заблокирован" in browser_page.locator("#login-error").inner_text()
    login_as(browser_page, "anna", PASSWORD)
    assert "заблокирован" in browser_page.locator("#login-error").inner_text()
    assert "/console/login" in browser_page.url
    screenshot(browser_page, "console-login-locked")
    # an unknown name gets the same answers
    for _ in range(live_server.settings.console_login_max_failures):
        login_as(browser_page, "ghost", "wrong password!")
    assert "заблокирован" in browser_page.locator("#login-error").inner_text()


def test_logout(
    browser_page: Page,
    live_server: LiveServer,
    make_user: Callable[..., str],
    login_as: Callable[..., None],
) -> None:
    make_user("root", ["admin"])
    login_as(browser_page, "root")
    with browser_page.expect_navigation():
        browser_page.click(".userbox button[type=submit]")
    assert browser_page.url == f"{live_server.url}/console/login?out=1"
    assert browser_page.locator("text=Вы вышли из консоли.").count() == 1
    browser_page.goto(f"{live_server.url}/console/users")
    assert "/console/login" in browser_page.url


def test_password_change_then_the_old_one_is_refused(
    browser_page: Page,
    live_server: LiveServer,
    make_user: Callable[..., str],
    login_as: Callable[..., None],
    screenshot: Callable[[Page, str], Any],
) -> None:
    make_user("anna", ["supervisor"])
    page = browser_page
    login_as(page, "anna")
    page.goto(f"{live_server.url}/console/password")
    page.fill("#old_password", "not it at all")
    page.fill("#new_password", "short")
    page.fill("#confirm_password", "different")
    with page.expect_navigation():
        page.click("button.primary")
    assert page.locator("#old_password-error").inner_text() == "Текущий пароль указан неверно."
    assert "не менее 10" in page.locator("#new_password-error").inner_text()
    assert page.locator("#confirm_password-error").inner_text() == "Пароли не совпадают."
    screenshot(page, "console-password-errors")
    page.fill("#old_password", PASSWORD)
    page.fill("#new_password", "a much better secret")
    page.fill("#confirm_password", "a much better secret")
    with page.expect_navigation():
        page.click("button.primary")
    assert page.locator("#password-changed").count() == 1
    page.goto(f"{live_server.url}/console/password")  # this session goes on
    assert page.url.endswith("/console/password")
    page.context.clear_cookies()
    login_as(page, "anna", PASSWORD)
    assert page.locator("#login-error").count() == 1
    login_as(page, "anna", "a much better secret")
    assert "/console/login" not in page.url


def test_a_disabled_users_session_is_dropped(
    browser_page: Page,
    live_server: LiveServer,
    make_user: Callable[..., str],
    login_as: Callable[..., None],
) -> None:
    make_user("olga", ["auditor"])
    login_as(browser_page, "olga")
    browser_page.goto(f"{live_server.url}/console/audit")
    assert browser_page.url.endswith("/console/audit")
    with acting_as("test"), live_server.db.transaction() as s:
        set_active(s, "olga", False)
    browser_page.reload()
    assert "/console/login?next=/console/audit" in browser_page.url


def test_posts_without_csrf_token_are_refused_and_headers_are_set(
    browser_page: Page,
    live_server: LiveServer,
    make_user: Callable[..., str],
    login_as: Callable[..., None],
) -> None:
    make_user("root", ["admin"])
    login_as(browser_page, "root")
    forged = browser_page.request.post(
        f"{live_server.url}/console/users/root/active", form={"active": "0"}
    )
    assert forged.status == 400
    assert "Форма устарела" in forged.text()
    with live_server.db.transaction() as s:
        assert s.scalars(select(User.active).where(User.username == "root")).one() is True
    answer = browser_page.goto(f"{live_server.url}/console/users")
    assert answer is not None
    assert answer.status == 200
    headers = answer.headers
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin"
    cookie = next(c for c in browser_page.context.cookies() if c["name"] == "cc_console")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/console"


def test_users_admin_create_edit_disable(
    browser_page: Page,
    live_server: LiveServer,
    make_user: Callable[..., str],
    login_as: Callable[..., None],
    screenshot: Callable[[Page, str], Any],
) -> None:
    with acting_as("import"), live_server.db.transaction() as s:
        add_region_data(s, TVER, 1)
        add_region_data(s, KURSK, 2)
    make_user("root", ["admin"])
    page = browser_page
    page.on("dialog", lambda dialog: dialog.accept())
    login_as(page, "root")
    page.goto(f"{live_server.url}/console/users")
    page.click("#user-new")
    page.fill("#username", "Olga")
    page.fill("#display_name", "Ольга Смирнова")
    page.check("input[name=roles][value=supervisor]")
    page.check("input[name=regions_mode][value=list]")
    page.select_option("#regions-list", [TVER])
    page.fill("#password", "ten chars ok")
    page.fill("#confirm_password", "ten chars ok")
    with page.expect_navigation():
        page.click("button.primary")
    assert page.url == f"{live_server.url}/console/users/olga"
    assert "Пользователь olga создан." in page.locator(".flash").inner_text()
    assert page.locator("#regions-list").evaluate("el => !el.disabled")
    page.check("input[name=roles][value=auditor]")
    page.check("input[name=regions_mode][value=all]")
    assert page.locator("#regions-list").evaluate("el => el.disabled")
    with page.expect_navigation():
        page.click("#user-form button.primary")
    assert page.locator(".flash").inner_text() == "Изменения сохранены."
    with page.expect_navigation():
        page.click("#reset-token")
    token = page.locator("#token-value").inner_text()
    assert token.startswith("cc_")
    screenshot(page, "console-user-edit")
    with page.expect_navigation():
        page.click("#disable-user")
    assert page.locator(".flash").inner_text() == "Пользователь отключён."
    with live_server.db.transaction() as s:
        olga = s.scalars(select(User).where(User.username == "olga")).one()
        assert (olga.active, olga.role_names, olga.regions) == (
            False,
            ["auditor", "supervisor"],
            None,
        )
    page.goto(f"{live_server.url}/console/users")
    row = page.locator("tr[data-username=olga]")
    assert "отключён" in row.inner_text()
    assert "Ольга Смирнова" in row.inner_text()
    screenshot(page, "console-users")


def test_audit_page_filter(
    browser_page: Page,
    live_server: LiveServer,
    make_user: Callable[..., str],
    login_as: Callable[..., None],
    screenshot: Callable[[Page, str], Any],
) -> None:
    with acting_as("import"), live_server.db.transaction() as s:
        add_region_data(s, TVER, 1)
        add_region_data(s, KURSK, 2)
    make_user("audrey", ["auditor"], regions=[TVER])
    page = browser_page
    login_as(page, "audrey")
    page.goto(f"{live_server.url}/console/audit")
    entities = set(
        page.locator("#audit-table tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.entity)"
        )
    )
    assert "account" in entities
    assert "user" not in entities
    assert KURSK not in page.locator("#audit-table").inner_text()
    page.select_option("select[name=entity]", "account")
    with page.expect_navigation():
        page.click("#audit-filters button.primary")
    assert "entity=account" in page.url
    rows = page.locator("#audit-table tbody tr")
    assert rows.count() == 1
    assert TVER in rows.inner_text()
    screenshot(page, "console-audit")
    page.fill("input[name=actor]", "никто")
    with page.expect_navigation():
        page.click("#audit-filters button.primary")
    assert page.locator("#audit-empty").count() == 1
