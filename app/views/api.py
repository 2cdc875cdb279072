"""The platform API (``/api/v1``): bearer-token authentication, rate limits, JSON errors.

Every route but the OpenAPI document needs ``Authorization: Bearer <token>`` of an enabled
source; the blueprint is exempt from the login gate and from CSRF (``app.security``), so this
module is its only door. Errors always come out as ``{"error": {"code", "message", "field"}}``.
The item routes live in ``app.views.api_items``; ``app/openapi.json`` is the contract.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from sqlalchemy import select
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter

from app.extensions import db
from app.models.source import ApiToken, Source
from app.services.audit import Actor
from app.services.media import MediaError
from app.services.ratelimit import limiter_for, retry_after_seconds
from app.services.sources import SourceRef, check_token
from app.services.submission import IngestError

bp = Blueprint("api", __name__, url_prefix="/api/v1")


class ItemIdConverter(BaseConverter):
    """An item id in a URL: URL-safe characters, and never the word ``batch``.

    Without the exclusion ``/items/batch`` would also match ``GET /items/<id>``, and the
    automatic ``OPTIONS`` answer would advertise a ``GET`` that only ever says "not found".
    """

    regex = r"(?!batch(?![A-Za-z0-9_-]))[A-Za-z0-9_-]{1,64}"


bp.record_once(lambda state: state.app.url_map.converters.setdefault("item_id", ItemIdConverter))
OPENAPI_PATH = Path(__file__).resolve().parent.parent / "openapi.json"
PUBLIC_ENDPOINTS = {"api.openapi_document"}
REALM = 'Bearer realm="modtools-image"'


class ApiError(Exception):
    """An error answer: HTTP ``status``, a stable ``code``, a ``message`` saying how to fix it."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """The JSON every API error carries."""
    return {"error": {"code": code, "message": message, "field": field}}


def current_source() -> Source:
    """The source whose token authenticated this request (loaded on first use)."""
    if "api_source" not in g:
        g.api_source = db.session.get(Source, g.api_grant.source.id)
    return g.api_source


def current_source_ref() -> SourceRef:
    """The id and slug of this request's source, without loading it (the ingest path)."""
    return g.api_grant.source


def current_actor() -> Actor:
    """The audit actor for this request: the source, from the client's address."""
    return Actor.for_source(current_source_ref(), request.remote_addr)


def charge(cost: float) -> None:
    """Spend ``cost`` more of the token's rate limit; raise 429 when it is spent."""
    wait = limiter_for(current_app).take(g.api_grant.token_id, cost)
    if wait:
        seconds = retry_after_seconds(wait)
        raise ApiError(
            429,
            "rate_limited",
            f"This token sent more than its rate limit allows. Wait {seconds} s, then resend.",
            headers={"Retry-After": str(seconds)},
        )


@bp.before_request
def authenticate() -> None:
    """Find the source of the bearer token, or refuse: 401 no or bad token, 403 source off."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    raw = raw.strip()
    if scheme.lower() != "bearer" or not raw:
        raise ApiError(
            401,
            "unauthorized",
            "Send the source's API token as 'Authorization: Bearer <token>'.",
            headers={"WWW-Authenticate": REALM},
        )
    grant = check_token(raw)
    if grant is None:
        if _token_of_disabled_source(raw):
            raise ApiError(
                403,
                "source_disabled",
                "This token's source is switched off. An "
                "admin can switch it on again on the source's page.",
            )
        raise ApiError(
            401,
            "invalid_token",
            "The API token is not valid: it may be mistyped "
            "or revoked. An admin can issue a new one on the source's page.",
            headers={"WWW-Authenticate": REALM + ', error="invalid_token"'},
        )
    g.api_grant = grant
    charge(1)


def _token_of_disabled_source(raw: str) -> bool:
    # Tokens are stored as their SHA-256 (app.models.source.ApiToken), so the lookup is by hash.
    digest = hashlib.sha256(raw.encode()).hexdigest()
    token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    return token is not None and token.revoked_at is None and not token.source.enabled


@bp.get("/openapi.json")
def openapi_document() -> Response:
    """The OpenAPI 3.1 document of this API; no token needed."""
    response = current_app.response_class(_openapi_text(), mimetype="application/json")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@cache
def _openapi_text() -> str:
    return json.dumps(json.loads(OPENAPI_PATH.read_text()), separators=(",", ":"))


@bp.errorhandler(ApiError)
def api_error(error: ApiError) -> tuple[Response, int, dict[str, str]]:
    return jsonify(error_body(error.code, error.message, error.field)), error.status, error.headers


@bp.errorhandler(IngestError)
def ingest_error(error: IngestError) -> tuple[Response, int]:
    return jsonify(error_body(error.code, error.message, error.field)), error.status


@bp.errorhandler(MediaError)
def media_error(error: MediaError) -> tuple[Response, int]:
    return jsonify(error_body(error.code, error.message, "image")), error.status


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException) -> Any:
    """Werkzeug's errors (413 over MAX_CONTENT_LENGTH, 405 …) in the API's JSON shape."""
    if error.code is None or error.code < 400:
        return error
    if error.code == 413:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        body = error_body(
            "request_too_large",
            f"The request is larger than {limit:,} bytes, "
            "the most this server accepts. Send fewer or smaller images.",
        )
    else:
        body = error_body(error.name.lower().replace(" ", "_"), error.description or error.name)
    response = jsonify(body)
    response.status_code = error.code
    for name, value in error.get_headers():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response


from app.views import api_check, api_items  # noqa: E402,F401  (they register their routes on bp)
