"""REST API for outages: ``/api/outages`` (the shared machinery of :mod:`web.api_common`).

A grid company's or billing system's feed posts planned and emergency outages here; the
hotline announces them to callers from the addresses they cover (:mod:`crm_store.outages`).
Posting needs ``imports.write`` and a user of all regions (an outage is not bound to a
region); reading needs ``consumers.read`` (operators tell callers about them).

Routes::

    POST /api/outages            one outage (a JSON object), several (a list, or
                                 {"outages": [...]}), fields of crm_store.outages.OUTAGE_FIELDS;
                                 all or nothing: 400 "invalid outages" with details
                                 [{"index", "field", "reason"}] stores none; else 201 when one
                                 was created, 200 when all were known (updated or unchanged),
                                 with {"outages": [{"index", "id", "external_id", "result"}]}
    GET  /api/outages?active=true   outages in effect now (without: all), latest start first
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel
from spectree import Response as Responses

from crm_store.errors import InvalidOutage
from crm_store.list_queries import outages_page
from crm_store.outages import OutageInput, outage_as_dict, parse_outage, upsert_outage
from web.api_common import (
    ApiError,
    PageQuery,
    api_blueprint,
    api_services,
    operation,
    page_body,
    page_model,
)

bp = api_blueprint("outages_api", __name__, "/api/outages")
TAGS = ["outages"]

#: The most outages one request may carry.
MAX_ITEMS = 500


class OutageIn(BaseModel):
    """One outage as sent (texts); ``kind``, ``starts_at``, ``expected_end_at`` and a place
    are required: a settlement or a street, and/or a feeder or a substation."""

    external_id: str | None = Field(default=None, description="the sender's id (idempotency)")
    kind: str = Field(description="planned (плановое) or emergency (аварийное)")
    settlement: str | None = None
    street: str | None = None
    houses: str | None = Field(default=None, description="«1-15», «2-20 чётные»; empty: all")
    feeder: str | None = None
    substation: str | None = None
    starts_at: str = Field(description="ISO 8601, or a local time with `timezone`")
    expected_end_at: str
    timezone: str | None = Field(default=None, description="IANA zone of local times")
    reason: str | None = None


class OutageList(BaseModel):
    """Several outages under one key."""

    outages: list[OutageIn] = Field(max_length=MAX_ITEMS)


def _batch_schema(schema: dict[str, Any]) -> None:
    one = OutageIn.model_json_schema()
    schema.clear()
    schema.update(
        {
            "title": "OutagesBody",
            "description": "One outage, a list of them, or {outages: [...]}; all or nothing.",
            "oneOf": [
                one,
                {"type": "array", "items": one, "minItems": 1, "maxItems": MAX_ITEMS},
                {
                    "type": "object",
                    "properties": {"outages": {"type": "array", "items": one}},
                    "required": ["outages"],
                },
            ],
        }
    )


class OutagesBody(RootModel[Any]):
    """The body of a post: checked item by item, every problem reported at once."""

    model_config = ConfigDict(json_schema_extra=_batch_schema)


class OutageResult(BaseModel):
    """What became of one posted outage."""

    index: int
    id: int
    external_id: str
    result: Literal["created", "updated", "unchanged"]


class OutagesStored(BaseModel):
    """The posted outages, in the order sent."""

    outages: list[OutageResult]


class OutageOut(BaseModel):
    """A stored outage."""

    id: int
    external_id: str
    kind: Literal["planned", "emergency"]
    source: Literal["import", "api"]
    settlement: str
    street: str
    houses: str
    feeder: str | None
    substation: str | None
    feeder_key: str | None = Field(default=None, description="the feeder as compared")
    substation_key: str | None = Field(default=None, description="the substation as compared")
    starts_at: datetime
    expected_end_at: datetime
    reason: str


class OutageQuery(PageQuery):
    """Filters of the outage list."""

    active: bool = Field(default=False, description="only the outages in effect now")


def _items(payload: Any) -> list[Any]:
    if isinstance(payload, dict) and set(payload) == {"outages"}:
        payload = payload["outages"]
    if isinstance(payload, dict):
        return [payload]
    if isinstance(payload, list):
        return payload
    raise ApiError(400, "send an outage as a JSON object, or a list of them")


def _checked(items: list[Any]) -> tuple[list[OutageInput], list[dict[str, Any]]]:
    outages: list[OutageInput] = []
    errors: list[dict[str, Any]] = []
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append({"index": index, "field": "*", "reason": "ожидается объект JSON"})
            continue
        try:
            outage = parse_outage(item)
        except InvalidOutage as exc:
            errors.extend(
                {"index": index, "field": field, "reason": reason} for field, reason in exc.problems
            )
            continue
        if outage.external_id in first:
            reason = f"то же отключение, что в элементе {first[outage.external_id]}"
            errors.append({"index": index, "field": "external_id", "reason": reason})
            continue
        first[outage.external_id] = index
        outages.append(outage)
    return outages, errors


@bp.post("")
@operation(
    permission="imports.write",
    all_regions=True,
    resp=Responses(
        HTTP_200=(OutagesStored, "every outage was known (updated or unchanged)"),
        HTTP_201=(OutagesStored, "at least one outage was created"),
    ),
    tags=TAGS,
)
def post_outages(json: OutagesBody) -> tuple[dict[str, Any], int]:
    """Create or update outages (all or nothing).

    A 400 "invalid outages" stores none and lists every problem in `details` as
    `{"index", "field", "reason"}` (reasons in Russian).
    """
    items = _items(json.root)
    if not items:
        raise ApiError(400, "no outages in the request")
    if len(items) > MAX_ITEMS:
        raise ApiError(400, f"at most {MAX_ITEMS} outages per request, got {len(items)}")
    outages, errors = _checked(items)
    if errors:
        raise ApiError(400, "invalid outages", errors)
    results: list[dict[str, Any]] = []
    with api_services().db.transaction() as s:
        for index, outage in enumerate(outages):
            row, result = upsert_outage(s, outage, source="api")
            results.append(
                {"index": index, "id": row.id, "external_id": row.external_id, "result": result}
            )
    created = any(r["result"] == "created" for r in results)
    return {"outages": results}, 201 if created else 200


@bp.get("")
@operation(
    permission="consumers.read",
    resp=Responses(HTTP_200=page_model(OutageOut)),
    tags=TAGS,
)
def list_outages(query: OutageQuery) -> dict[str, Any]:
    """Outages, latest start first (with `active=true`, those in effect now)."""
    services = api_services()
    with services.db.transaction() as s:
        page = outages_page(
            s,
            active_at=services.clock() if query.active else None,
            limit=query.limit,
            cursor=query.cursor,
        )
        return page_body(page, outage_as_dict)
