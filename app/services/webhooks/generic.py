"""The generic receiver: our own item JSON, signed by the platform with Standard Webhooks.

For platforms without a receiver of their own. The body is what ``POST /api/v1/items`` takes
(one item), ``{"items": [...]}`` (up to 100), or either inside a Standard Webhooks envelope
``{"type": "...", "timestamp": "...", "data": ...}``. The headers are ``webhook-id``,
``webhook-timestamp`` (within five minutes of our clock) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of id.timestamp.body>``), keyed with the source's ``whsec_`` secret.
The ``webhook-id`` is kept, so a retry of a handled message is answered 200 and ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import current_app

from app.models.source import Source
from app.services.submission import IngestError, parse_item
from app.services.webhooks import Delivery, HookRefused, text
from app.services.webhooks.signatures import verify_standard

MAX_ITEMS = 100


def verify(secret: str, headers: Mapping[str, str], body: bytes) -> None:
    """Check the Standard Webhooks signature and the timestamp's age."""
    verify_standard(
        secret,
        body,
        headers.get("webhook-id"),
        headers.get("webhook-timestamp"),
        headers.get("webhook-signature"),
    )


def read(payload: Any, headers: Mapping[str, str], source: Source) -> Delivery:
    """Check every item as the API would; one bad item refuses the whole message (400)."""
    event = "items"
    if (
        isinstance(payload, dict)
        and "data" in payload
        and set(payload) <= {"type", "timestamp", "data"}
    ):
        event = text(payload.get("type"), 64) or event
        payload = payload["data"]
    if isinstance(payload, dict) and set(payload) == {"items"}:
        entries, prefix = payload["items"], "items[{}]."
        if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_ITEMS:
            raise HookRefused(400, "invalid_batch", "items must be a list of 1 to 100 items.")
    else:
        entries, prefix = [payload], ""
    delivery = Delivery(event=event, delivery_id=text(headers.get("webhook-id")))
    max_bytes = int(current_app.config["MAX_IMAGE_BYTES"])
    for index, entry in enumerate(entries):
        try:
            delivery.submissions.append(
                parse_item(entry, max_image_bytes=max_bytes, prefix=prefix.format(index))
            )
        except IngestError as error:
            where = f" ({error.field})" if error.field else ""
            raise HookRefused(error.status, error.code, f"{error.message}{where}") from None
    return delivery
