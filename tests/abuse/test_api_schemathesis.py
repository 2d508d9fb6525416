"""``schemathesis`` against ``/api/openapi.json``, in-process over WSGI, as an admin of every
region: for every operation, generated requests (valid ones and invalid ones) never get a
5xx, and every answer conforms to the document (status declared, body valid, content type).
Examples are few per operation so the run stays within seconds."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import given
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.abuse.conftest import auth
from tests.abuse.strategies import fuzz

CHECKS = {
    GenerationMode.POSITIVE: [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ],
    # An invalid request may be answered by routing before any view (a 405 of a sibling
    # route's method): any 4xx will do, with the one error body of its status.
    GenerationMode.NEGATIVE: [
        not_a_server_error,
        content_type_conformance,
        response_schema_conformance,
    ],
}


def _operations(app: Flask) -> list[Any]:
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30
    return operations


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_api_conforms_to_its_document_and_never_fails(
    abuse_app: Flask, admin_token: str, mode: GenerationMode
) -> None:
    headers = auth(admin_token)
    failures = []
    for operation in _operations(abuse_app):

        @fuzz(4)
        @given(case=operation.as_strategy(generation_mode=mode))
        def call(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS[mode])

        try:
            call()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # no parameter to get wrong
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - all operations, all failures
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)


def test_the_token_in_use_still_works(abuse_app: Flask, admin_token: str) -> None:
    """The run above acts as this admin: nothing it generates revokes the admin's token."""
    response = abuse_app.test_client().get("/api/me", headers=auth(admin_token))
    assert response.status_code == 200


def test_an_id_beyond_the_database_integer_is_a_404(abuse_app: Flask, admin_token: str) -> None:
    """Regression: 2**32-1 gave PostgreSQL's 'integer out of range', 2**70 SQLite's
    OverflowError (500s); the console shares the routes' converter."""
    client = abuse_app.test_client()
    for number in (2**31, 2**32 - 1, 2**70):
        for path in (f"/api/campaigns/{number}", f"/api/cases/{number}", f"/api/imports/{number}"):
            response = client.get(path, headers=auth(admin_token))
            assert response.status_code == 404, path
            assert response.get_json()["error"]["code"] == "not_found"
    assert client.get(f"/api/interactions/{2**40}", headers=auth(admin_token)).status_code == 404
    assert client.get(f"/api/interactions/{2**70}", headers=auth(admin_token)).status_code == 404


def test_the_unknown_account_filter_of_cases_is_a_documented_404(
    abuse_app: Flask, admin_token: str
) -> None:
    client = abuse_app.test_client()
    response = client.get("/api/cases?account=nope", headers=auth(admin_token))
    assert response.status_code == 404
    document = client.get("/api/openapi.json").get_json()
    assert "404" in document["paths"]["/api/cases"]["get"]["responses"]
