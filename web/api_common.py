"""What every ``/api`` blueprint shares: bearer tokens, permissions, one error body, the
OpenAPI document, pages.

**Authentication.** ``Authorization: Bearer <token>`` on every request but the documentation
(:func:`authenticate`, each blueprint's ``before_request``): the configured ``API_TOKEN``
(compared in constant time) acts with :data:`~crm_store.access.SYSTEM_SCOPE` (everything,
every region) as ``api-token``; a user's API token (``crm_store.users``) acts with the user's
:class:`~crm_store.access.Scope` (roles → permissions, regions). A missing, unknown or
disabled user's token is 401 with ``WWW-Authenticate``.

**Operations.** Every view is declared with :func:`operation`: the permission it needs
(403 without it), whether it needs a user of all regions, its query, body and response
models (pydantic), its tags. The request is validated by spectree against the models
(422 with the fields at fault), the answer against the response model of its status (a
mismatch is our bug: logged, 500), and the same declaration is the operation in the
OpenAPI document (:func:`openapi_document`, with ``x-permission``), so the document
describes exactly what is served.

**Errors.** Every 4xx/5xx answer of the API is one body (:func:`web.common.error_body`)::

    {"error": {"code": "not_found", "message": "consumer 7 does not exist", "details": null}}

raised anywhere as :class:`ApiError`, or mapped from the domain's exceptions by
:func:`handle_error` (not found 404, invalid input 422, conflict 409, a database, Redis or
recording storage outage 503, anything else 500, logged).

**Pages.** Every list takes ``limit`` (1-200, default 50) and ``cursor`` (:class:`PageQuery`)
and answers ``{"items": [...], "next_cursor": "…" | null}`` (:func:`page_model`); pass
``next_cursor`` back as ``cursor`` for the next page.
"""

from __future__ import annotations

import copy
import functools
import hmac
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ParamSpec, Protocol, TypeVar, cast

from flask import Blueprint, Flask, Response, current_app, g, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from spectree import Response as Responses
from spectree import SecurityScheme, SpecTree, Tag
from spectree.models import SecureType, SecuritySchemeData
from werkzeug.exceptions import HTTPException

from campaigns.errors import CampaignError, CampaignNotFound, DefinitionError
from contactcenter.services import Services
from contactcenter.services import current_services as process_services
from crm_store.access import PERMISSIONS, SYSTEM_SCOPE, Scope
from crm_store.errors import Conflict, ImportFileError, InvalidInput, InvalidTransition, NotFound
from crm_store.paging import DEFAULT_LIMIT, MAX_LIMIT
from ivr.errors import RecordingNotStored, RecordingStorageError
from web.common import BODY_LIMIT_ATTR, OUTAGE_ERRORS, json_error

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

#: What ``g.api_user`` is when the configured ``API_TOKEN`` authenticated the request.
API_TOKEN_USER = "api-token"  # noqa: S105  (a name in the audit log, not a secret)
#: The attributes :func:`operation` sets on a view.
PERMISSION_ATTR = "api_permission"
PUBLIC_ATTR = "api_public"
ALL_REGIONS_ATTR = "api_all_regions"
BEARER = "bearer"

# ---------------------------------------------------------------------------- models


