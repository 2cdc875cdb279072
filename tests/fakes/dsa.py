"""A fake EU DSA Transparency Database API (vendor-apis.md §5 and §9.5), on loopback.

Bearer token (401 otherwise); ``POST /api/v1/statement`` and ``/api/v1/statements`` (1–100,
all or nothing, errors keyed ``statement_N``) check the Laravel rules of §5.3 that matter here,
including the conditional ground fields and the values removed on 2025-07-01; a PUID already
used answers 422 with ``existing``; 201 echoes the statement with uuid, created_at, id,
permalink and self. Behaviour ``"429"`` answers the plain-text rate-limit message.
"""

from __future__ import annotations

import json
import re
import uuid
from itertools import count
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.fakes import FakeService, json_response

TOKEN = "7|ybqkCFX7ZkIFoLxtI0VAk1JBzMR9jVk4c4EU"
CATEGORIES = {
    f"STATEMENT_CATEGORY_{c}"
    for c in (  # noqa: SIM905 (the list as the reference prints it)
        "ANIMAL_WELFARE CONSUMER_INFORMATION CYBER_VIOLENCE CYBER_VIOLENCE_AGAINST_WOMEN "
        "DATA_PROTECTION_AND_PRIVACY_VIOLATIONS ILLEGAL_OR_HARMFUL_SPEECH "
        "INTELLECTUAL_PROPERTY_INFRINGEMENTS NEGATIVE_EFFECTS_ON_CIVIC_DISCOURSE_OR_ELECTIONS "
        "NOT_SPECIFIED_NOTICE OTHER_VIOLATION_TC PROTECTION_OF_MINORS RISK_FOR_PUBLIC_SECURITY "
        "SCAMS_AND_FRAUD SELF_HARM UNSAFE_AND_PROHIBITED_PRODUCTS VIOLENCE"
    ).split()
}
GROUNDS = {
    "DECISION_GROUND_ILLEGAL_CONTENT": (
        "illegal_content_legal_ground",
        "illegal_content_explanation",
    ),
    "DECISION_GROUND_INCOMPATIBLE_CONTENT": (
        "incompatible_content_ground",
        "incompatible_content_explanation",
    ),
}
AUTOMATED = {
    "AUTOMATED_DECISION_FULLY",
    "AUTOMATED_DECISION_PARTIALLY",
    "AUTOMATED_DECISION_NOT_AUTOMATED",
}
SOURCES = {
    "SOURCE_ARTICLE_16",
    "SOURCE_TRUSTED_FLAGGER",
    "SOURCE_TYPE_OTHER_NOTIFICATION",
    "SOURCE_VOLUNTARY",
}
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
PUID = re.compile(r"^[a-zA-Z0-9-_]+$")
DUPLICATE = "The identifier given is not unique within this platform."


def problems(statement: dict[str, Any]) -> dict[str, list[str]]:
    """The validation errors of one statement, as Laravel words them."""
    errors: dict[str, list[str]] = {}

    def need(field: str) -> None:
        if statement.get(field) in (None, "", []):
            errors[field] = [f"The {field.replace('_', ' ')} field is required."]

    for field in (
        "decision_ground",
        "decision_facts",
        "content_type",
        "category",
        "content_date",
        "application_date",
        "source_type",
        "automated_detection",
        "automated_decision",
        "puid",
    ):
        need(field)
    if not any(
        statement.get(f)
        for f in (
            "decision_visibility",
            "decision_monetary",
            "decision_provision",
            "decision_account",
        )
    ):
        errors["decision_visibility"] = [
            "The decision visibility field is required when none of decision monetary / "
            "decision provision / decision account are present."
        ]
    ground = statement.get("decision_ground")
    if ground and ground not in GROUNDS:
        errors["decision_ground"] = ["The selected decision ground is invalid."]
    for field in GROUNDS.get(ground or "", ()):
        need(field)
    if statement.get("category") and statement["category"] not in CATEGORIES:
        errors["category"] = ["The selected category is invalid."]
    if statement.get("automated_decision") and statement["automated_decision"] not in AUTOMATED:
        errors["automated_decision"] = ["The selected automated decision is invalid."]
    if statement.get("automated_detection") not in (None, "Yes", "No"):
        errors["automated_detection"] = ["The selected automated detection is invalid."]
    if statement.get("source_type") and statement["source_type"] not in SOURCES:
        errors["source_type"] = ["The selected source type is invalid."]
    for field in ("content_date", "application_date"):
        if statement.get(field) and not DATE.match(str(statement[field])):
            errors[field] = [f"The {field.replace('_', ' ')} does not match the format Y-m-d."]
    if statement.get("puid") and (
        not PUID.match(str(statement["puid"])) or len(statement["puid"]) > 500
    ):
        errors["puid"] = ["The puid format is invalid."]
    return errors


class FakeDsa(FakeService):
    """The statement endpoints of the Transparency Database, with PUIDs unique per platform."""

    def __init__(self) -> None:
        super().__init__()
        self.stored: dict[str, dict[str, Any]] = {}  # puid → statement
        self.ids = count(4_000_000_001)

    def answer(self, request: Request) -> Response:
        """Authenticate, then route."""
        if self.next_behaviour() == "429":
            return Response(
                "Limit Reached. Please do not overload the API", 429, content_type="text/plain"
            )
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return json_response({"message": "Unauthenticated."}, 401)
        try:
            body = json.loads(request.get_data() or b"null")
        except ValueError:
            return json_response({"message": "Malformed JSON."}, 400)
        if request.path == "/api/v1/statement" and request.method == "POST":
            return self.single(body)
        if request.path == "/api/v1/statements" and request.method == "POST":
            return self.batch(body)
        return json_response({"message": "Not found."}, 404)

    def single(self, statement: dict[str, Any]) -> Response:
        errors = problems(statement)
        if errors:
            return self._invalid(errors)
        if statement["puid"] in self.stored:
            return json_response(
                {
                    "message": DUPLICATE,
                    "errors": {"puid": [DUPLICATE]},
                    "existing": self.stored[statement["puid"]],
                },
                422,
            )
        return json_response(self._store(statement), 201)

    def batch(self, body: dict[str, Any]) -> Response:
        statements = body.get("statements") if isinstance(body, dict) else None
        if not isinstance(statements, list) or not 1 <= len(statements) <= 100:
            return self._invalid(
                {"statements": ["The statements field must have between 1 and 100 items."]}
            )
        errors: dict[str, Any] = {}
        for position, statement in enumerate(statements):
            found = problems(statement)
            if not found and statement["puid"] in self.stored:
                found = {"puid": [DUPLICATE]}
            if found:
                errors[f"statement_{position}"] = found
        if errors:
            return json_response({"errors": errors}, 422)
        return json_response({"statements": [self._store(s) for s in statements]}, 201)

    def _invalid(self, errors: dict[str, list[str]]) -> Response:
        first = next(iter(errors.values()))[0]
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        return json_response({"message": first + more, "errors": errors}, 422)

    def _store(self, statement: dict[str, Any]) -> dict[str, Any]:
        key = str(uuid.uuid4())
        stored = {
            **statement,
            "uuid": key,
            "id": next(self.ids),
            "created_at": "2025-08-02 10:00:00",
            "platform_name": "Test platform",
            "permalink": f"{self.url}/statement/{key}",
            "self": f"{self.url}/api/v1/statement/{key}",
        }
        self.stored[statement["puid"]] = stored
        return stored
