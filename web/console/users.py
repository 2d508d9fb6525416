"""Users admin pages (permission ``users.admin``): list, create, edit roles and regions,
disable / enable, reset the API token (shown once) or the password, lift a login lock.

Every change is made ``acting_as("console:<admin>")`` and audited by
:mod:`crm_store.users` (entity ``user``). An admin cannot disable themselves or take their
own admin role away (the console would have nobody to undo it). Admins see every user,
whatever their own regions.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import abort, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from contactcenter.services import Services
from crm_store.audit import acting_as
from crm_store.errors import Conflict, InvalidInput, NotFound
from crm_store.models import ROLE_NAMES, User
from crm_store.users import (
    create_user,
    get_user,
    issue_api_token,
    known_regions,
    list_users,
    set_active,
    set_password,
    update_user,
)
from web.common import current_services
from web.console import bp
from web.console.auth import console_actor, login_required
from web.console.forms import ROLE_LABELS, UserForm, new_password_errors, parse_user_form
from web.console.login import throttle_of

log = logging.getLogger(__name__)


def _form_values() -> dict[str, list[str]]:
    return {key: request.form.getlist(key) for key in request.form}


def _user_view(user: User, locked_seconds: int = 0) -> dict[str, Any]:
    """What the templates show of a user (plain values: the session is closed by then)."""
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "roles": user.role_names,
        "regions": list(user.regions) if user.regions is not None else None,
        "active": user.active,
        "has_password": user.password_hash is not None,
        "has_token": user.api_token_hash is not None,
        "api_token_issued_at": user.api_token_issued_at,
        "password_changed_at": user.password_changed_at,
        "last_login_at": user.last_login_at,
        "created_at": user.created_at,
        "locked_minutes": (locked_seconds + 59) // 60,
    }


def _load(services: Services, username: str) -> tuple[dict[str, Any], list[str]]:
    """The user (404 when absent) and the regions to choose from."""
    with services.db.transaction() as session:
        try:
            user = get_user(session, username)
        except NotFound:
            abort(404)
        regions = sorted(set(known_regions(session)) | set(user.regions or ()))
        locked = throttle_of(services).user_locked_seconds(user.username)
        return _user_view(user, locked), regions


def _render_form(
    template: str, form: UserForm, regions: list[str], status: int = 200, **extra: Any
) -> Response:
    body = render_template(
        template,
        form=form,
        regions=regions,
        role_names=ROLE_NAMES,
        role_labels=ROLE_LABELS,
        **extra,
    )
    return Response(body, status=status, mimetype="text/html")


@bp.get("/users")
@login_required("users.admin")
def users() -> str:
    """Every user with roles, regions, status, last login and lock."""
    services = current_services()
    throttle = throttle_of(services)
    with services.db.transaction() as session:
        rows = [
            _user_view(user, throttle.user_locked_seconds(user.username))
            for user in list_users(session)
        ]
    return render_template("console/users.html", users=rows, role_labels=ROLE_LABELS)


@bp.route("/users/new", methods=["GET", "POST"])
@login_required("users.admin")
def user_new() -> Response:
    """Create a user: name, display name, roles, regions, an optional first password."""
    services = current_services()
    with services.db.transaction() as session:
        regions = known_regions(session)
    if request.method == "GET":
        return _render_form("console/user_new.html", UserForm(roles=[]), regions)
    form = parse_user_form(_form_values(), regions, creating=True)
    if not form.errors:
        try:
            with acting_as(console_actor()), services.db.transaction() as session:
                create_user(
                    session,
                    form.username,
                    roles=form.roles,
                    regions=form.regions,
                    password=form.password or None,
                    display_name=form.display_name,
                )
        except Conflict:
            form.errors["username"] = "Пользователь с таким именем уже есть."
        except InvalidInput as exc:
            form.errors["form"] = f"Пользователь не создан: {exc}"
    if form.errors:
        return _render_form("console/user_new.html", form, regions, status=422)
    log.info("console: %s created user %s", g.user, form.username)
    flash(f"Пользователь {form.username} создан.", "success")
    return redirect(url_for("console.user_edit", username=form.username))


@bp.route("/users/<username>", methods=["GET", "POST"])
@login_required("users.admin")
def user_edit(username: str) -> Response:
    """A user's card: roles, regions and display name (POST saves them), and the actions."""
    services = current_services()
    user, regions = _load(services, username)
    if request.method == "GET":
        form = UserForm(
            username=user["username"],
            display_name=user["display_name"],
            roles=user["roles"],
            regions=user["regions"],
        )
        return _render_form("console/user_edit.html", form, regions, user=user, pw_errors={})
    form = parse_user_form(_form_values(), regions, creating=False)
    form.username = user["username"]
    if user["username"] == g.user and "admin" in user["roles"] and "admin" not in form.roles:
        form.errors["roles"] = "Нельзя снять роль администратора с самого себя."
    if not form.errors:
        try:
            with acting_as(console_actor()), services.db.transaction() as session:
                update_user(
                    session,
                    user["username"],
                    roles=form.roles,
                    regions=form.regions,
                    display_name=form.display_name,
                )
        except InvalidInput as exc:
            form.errors["form"] = f"Изменения не сохранены: {exc}"
    if form.errors:
        return _render_form(
            "console/user_edit.html", form, regions, status=422, user=user, pw_errors={}
        )
    flash("Изменения сохранены.", "success")
    return redirect(url_for("console.user_edit", username=user["username"]))