class ApiModel(BaseModel):
    """Base of the API's request models: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class ErrorInfo(BaseModel):
    """What went wrong."""

    code: str = Field(description="kind of error: bad_request, unauthorized, forbidden, …")
    message: str = Field(description="what is wrong, in a sentence")
    details: Any = Field(
        default=None,
        description="particulars, or null: for an invalid request a list of "
        '{"path", "message"} (the field at fault), for a refused batch its items',
    )


class ErrorBody(BaseModel):
    """The body of every 4xx/5xx answer of the API."""

    error: ErrorInfo


class PageQuery(ApiModel):
    """The paging of every list."""

    limit: int = Field(
        default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="rows per page (1-200)"
    )
    cursor: str | None = Field(
        default=None, description="the next_cursor of the previous page (opaque)"
    )


_PAGE_MODELS: dict[type[BaseModel], type[BaseModel]] = {}


def page_model(item: type[BaseModel]) -> type[BaseModel]:
    """The response model of a list of ``item``: ``{"items": [...], "next_cursor"}``."""
    if item not in _PAGE_MODELS:
        _PAGE_MODELS[item] = create_model(
            f"{item.__name__}Page",
            __doc__=f"One page of {item.__name__} (pass next_cursor as cursor for the next).",
            items=(list[item], ...),  # type: ignore[valid-type]
            next_cursor=(str | None, Field(description="null on the last page")),
        )
    return _PAGE_MODELS[item]


# ---------------------------------------------------------------------------- errors


class ApiError(Exception):
    """An API answer other than success: ``status``, a message, optional details."""

    def __init__(
        self,
        status: int,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details
        self.headers = headers or {}


def _not_found(exc: Exception) -> Response:
    return json_error(404, str(exc) or "not found")


def handle_error(exc: Exception) -> Response:
    """Every exception of an API view or its authentication, as the one error body."""
    if isinstance(exc, ApiError):
        response = json_error(exc.status, exc.message, exc.details)
        response.headers.update(exc.headers)
        return response
    if isinstance(exc, HTTPException):
        if exc.code == 413:
            return json_error(413, "request entity too large")
        return json_error(exc.code or 500, exc.description or exc.name)
    if isinstance(exc, NotFound | CampaignNotFound | RecordingNotStored):
        return _not_found(exc)
    if isinstance(exc, DefinitionError):
        return json_error(422, "invalid campaign definition", exc.as_dicts())
    if isinstance(exc, InvalidInput | ImportFileError):
        return json_error(422, str(exc))
    if isinstance(exc, Conflict | InvalidTransition | CampaignError):
        return json_error(409, str(exc))
    if isinstance(exc, RecordingStorageError):
        log.warning("recording storage failed during %s: %s", request.path, exc)
        response = json_error(503, "the recording storage is unavailable, retry later")
        response.headers["Retry-After"] = "5"
        return response
    if isinstance(exc, OUTAGE_ERRORS):
        log.warning("outage during %s %s: %s", request.method, request.path, type(exc).__name__)
        response = json_error(503, "temporarily unavailable, retry later")
        response.headers["Retry-After"] = "5"
        return response
    log.exception("API failure in %s %s", request.method, request.path)
    return json_error(500, "internal error")


def _issues(exc: ValidationError) -> list[dict[str, str]]:
    issues = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        issues.append({"path": path, "message": message})
    return issues


def _before_view(
    req: Any, resp: Any, req_validation_error: Any, instance: Any, model_adapter: Any
) -> None:
    """spectree's hook after validating a request: an invalid one is our 422."""
    if isinstance(req_validation_error, ValidationError):
        issues = _issues(req_validation_error)
        summary = "; ".join(f"{i['path'] or 'body'}: {i['message']}" for i in issues[:3])
        raise ApiError(422, f"invalid request: {summary}", issues)
    if req_validation_error is not None:
        raise ApiError(422, f"invalid request: {req_validation_error}")


def _after_view(
    req: Any, resp: Any, resp_validation_error: Any, instance: Any, model_adapter: Any
) -> None:
    """spectree's hook after validating an answer: one that breaks its model is our bug."""
    if resp_validation_error is None:
        return
    log.error(
        "%s %s answered what its response model refuses: %s",
        req.method,
        req.path,
        resp_validation_error,
    )
    resp.set_data(
        json.dumps(
            {"error": {"code": "internal_error", "message": "internal error", "details": None}}
        )
    )
    resp.mimetype = "application/json"
    resp.status_code = 500


def _component_name(model: Any) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", getattr(model, "__name__", str(model)))


