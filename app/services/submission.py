"""Reading what a platform says about an item: every field checked, every refusal explained.

A submission arrives as JSON (the image inline as base64, or by URL) or as multipart (the image as
a file part, the rest as JSON). Both end up as one :class:`Submission`. Each refusal is an
:class:`IngestError` naming the field by its JSON path (``uploader.ip``), so the platform's
developer sees at once what to fix. Nothing here touches the database or decodes an image.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MAX_EXTERNAL_ID = 255
MAX_URL = 4096
MAX_CALLBACK_URL = 2048
MAX_NAME = 255
MAX_CONTEXT_TEXT = 10_000
MAX_METADATA_BYTES = 64 * 1024
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
# Scheme, host name or [IPv6], port, then printable ASCII; no user:password@ (it has no place in
# an image URL and would leak into logs). app/openapi.json carries the same pattern.
HTTP_URL = re.compile(
    r"^[Hh][Tt][Tt][Pp][Ss]?://(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
    r"(?:[/?#][\x21-\x7e]*)?$"
)
ITEM_FIELDS = {"external_id", "image", "uploader", "context", "metadata", "callback_url"}


class IngestError(Exception):
    """A refused submission: ``code`` for machines, ``message`` for people, ``field`` its path."""

    def __init__(self, code: str, message: str, status: int = 400, field: str | None = None):
        super().__init__(message)
        self.code, self.message, self.status, self.field = code, message, status, field


@dataclass
class Submission:
    """One item as the platform described it, checked but not yet stored."""

    external_id: str
    image_data: bytes | None = None
    image_url: str | None = None
    declared_type: str | None = None  # the multipart part's Content-Type; the bytes decide
    uploader_id: str | None = None
    uploader_name: str | None = None
    uploader_ip: str | None = None
    context_url: str | None = None
    context_text: str | None = None
    context_created_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    callback_url: str | None = None


def parse_json_body(raw: bytes) -> Any:
    """The request body as JSON, or a 400 that says where the JSON breaks."""
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise IngestError(
            "invalid_json", "The body is not UTF-8 text; send JSON in UTF-8."
        ) from None
    except json.JSONDecodeError as exc:
        raise IngestError(
            "invalid_json",
            f"The body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
        ) from None


def parse_item(
    payload: Any,
    *,
    max_image_bytes: int,
    image_part: bytes | None = None,
    declared_type: str | None = None,
    prefix: str = "",
) -> Submission:
    """Check one item description; ``image_part`` is the multipart file, which replaces ``image``.

    ``prefix`` is put before field paths (``items[3].``) so batch errors point at the right item.
    """
    if not isinstance(payload, dict):
        raise IngestError(
            "invalid_type", "The item must be a JSON object.", field=prefix[:-1] or None
        )
    unknown = sorted(set(payload) - ITEM_FIELDS)
    if unknown:
        raise IngestError(
            "unknown_field",
            f"Unknown field {unknown[0]!r}; the fields are {', '.join(sorted(ITEM_FIELDS))}.",
            field=prefix + unknown[0],
        )
    sub = Submission(external_id=_external_id(payload.get("external_id"), prefix))
    if image_part is not None:
        if payload.get("image") is not None:
            raise IngestError(
                "ambiguous_image",
                "Send the image either as the file part or in the JSON 'image' field, not both.",
                field=prefix + "image",
            )
        sub.image_data, sub.declared_type = image_part, declared_type
    else:
        sub.image_data, sub.image_url = _image(payload.get("image"), max_image_bytes, prefix)
    uploader = _object(payload.get("uploader"), prefix + "uploader", {"id", "name", "ip"})
    sub.uploader_id = _identifier(uploader.get("id"), prefix + "uploader.id")
    sub.uploader_name = _text(uploader.get("name"), prefix + "uploader.name", MAX_NAME)
    sub.uploader_ip = _ip(uploader.get("ip"), prefix + "uploader.ip")
    context = _object(payload.get("context"), prefix + "context", {"url", "text", "created_at"})
    sub.context_url = _text(context.get("url"), prefix + "context.url", MAX_URL)
    sub.context_text = _text(context.get("text"), prefix + "context.text", MAX_CONTEXT_TEXT)
    sub.context_created_at = parse_timestamp(
        context.get("created_at"), prefix + "context.created_at"
    )
    sub.metadata = _metadata(payload.get("metadata"), prefix + "metadata")
    sub.callback_url = check_http_url(
        payload.get("callback_url"), prefix + "callback_url", MAX_CALLBACK_URL
    )
    return sub


def check_http_url(value: Any, path: str, max_length: int = MAX_URL) -> str | None:
    """An absolute http(s) URL (RFC 3986, ASCII) of at most ``max_length``, or None when absent.

    The same pattern is in the OpenAPI document, so what the document calls valid is accepted.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise _type_error(path, "a URL string")
    if len(value) > max_length:
        raise IngestError(
            "invalid_url",
            f"The URL is {len(value)} characters long; the limit is {max_length}.",
            field=path,
        )
    if not HTTP_URL.match(value):
        raise IngestError(
            "invalid_url",
            "The URL must be an absolute http:// or https:// URL "
            "with a host and no spaces (percent-encode other characters), such as "
            "https://cdn.example.org/a.jpg.",
            field=path,
        )
    return value


