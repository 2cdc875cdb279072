"""Every way the API refuses a request: the status, the stable code, a message saying how to fix
it, the field at fault, and the headers (``WWW-Authenticate``, ``Retry-After``).

The cases are plain data (:data:`CASES`) sent as raw bytes, so ``test_api_waitress.py`` sends the
very same requests to a real server and expects the very same answers.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from urllib3 import encode_multipart_formdata

from app.extensions import db
from app.models.source import Source
from app.services import sources
from app.services.audit import Actor
from tests.api_helpers import b64, bearer, item_body, item_count, jpeg, make_source
from tests.imagegen import animated_gif, png_claiming

# Small limits, so the too-large cases stay small; test_api_waitress gives its server the same.
LIMITS = {"MAX_IMAGE_BYTES": 300_000, "MAX_CONTENT_LENGTH": 1_000_000, "MAX_IMAGE_FRAMES": 5}


@dataclass(frozen=True)
class Raw:
    """A request as bytes on the wire; ``token`` names one of the tokens the transport holds."""

    method: str
    path: str
    body: bytes = b""
    content_type: str | None = "application/json"
    token: str | None = "valid"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class Case:
    """A refused request and the answer it must get."""

    name: str
    request: Callable[[], Raw]
    status: int
    code: str
    message: str  # a phrase the message must contain
    field: str | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)  # name -> prefix


def post_json(payload: Any, token: str | None = "valid") -> Raw:
    return Raw("POST", "/api/v1/items", json.dumps(payload).encode(), token=token)


def post_multipart(fields: dict[str, Any], token: str | None = "valid") -> Raw:
    body, content_type = encode_multipart_formdata(fields)
    return Raw("POST", "/api/v1/items", body, content_type, token)


def inline(data: bytes, **fields: Any) -> Raw:
    return post_json(item_body("e-1", data, **fields))


def with_fields(**fields: Any) -> Raw:
    return post_json(item_body("e-1", jpeg(), **fields))


TRUNCATED_JPEG = jpeg(seed=3)[:2500]
GIF_HEADER_THEN_HTML = b"GIF89a\x01\x00\x01\x00<html><script>alert(1)</script></html>"
GIF_HEADER_THEN_ZIP = b"GIF89a" + b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 40
BOMB_50000 = png_claiming(50000, 50000)
AUTH_HEADER = {"WWW-Authenticate": "Bearer"}

CASES = [
    # Who is asking
    Case(
        "no token",
        lambda: post_json({}, token=None),
        401,
        "unauthorized",
        "Authorization: Bearer",
        headers=AUTH_HEADER,
    ),
    Case(
        "basic auth",
        lambda: post_json({}, token="basic"),
        401,
        "unauthorized",
        "Authorization: Bearer",
        headers=AUTH_HEADER,
    ),
    Case(
        "unknown token",
        lambda: post_json({}, token="bogus"),
        401,
        "invalid_token",
        "not valid",
        headers=AUTH_HEADER,
    ),
    Case(
        "revoked token",
        lambda: post_json({}, token="revoked"),
        401,
        "invalid_token",
        "revoked",
        headers=AUTH_HEADER,
    ),
    Case(
        "disabled source",
        lambda: post_json({}, token="disabled"),
        403,
        "source_disabled",
        "switched off",
    ),
    # The request as a whole
    Case(
        "not json",
        lambda: Raw("POST", "/api/v1/items", b"{external_id: 1"),
        400,
        "invalid_json",
        "not valid JSON",
    ),
    Case("json array", lambda: post_json([1, 2]), 400, "invalid_type", "must be a JSON object"),
    Case(
        "text/plain body",
        lambda: Raw("POST", "/api/v1/items", b"hi", "text/plain"),
        415,
        "unsupported_content_type",
        "application/json",
    ),
    Case(
        "request over MAX_CONTENT_LENGTH",
        lambda: inline(b"\xff" * 800_000),
        413,
        "request_too_large",
        "larger than 1,000,000 bytes",
    ),
    # Fields
    Case(
        "external_id missing",
        lambda: post_json({"image": {"data": b64(jpeg())}}),
        400,
        "missing_field",
        "external_id is required",
        "external_id",
    ),
    Case(
        "external_id empty",
        lambda: post_json(item_body("", jpeg())),
        400,
        "invalid_value",
        "must not be empty",
        "external_id",
    ),
    Case(
        "external_id too long",
        lambda: post_json(item_body("x" * 256, jpeg())),
        400,
        "too_long",
        "the limit is 255",
        "external_id",
    ),
    Case(
        "external_id a list",
        lambda: post_json(item_body([1], jpeg())),
        400,
        "invalid_type",
        "a string or an integer",
        "external_id",
    ),
    Case(
        "unknown field",
        lambda: with_fields(colour="red"),
        400,
        "unknown_field",
        "Unknown field 'colour'",
        "colour",
    ),
    Case(
        "image missing",
        lambda: post_json({"external_id": "e-1"}),
        400,
        "missing_field",
        "image is required",
        "image",
    ),
    Case(
        "image with data and url",
        lambda: post_json(
            {"external_id": "e", "image": {"data": b64(jpeg()), "url": "https://a.example/x.jpg"}}
        ),
        400,
        "invalid_image_field",
        "exactly one",
        "image",
    ),
    Case(
        "bad base64",
        lambda: post_json({"external_id": "e", "image": {"data": "%%%not64"}}),
        400,
        "invalid_base64",
        "not valid base64",
        "image.data",
    ),
    Case(
        "image url not http",
        lambda: post_json(item_body("e", url="ftp://a.example/x.jpg")),
        400,
        "invalid_url",
        "http:// or https://",
        "image.url",
    ),
    Case(
        "image url too long",
        lambda: post_json(item_body("e", url="https://a.example/" + "x" * 4080)),
        400,
        "invalid_url",
        "the limit is 4096",
        "image.url",
    ),
    Case(
        "uploader.ip not an address",
        lambda: with_fields(uploader={"ip": "300.1.1.1"}),
        400,
        "invalid_ip",
        "is not an IPv4 or IPv6 address",
        "uploader.ip",
    ),
    Case(
        "uploader not an object",
        lambda: with_fields(uploader="alice"),
        400,
        "invalid_type",
        "must be an object",
        "uploader",
    ),
    Case(
        "uploader.name a number",
        lambda: with_fields(uploader={"name": 5}),
        400,
        "invalid_type",
        "must be a string",
        "uploader.name",
    ),
    Case(
        "context.created_at not RFC 3339",
        lambda: with_fields(context={"created_at": "01/05/2024 12:00"}),
        400,
        "invalid_timestamp",
        "RFC 3339",
        "context.created_at",
    ),
    Case(
        "context.created_at without offset",
        lambda: with_fields(context={"created_at": "2024-05-01T12:00:00"}),
        400,
        "invalid_timestamp",
        "offset",
        "context.created_at",
    ),
    Case(
        "metadata a list",
        lambda: with_fields(metadata=[1]),
        400,
        "invalid_type",
        "must be an object",
        "metadata",
    ),
    Case(
        "metadata over 64 KiB",
        lambda: with_fields(metadata={"a": "x" * 70_000}),
        413,
        "metadata_too_large",
        "the limit is 65,536",
        "metadata",
    ),
    Case(
        "callback_url javascript",
        lambda: with_fields(callback_url="javascript:alert(1)"),
        400,
        "invalid_url",
        "http:// or https://",
        "callback_url",
    ),
    # The image
    Case(
        "image over MAX_IMAGE_BYTES",
        lambda: inline(b"\xff\xd8\xff" + b"\x00" * 310_000),
        413,
        "image_too_large",
        "Send a smaller file",
        "image.data",
    ),
    Case("zero-byte image", lambda: inline(b""), 422, "empty_file", "The file is empty", "image"),
    Case(
        "truncated JPEG",
        lambda: inline(TRUNCATED_JPEG),
        422,
        "truncated_image",
        "incomplete",
        "image",
    ),
    Case(
        "text file named .jpg",
        lambda: post_multipart(
            {
                "image": ("cat.jpg", b"just some text, honest", "image/jpeg"),
                "item": json.dumps({"external_id": "e-1"}),
            }
        ),
        415,
        "unsupported_type",
        "not an image we accept",
        "image",
    ),
    Case(
        "GIF header then HTML",
        lambda: inline(GIF_HEADER_THEN_HTML),
        422,
        "polyglot",
        "hidden inside",
        "image",
    ),
    Case(
        "GIF header then ZIP",
        lambda: inline(GIF_HEADER_THEN_ZIP),
        422,
        "corrupt_image",
        "could not be decoded",
        "image",
    ),
    Case(
        "decompression bomb 50000x50000",
        lambda: inline(BOMB_50000),
        422,
        "decompression_bomb",
        "Send a smaller image",
        "image",
    ),
    Case(
        "too many frames",
        lambda: inline(animated_gif(7)),
        422,
        "too_many_frames",
        "more than 5 frames",
        "image",
    ),
    # Multipart
    Case(
        "multipart without image",
        lambda: post_multipart({"item": '{"external_id": "e"}'}),
        400,
        "missing_field",
        "file part named 'image'",
        "image",
    ),
    Case(
        "multipart without item",
        lambda: post_multipart({"image": ("a.jpg", jpeg())}),
        400,
        "missing_field",
        "part named 'item'",
        "item",
    ),
    Case(
        "multipart item not JSON",
        lambda: post_multipart({"image": ("a.jpg", jpeg()), "item": "external_id=e"}),
        400,
        "invalid_json",
        "not valid JSON",
    ),
    Case(
        "multipart with image twice",
        lambda: post_multipart(
            {
                "image": ("a.jpg", jpeg()),
                "item": json.dumps({"external_id": "e", "image": {"data": "AAAA"}}),
            }
        ),
        400,
        "ambiguous_image",
        "not both",
        "image",
    ),
    # Reading
    Case(
        "unknown item",
        lambda: Raw("GET", "/api/v1/items/nope", content_type=None),
        404,
        "not_found",
        "No item with this id",
    ),
    Case(
        "limit not a number",
        lambda: Raw("GET", "/api/v1/items?limit=ten", content_type=None),
        400,
        "invalid_value",
        "whole number",
        "limit",
    ),
    Case(
        "limit over 100",
        lambda: Raw("GET", "/api/v1/items?limit=101", content_type=None),
        400,
        "invalid_value",
        "between 1 and 100",
        "limit",
    ),
    Case(
        "unknown status",
        lambda: Raw("GET", "/api/v1/items?status=gone", content_type=None),
        400,
        "invalid_value",
        "Unknown status 'gone'",
        "status",
    ),
    Case(
        "bad since",
        lambda: Raw("GET", "/api/v1/items?since=yesterday", content_type=None),
        400,
        "invalid_timestamp",
        "RFC 3339",
        "since",
    ),
    Case(
        "bad cursor",
        lambda: Raw("GET", "/api/v1/items?cursor=abc", content_type=None),
        400,
        "invalid_cursor",
        "next_cursor",
        "cursor",
    ),
    # Batches
    Case(
        "batch over 100",
        lambda: Raw(
            "POST",
            "/api/v1/items/batch",
            json.dumps({"items": [{"external_id": str(n)} for n in range(101)]}).encode(),
        ),
        413,
        "batch_too_large",
        "holds 101 items; send at most 100",
        "items",
    ),
    Case(
        "batch empty",
        lambda: Raw("POST", "/api/v1/items/batch", b'{"items": []}'),
        400,
        "invalid_batch",
        "1 to 100",
        "items",
    ),
    Case(
        "batch not a list",
        lambda: Raw("POST", "/api/v1/items/batch", b'{"items": {}}'),
        400,
        "invalid_batch",
        "1 to 100",
        "items",
    ),
    Case(
        "batch as multipart",
        lambda: Raw("POST", "/api/v1/items/batch", b"x", "multipart/form-data; boundary=x"),
        415,
        "unsupported_content_type",
        "application/json",
    ),
]


def make_tokens(app: Flask) -> dict[str, str]:
    """A valid token, one of a disabled source, a revoked one, and two that are no tokens."""
    _, valid = make_source(app, "Forum")
    disabled_id, disabled = make_source(app, "Old forum")
    with app.app_context():
        actor = Actor.system("test")
        sources.set_enabled(db.session.get(Source, disabled_id), False, actor)
        source = db.session.get(Source, make_source(app, "Chat")[0])
        token, revoked = sources.issue_token(source, actor, "leaked")
        sources.revoke_token(token.id, actor)
    return {"valid": valid, "disabled": disabled, "revoked": revoked, "bogus": "mti_" + "x" * 43}


def headers_for(raw: Raw, tokens: dict[str, str]) -> dict[str, str]:
    """The request headers: content type and the named token."""
    headers = {"Content-Type": raw.content_type} if raw.content_type else {}
    if raw.token == "basic":
        headers["Authorization"] = "Basic dXNlcjpwYXNz"
    elif raw.token is not None:
        headers.update(bearer(tokens[raw.token]))
    return headers


def check_reply(case: Case, reply: Reply) -> None:
    """The answer is the one the case expects, in the API's error shape."""
    headers = {name.lower(): value for name, value in reply.headers.items()}
    assert reply.status == case.status, reply.body
    assert headers.get("content-type", "").startswith("application/json")
    assert set(reply.body) == {"error"}
    error = reply.body["error"]
    assert set(error) == {"code", "message", "field"}
    assert error["code"] == case.code
    assert case.message in error["message"]
    assert error["field"] == case.field
    for name, prefix in case.headers.items():
        assert headers.get(name.lower(), "").startswith(prefix), name