#: The OpenAPI document's source: every operation is declared on it (:func:`operation`).
spec = SpecTree(
    "flask",
    mode="strict",
    title="Contact center API",
    version="1",
    description=(
        "The CRM, campaigns, do-not-contact list and consents, imports and users of the "
        "contact center. Authenticate with `Authorization: Bearer <token>`; every error is "
        '`{"error": {"code", "message", "details"}}`; every list takes `limit` (1-200) and '
        "`cursor` and answers `{items, next_cursor}`. See docs/api.md."
    ),
    path="apidoc",
    annotations=True,
    security_schemes=[
        SecurityScheme(
            name=BEARER,
            data=SecuritySchemeData(
                type=SecureType.HTTP, scheme="bearer", description="API_TOKEN or a user's token"
            ),
        )
    ],
    security={BEARER: []},
    before=_before_view,
    after=_after_view,
    validation_error_status=422,
    validation_error_model=ErrorBody,
    naming_strategy=_component_name,
    nested_naming_strategy=lambda _parent, child: child,
)


# ---------------------------------------------------------------------------- auth


def api_services() -> Services:
    """The services of the app serving this request (the process's when it has none)."""
    services: Services | None = current_app.extensions.get("services")
    return services if services is not None else process_services()


def current_scope() -> Scope:
    """The scope of the authenticated request."""
    return cast(Scope, g.scope)


def api_actor() -> str:
    """Who changes what in this request, for the audit log: ``api:<user>``."""
    return f"api:{g.api_user}"


def _unauthorized(message: str, challenge: str) -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": challenge})


def authenticate() -> None:
    """The bearer-token check of every API blueprint (its ``before_request``): sets
    ``g.scope`` and ``g.api_user``, or raises the 401 (see the module)."""
    view = current_app.view_functions.get(request.endpoint or "")
    if view is not None and getattr(view, PUBLIC_ATTR, False):
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("missing bearer token", 'Bearer realm="api"')
    services = api_services()
    configured = services.settings.api_token
    if configured and hmac.compare_digest(token.encode(), configured.encode()):
        g.scope, g.api_user = SYSTEM_SCOPE, API_TOKEN_USER
        return
    scope = services.user_cache.token_scope(services.db, token)
    if scope is None:
        raise _unauthorized("invalid token", 'Bearer realm="api", error="invalid_token"')
    g.scope, g.api_user = scope, scope.user


def api_blueprint(name: str, import_name: str, url_prefix: str) -> Blueprint:
    """A blueprint of the API: :func:`authenticate` before every view, :func:`handle_error`
    for every exception, ``Cache-Control: no-store`` on every answer."""
    bp = Blueprint(name, import_name, url_prefix=url_prefix)
    bp.before_request(authenticate)
    bp.after_request(_api_headers)
    bp.register_error_handler(Exception, handle_error)
    return bp


def _api_headers(response: Response) -> Response:
    """Answers hold personal data: not stored by caches; types as declared."""
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


def _require(permission: str | None, all_regions: bool) -> None:
    scope = current_scope()
    if permission is not None and not scope.can(permission):
        roles = ", ".join(sorted(scope.roles)) or "none"
        raise ApiError(403, f"the {permission} permission is required (your roles: {roles})")
    if all_regions and not scope.all_regions:
        raise ApiError(403, "this needs a user of all regions")


