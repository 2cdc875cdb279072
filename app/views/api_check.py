"""``POST /api/v1/check``: the synchronous upload check, on the API blueprint and its token auth.

The image is the raw body (any ``image/*`` Content-Type) or JSON ``{"data": "<base64>"}``;
``?enqueue=true`` also accepts it as an item for review. The view parses; ``app.services.check``
decides.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from flask import Response, current_app, jsonify, request

from app.services import check
from app.services.media import read_limited
from app.services.submission import IngestError, parse_json_body
from app.views.api import ApiError, bp, current_actor, current_source_ref

CHECK_FIELDS = {"data", "external_id"}
ENQUEUE_WORDS = {"true": True, "1": True, "false": False, "0": False}


@bp.post("/check")
def check_image() -> Response:
    """Block, review or allow one image within milliseconds; never "allow" on an internal error."""
    max_bytes = int(current_app.config["MAX_IMAGE_BYTES"])
    enqueue = _enqueue(request.args.get("enqueue"))
    external_id = _external_id(request.args.get("external_id"))
    declared_type = None
    if request.mimetype.startswith("image/"):
        data = read_limited(request.stream, max_bytes)
        declared_type = request.mimetype
    elif request.mimetype == "application/json":
        payload = parse_json_body(request.get_data(cache=False))
        data = _base64_image(payload, max_bytes)
        external_id = _external_id(payload.get("external_id")) or external_id
    else:
        raise ApiError(
            415,
            "unsupported_content_type",
            "Send the image as the request body with "
            'its image/* Content-Type, or as JSON {"data": "<base64>"}.',
        )
    try:
        answer = check.check_image(
            data,
            source=current_source_ref(),  # the check itself needs no row of the source
            actor=current_actor(),
            declared_type=declared_type,
            enqueue=enqueue,
            external_id=external_id,
        )
    except check.CheckFailed as failure:
        raise ApiError(
            failure.status,
            failure.code,
            failure.message,
            headers={"Retry-After": "5"} if failure.status == 503 else None,
        ) from None
    return jsonify(answer.as_json())


def _enqueue(value: str | None) -> bool:
    if value is None:
        return False
    if value.lower() not in ENQUEUE_WORDS:
        raise IngestError("invalid_value", "enqueue must be true or false.", field="enqueue")
    return ENQUEUE_WORDS[value.lower()]


def _base64_image(payload: Any, max_bytes: int) -> bytes:
    if not isinstance(payload, dict):
        raise IngestError("invalid_type", 'Send a JSON object: {"data": "<base64>"}.')
    unknown = sorted(set(payload) - CHECK_FIELDS)
    if unknown:
        raise IngestError(
            "unknown_field",
            f"Unknown field {unknown[0]!r}; the fields are data and external_id.",
            field=unknown[0],
        )
    if not isinstance(payload.get("data"), str):
        raise IngestError("missing_field", 'Send {"data": "<base64 of the image>"}.', field="data")
    text = payload["data"]
    if len(text) > (max_bytes + 2) // 3 * 4 + 4:  # refuse by length before decoding
        raise IngestError(
            "image_too_large",
            f"The image is larger than {max_bytes:,} bytes.",
            status=413,
            field="data",
        )
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise IngestError(
            "invalid_base64",
            "data is not valid base64 (standard alphabet, with padding, no line breaks).",
            field="data",
        ) from None


def _external_id(value: Any) -> str | None:
    """The platform's id for an enqueued image (as ingest takes it), or None when not given."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value or len(value) > 255 or "\x00" in value:
        raise IngestError(
            "invalid_value",
            "external_id must be a string of 1 to 255 characters.",
            field="external_id",
        )
    return value
