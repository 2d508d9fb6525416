"""REST API of users and of the caller's own scope (the machinery of :mod:`web.api_common`).

``/api/users`` needs ``users.admin`` and a user of all regions (a region-scoped admin could
otherwise widen their own regions). Every change is audited as ``api:<user>``
(:mod:`crm_store.users` writes the rows: entity ``user``, before → after, never a hash). A
change of roles or regions applies to the user's next request; disabling a user revokes
their API token at once. You cannot disable yourself or take away your own ``admin`` role.

Routes::

    GET   /api/me                       who the token is: user, roles, regions, permissions
    GET   /api/users?role=&active=      users by name (paged)
    POST  /api/users                    {"username", "roles", "regions"?, "display_name"?,
                                         "password"?} → 201 the user
    GET   /api/users/<username>
    PATCH /api/users/<username>         {"roles"?, "regions"?, "display_name"?, "active"?}
    POST  /api/users/<username>/token   a new API token (shown once; the old one stops)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from flask import g
from pydantic import BaseModel, Field
from spectree import Response as Responses

from crm_store import users
from crm_store.audit import acting_as
from crm_store.errors import InvalidInput
from crm_store.list_queries import user_as_dict, users_page
from web.api_common import (
    ApiModel,
    ErrorBody,
    PageQuery,
    api_actor,
    api_blueprint,
    api_services,
    current_scope,
    operation,
    page_body,
    page_model,
)

bp = api_blueprint("users_api", __name__, "/api")
TAGS = ["users"]
ADMIN = "users.admin"
NOT_FOUND = (ErrorBody, "no such user")

#: ``crm_store.models.ROLE_NAMES`` (a test keeps them in step).
RoleName = Literal["admin", "supervisor", "operator", "auditor", "developer"]
Regions = list[str] | None
REGIONS_HELP = "the regions (Account.region values) the user sees; null: all regions"


class MeOut(BaseModel):
    """Who the token acts as."""

    user: str = Field(description="the username, or api-token for the configured API_TOKEN")
    roles: list[RoleName]
    regions: Regions = Field(description=REGIONS_HELP)
    permissions: list[str]


class UserQuery(PageQuery):
    """Filters of the user list."""

    role: RoleName | None = None
    active: bool | None = None


class UserIn(ApiModel):
    """A user to create."""

    username: str = Field(min_length=2, max_length=64)
    roles: list[RoleName] = Field(min_length=1)
    regions: Regions = Field(default=None, description=REGIONS_HELP)
    display_name: str = Field(default="", max_length=200)
    password: str | None = Field(default=None, description="for the console; 10+ characters")


class UserChange(ApiModel):
    """What to change (fields left out stay as they are)."""

    roles: list[RoleName] | None = Field(default=None, min_length=1)
    regions: Regions = Field(default=None, description=REGIONS_HELP + " (send it to change)")
    display_name: str | None = Field(default=None, max_length=200)
    active: bool | None = None


class UserOut(BaseModel):
    """A user (never a hash: only whether a password and a token are set, and when)."""

    username: str
    display_name: str
    roles: list[RoleName]
    regions: Regions
    active: bool
    has_password: bool
    has_api_token: bool
    created_at: datetime
    password_changed_at: datetime | None
    api_token_issued_at: datetime | None
    last_login_at: datetime | None


class TokenIssued(BaseModel):
    """A new API token: shown only in this answer."""

    username: str
    token: str


@bp.get("/me")
@operation(permission=None, resp=Responses(HTTP_200=MeOut), tags=TAGS)
def who_am_i() -> dict[str, Any]:
    """Who the token acts as, with which permissions, in which regions."""
    scope = current_scope()
    return {
        "user": g.api_user,
        "roles": sorted(scope.roles),
        "regions": sorted(scope.regions) if scope.regions is not None else None,
        "permissions": sorted(scope.permissions),
    }


@bp.get("/users")
@operation(
    permission=ADMIN, all_regions=True, resp=Responses(HTTP_200=page_model(UserOut)), tags=TAGS
)
def list_users(query: UserQuery) -> dict[str, Any]:
    """Users by name."""
    with api_services().db.transaction() as s:
        page = users_page(
            s, role=query.role, active=query.active, limit=query.limit, cursor=query.cursor
        )
        return page_body(page, user_as_dict)


@bp.post("/users")
@operation(
    permission=ADMIN,
    all_regions=True,
    resp=Responses(HTTP_201=UserOut, HTTP_409=(ErrorBody, "the name is taken")),
    tags=TAGS,
)
def create_user(json: UserIn) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Create a user with roles and regions."""
    with api_services().db.transaction() as s, acting_as(api_actor()):
        user = users.create_user(
            s,
            json.username,
            roles=json.roles,
            regions=json.regions,
            display_name=json.display_name,
            password=json.password,
        )
        body = user_as_dict(user)
    return body, 201, {"Location": f"/api/users/{body['username']}"}


@bp.get("/users/<username>")
@operation(
    permission=ADMIN,
    all_regions=True,
    resp=Responses(HTTP_200=UserOut, HTTP_404=NOT_FOUND),
    tags=TAGS,
)
def get_user(username: str) -> dict[str, Any]:
    """One user."""
    with api_services().db.transaction() as s:
        return user_as_dict(users.get_user(s, username))


def _check_own_change(username: str, change: UserChange) -> None:
    if username != g.api_user:
        return
    if change.active is False:
        raise InvalidInput("you cannot disable yourself")
    if change.roles is not None and "admin" not in change.roles:
        raise InvalidInput("you cannot take away your own admin role")


@bp.patch("/users/<username>")
@operation(
    permission=ADMIN,
    all_regions=True,
    resp=Responses(HTTP_200=UserOut, HTTP_404=NOT_FOUND),
    tags=TAGS,
)
def change_user(username: str, json: UserChange) -> dict[str, Any]:
    """Change a user's roles, regions, display name, or enable or disable them.

    Disabling revokes the user's API token and ends their console sessions.
    """
    _check_own_change(username, json)
    sent = json.model_fields_set
    with api_services().db.transaction() as s, acting_as(api_actor()):
        user = users.get_user(s, username)
        if sent & {"roles", "regions", "display_name"}:
            users.update_user(
                s,
                username,
                roles=json.roles if json.roles is not None else user.role_names,
                regions=json.regions if "regions" in sent else user.regions,
                display_name=(
                    json.display_name if json.display_name is not None else user.display_name
                ),
            )
        if json.active is not None:
            users.set_active(s, username, json.active)
        return user_as_dict(users.get_user(s, username))


@bp.post("/users/<username>/token")
@operation(
    permission=ADMIN,
    all_regions=True,
    resp=Responses(
        HTTP_201=TokenIssued,
        HTTP_404=NOT_FOUND,
        HTTP_422=(ErrorBody, "the user is disabled"),
    ),
    tags=TAGS,
)
def issue_token(username: str) -> tuple[dict[str, Any], int]:
    """Issue a new API token for a user (the previous one stops working). Audited.

    The token is in this answer only; store it now.
    """
    with api_services().db.transaction() as s, acting_as(api_actor()):
        token = users.issue_api_token(s, username)
    return {"username": username, "token": token}, 201