def parse_timestamp(value: Any, path: str) -> datetime | None:
    """An RFC 3339 timestamp with its offset (``2024-05-01T12:00:00Z``), or None when absent."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise _type_error(path, "an RFC 3339 timestamp string")
    if RFC3339.match(value):
        # fromisoformat takes at most microseconds and no leap second: trim the digits, and
        # count a leap second as the moment before it.
        text = re.sub(r"(\.\d{6})\d+", r"\1", value.upper())
        text = re.sub(r"(T\d{2}:\d{2}):60(\.\d+)?", r"\1:59.999999", text)
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass
    raise IngestError(
        "invalid_timestamp",
        "Give the time in RFC 3339 form with its offset, such as 2024-05-01T12:00:00Z.",
        field=path,
    )


def _external_id(value: Any, prefix: str) -> str:
    path = prefix + "external_id"
    if value is None:
        raise IngestError(
            "missing_field",
            "external_id is required: your platform's id for this "
            "image, so a re-delivery is recognised.",
            field=path,
        )
    text = _identifier(value, path)
    if not text:
        raise IngestError("invalid_value", "external_id must not be empty.", field=path)
    return text


def _identifier(value: Any, path: str) -> str | None:
    # Platforms often number their users and posts; a JSON integer is taken as its decimal text.
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 7.0 is an integer to JSON Schema too
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return _text(value, path, MAX_EXTERNAL_ID, kind="a string or an integer")


def _text(value: Any, path: str, max_length: int, kind: str = "a string") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _type_error(path, kind)
    if len(value) > max_length:
        raise IngestError(
            "too_long",
            f"{path} is {len(value)} characters long; the limit is {max_length}.",
            field=path,
        )
    if "\x00" in value:  # PostgreSQL cannot store it, and no platform means it
        raise IngestError("invalid_value", f"{path} contains a NUL character.", field=path)
    return value


def _object(value: Any, path: str, allowed: set[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _type_error(path, "an object")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise IngestError(
            "unknown_field",
            f"Unknown field {unknown[0]!r} in {path}; the fields are {', '.join(sorted(allowed))}.",
            field=f"{path}.{unknown[0]}",
        )
    return value


def _image(value: Any, max_bytes: int, prefix: str) -> tuple[bytes | None, str | None]:
    path = prefix + "image"
    if value is None:
        raise IngestError(
            "missing_field",
            'image is required: {"data": "<base64>"} or {"url": "https://…"}.',
            field=path,
        )
    image = _object(value, path, {"data", "url"})
    data, url = image.get("data"), image.get("url")
    if (data is None) == (url is None):
        raise IngestError(
            "invalid_image_field",
            'image needs exactly one of "data" (base64) and "url".',
            field=path,
        )
    if url is not None:
        return None, check_http_url(url, path + ".url")
    if not isinstance(data, str):
        raise _type_error(path + ".data", "a base64 string")
    # Refuse by length before decoding: base64 is four characters for every three bytes.
    if len(data) > (max_bytes + 2) // 3 * 4 + 4:
        raise IngestError(
            "image_too_large",
            f"The image is larger than {max_bytes:,} bytes. Send a smaller file.",
            status=413,
            field=path + ".data",
        )
    try:
        return base64.b64decode(data, validate=True), None
    except (binascii.Error, ValueError):
        raise IngestError(
            "invalid_base64",
            "image.data is not valid base64 (standard alphabet, with padding, no line breaks).",
            field=path + ".data",
        ) from None


def _ip(value: Any, path: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _type_error(path, "an IP address string")
    try:
        if "%" in value:  # a zone ("fe80::1%eth0") means nothing outside the uploader's host
            raise ValueError
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise IngestError(
            "invalid_ip", f"{value[:64]!r} is not an IPv4 or IPv6 address.", field=path
        ) from None


def _metadata(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _type_error(path, "an object")
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_METADATA_BYTES:
        raise IngestError(
            "metadata_too_large",
            f"metadata is {size:,} bytes as JSON; the limit is {MAX_METADATA_BYTES:,}.",
            status=413,
            field=path,
        )
    return value


def _type_error(path: str, kind: str) -> IngestError:
    return IngestError("invalid_type", f"{path} must be {kind}.", field=path)