@pytest.fixture
def app_config() -> dict[str, Any]:
    return dict(LIMITS)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_refusals_through_the_test_client(app: Flask, client, case: Case) -> None:
    tokens = make_tokens(app)
    raw = case.request()
    response = client.open(
        raw.path, method=raw.method, data=raw.body, headers=headers_for(raw, tokens)
    )
    check_reply(case, Reply(response.status_code, dict(response.headers), response.get_json()))
    assert item_count(app) == 0  # nothing refused is ever stored


def test_rate_limit_answers_429_with_retry_after(app: Flask, client) -> None:
    app.config.update(API_RATE_LIMIT_PER_MINUTE=60, API_RATE_LIMIT_BURST=3)
    _, token = make_source(app)
    statuses = [client.get("/api/v1/items", headers=bearer(token)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = client.get("/api/v1/items", headers=bearer(token))
    assert response.headers["Retry-After"] == "1"
    assert response.get_json()["error"]["code"] == "rate_limited"
    assert "Wait 1 s" in response.get_json()["error"]["message"]
    # Each token has its own bucket.
    _, other = make_source(app, "Other")
    assert client.get("/api/v1/items", headers=bearer(other)).status_code == 200


def test_a_batch_costs_one_per_item(app: Flask, client) -> None:
    app.config.update(API_RATE_LIMIT_PER_MINUTE=60, API_RATE_LIMIT_BURST=10)
    _, token = make_source(app)
    batch = {"items": [{"external_id": str(n)} for n in range(10)]}
    assert client.post("/api/v1/items/batch", json=batch, headers=bearer(token)).status_code == 200
    response = client.post("/api/v1/items/batch", json=batch, headers=bearer(token))
    assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1


def test_unknown_api_path_and_method_answer_json(client) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
    response = client.delete("/api/v1/items")
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"