@bp.post("/users/<username>/active")
@login_required("users.admin")
def user_active(username: str) -> Response:
    """Disable (``active=0``) or enable (``active=1``) a user; disabling ends their sessions
    and revokes their API token."""
    services = current_services()
    user, _regions = _load(services, username)
    active = request.form.get("active") == "1"
    if not active and user["username"] == g.user:
        flash("Нельзя отключить самого себя.", "error")
        return redirect(url_for("console.user_edit", username=user["username"]))
    with acting_as(console_actor()), services.db.transaction() as session:
        set_active(session, user["username"], active)
    log.info("console: %s %s user %s", g.user, "enabled" if active else "disabled", username)
    flash("Пользователь включён." if active else "Пользователь отключён.", "success")
    return redirect(url_for("console.user_edit", username=user["username"]))


@bp.post("/users/<username>/token")
@login_required("users.admin")
def user_token(username: str) -> Response:
    """Issue a new API token (the old one stops working) and show it once."""
    services = current_services()
    user, regions = _load(services, username)
    if not user["active"]:
        flash("Отключённому пользователю токен не выдаётся.", "error")
        return redirect(url_for("console.user_edit", username=user["username"]))
    with acting_as(console_actor()), services.db.transaction() as session:
        token = issue_api_token(session, user["username"])
    log.info("console: %s issued a new API token for %s", g.user, username)
    user, regions = _load(services, username)
    form = UserForm(
        username=user["username"],
        display_name=user["display_name"],
        roles=user["roles"],
        regions=user["regions"],
    )
    return _render_form(
        "console/user_edit.html", form, regions, user=user, pw_errors={}, new_token=token
    )


@bp.post("/users/<username>/password")
@login_required("users.admin")
def user_password(username: str) -> Response:
    """Set a new password for the user (their sessions end, a login lock is lifted)."""
    services = current_services()
    user, regions = _load(services, username)
    password = request.form.get("password", "")
    errors = new_password_errors(
        password, request.form.get("confirm_password", ""), field_name="password"
    )
    if errors:
        form = UserForm(
            username=user["username"],
            display_name=user["display_name"],
            roles=user["roles"],
            regions=user["regions"],
        )
        return _render_form(
            "console/user_edit.html", form, regions, status=422, user=user, pw_errors=errors
        )
    with acting_as(console_actor()), services.db.transaction() as session:
        set_password(session, user["username"], password)
    throttle_of(services).unlock(user["username"])
    log.info("console: %s set a new password for %s", g.user, username)
    flash("Пароль установлен. Сеансы пользователя завершены.", "success")
    return redirect(url_for("console.user_edit", username=user["username"]))


@bp.post("/users/<username>/unlock")
@login_required("users.admin")
def user_unlock(username: str) -> Response:
    """Lift a login lock of the username (after too many wrong passwords)."""
    services = current_services()
    user, _regions = _load(services, username)
    throttle_of(services).unlock(user["username"])
    log.info("console: %s lifted the login lock of %s", g.user, username)
    flash("Блокировка входа снята.", "success")
    return redirect(url_for("console.user_edit", username=user["username"]))
