"""``app/openapi.json`` is the contract: it names every API route, and the API keeps to it.

Schemathesis generates requests from the document (valid ones and invalid ones) and sends them
through the app with a valid token; no answer may be a 5xx or differ from the documented
statuses, headers and schemas.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings

from app.views.api import OPENAPI_PATH
from tests.api_helpers import bearer, loopback_only

DOCUMENT = json.loads(OPENAPI_PATH.read_text())
HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def test_every_api_route_and_method_is_documented(app: Flask) -> None:
    routes = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("api.")
        for method in rule.methods & HTTP_METHODS
    }
    documented = {
        (path, method) for path, operations in DOCUMENT["paths"].items() for method in operations
    }
    assert routes == documented


def test_every_operation_documents_its_errors_and_security() -> None:
    assert DOCUMENT["openapi"] == "3.1.0"
    assert DOCUMENT["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path, operations in DOCUMENT["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if operation.get("security") == []:
                continue  # the document itself
            assert {"401", "403", "429"} <= set(responses), (method, path)
            for status, response in responses.items():
                if status.startswith("4"):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (status, path)


def test_the_served_document_is_the_file(client) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.get_json() == DOCUMENT


@pytest.fixture
def app_config() -> dict[str, Any]:
    # Small images keep generated requests quick; room in the rate limit for every example.
    return {
        "MAX_IMAGE_BYTES": 200_000,
        "MAX_CONTENT_LENGTH": 2_000_000,
        "API_RATE_LIMIT_PER_MINUTE": 0,
    }


# The document cannot say which bytes are a decodable image, so a schema-valid request may still
# be refused for its image (413, 415, 422); nor which cursors we issued, so a made-up cursor is a
# 400. Invalid data may also be refused as too large (413: more than 100 items in a batch).
ACCEPTED = ["2xx", "401", "403", "404", "413", "415", "422", "429"]
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {"expected-statuses": ACCEPTED},
            "negative_data_rejection": {
                "expected-statuses": ["400", "401", "403", "404", "405", "413", "415", "422", "429"]
            },
        },
        "operations": [
            {
                "include-operation-id": "listItems",
                "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "400"]}},
            }
        ],
    }
)
schema = schemathesis.openapi.from_path(OPENAPI_PATH, config=CONFIG)


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_to_its_document(case: Any, app: Flask, token: str) -> None:
    # Through this test's app, in-process (checks that send again use it too), with the
    # network closed: generated image URLs must never be looked up or fetched.
    case.operation.schema.app = app
    with loopback_only():
        case.call_and_validate(app=app, headers=bearer(token))