def operation(
    *,
    permission: str | None,
    resp: Responses,
    tags: Sequence[str],
    all_regions: bool = False,
    public: bool = False,
    body_limit: Callable[[], int] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Declare an API view (see the module): ``permission`` (None: any authenticated user),
    ``all_regions`` (refused, 403, to region-scoped users), the response models ``resp``
    (401/403 are added), ``tags``. The query and body models are the view's ``query``,
    ``json`` or ``form`` parameters' annotations (spectree passes the validated models).
    ``body_limit`` gives the largest body in bytes when it is not the app's
    ``MAX_CONTENT_LENGTH`` (uploads): set before the body is read, 413 above it."""
    if permission is not None and permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")
    resp.add_model(
        422, ErrorBody, replace=False, description="invalid values (details: the fields at fault)"
    )
    if not public:
        resp.add_model(401, ErrorBody, replace=False, description="no or an invalid token")
        resp.add_model(403, ErrorBody, replace=False, description="the permission is missing")

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        validated = spec.validate(
            resp=resp,
            tags=tags,
            security={} if public else None,
            operation_id=view.__name__,
        )(view)
        metadata = spec.get_function_metadata(validated)
        takes_json = metadata is not None and metadata.json is not None
        if takes_json:
            resp.add_model(400, ErrorBody, replace=False, description="the body is not JSON")

        @functools.wraps(validated)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            if not public:
                _require(permission, all_regions)
            if body_limit is not None:
                limit = body_limit()
                if request.content_length is not None and request.content_length > limit:
                    raise ApiError(413, "request entity too large")
                request.max_content_length = limit  # a body of unknown length is cut there
            if takes_json and not isinstance(request.get_json(silent=True), dict | list):
                raise ApiError(400, "send a JSON body (Content-Type: application/json)")
            return cast(R, validated(*args, **kwargs))

        setattr(guarded, PERMISSION_ATTR, permission)
        setattr(guarded, PUBLIC_ATTR, public)
        setattr(guarded, ALL_REGIONS_ATTR, all_regions)
        if body_limit is not None:
            setattr(guarded, BODY_LIMIT_ATTR, body_limit)
        return guarded

    return decorate


class AnyPage(Protocol):
    """A page of any list (:class:`crm_store.paging.KeysetPage`, ``ContactPage`` …)."""

    @property
    def items(self) -> Sequence[Any]:
        """The rows of the page."""

    @property
    def next_cursor(self) -> str | None:
        """The cursor of the next page, None on the last."""


def page_body(page: AnyPage, item: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """A list answer: ``{"items": [item(x) ...], "next_cursor"}``."""
    return {"items": [item(x) for x in page.items], "next_cursor": page.next_cursor}


def tags(*names: tuple[str, str]) -> list[Tag]:
    """OpenAPI tags (name, description)."""
    return [Tag(name=n, description=d) for n, d in names]


# ---------------------------------------------------------------------------- the document


def api_rules(app: Flask) -> Iterable[tuple[str, str, Callable[..., Any]]]:
    """``(OpenAPI path, method, view)`` of every ``/api`` route of ``app``."""
    for rule in app.url_map.iter_rules():
        if not str(rule).startswith("/api/"):
            continue
        path, _ = spec.backend.parse_path(rule, None)
        view = app.view_functions[rule.endpoint]
        for method in sorted(rule.methods or ()):
            if method not in ("HEAD", "OPTIONS"):
                yield path, method.lower(), view


_DOCUMENT_LOCK = threading.Lock()


def _generate(app: Flask) -> dict[str, Any]:
    # spectree builds its document once per SpecTree and lifts the nested models' $defs out
    # of its registry while doing so; keeping the registry intact lets each app (tests make
    # many, some with only a few blueprints) get the document of its own routes.
    with _DOCUMENT_LOCK, app.app_context():
        models = copy.deepcopy(spec.models)
        try:
            return cast(dict[str, Any], json.loads(json.dumps(spec._generate_spec())))
        finally:
            spec.models = models


def openapi_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``'s API (built once per app): spectree's, with each
    operation's ``x-permission`` and ``x-all-regions``."""
    cached: dict[str, Any] | None = app.extensions.get("openapi")
    if cached is not None:
        return cached
    document = _generate(app)
    for path, method, view in api_rules(app):
        entry = document["paths"].get(path, {}).get(method)
        if entry is None:
            continue
        permission = getattr(view, PERMISSION_ATTR, None)
        entry["x-permission"] = permission
        entry["x-all-regions"] = bool(getattr(view, ALL_REGIONS_ATTR, False))
        if permission is not None:
            needs = f"Needs the `{permission}` permission"
            if getattr(view, ALL_REGIONS_ATTR, False):
                needs += " and a user of all regions"
            entry["description"] = f"{needs}.\n\n{entry.get('description') or ''}".strip()
    app.extensions["openapi"] = document
    return document
