"""Rocket.Chat: the outgoing integration's ``fileUploaded`` event.

Rocket.Chat signs nothing: the integration's ``token`` travels in the JSON body and is compared
in constant time with the source's webhook secret (pasted into the integration's Token field).
Each image is an attachment whose ``title_link`` is the original
(``/file-upload/<file id>/<name>``; ``image_url`` may be a thumbnail), relative to the server's
address (the ``base_url`` setting). Files are protected by default, so those relative URLs are
fetched with the bot user's ``rocketchat_user_id`` / ``rocketchat_auth_token`` settings
(``app.services.webhooks.credentials``), and only on the configured host.

Rocket.Chat posts any ``text`` or ``attachments`` in our answer into the room, so the receiver
answers ``{}``. An image's external id is ``rocketchat:file:<file id>``; a delivery is
recognised by its ``message_id``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from app.models.source import Source
from app.services.webhooks import (
    MAX_IMAGES_PER_DELIVERY,
    Delivery,
    ImageRef,
    absolute_url,
    base_url_of,
    text,
)
from app.services.webhooks.signatures import SignatureError, verify_plain_secret

ROOM_PATHS = {"c": "channel", "p": "group", "d": "direct"}


def verify(secret: str, headers: Mapping[str, str], body: bytes) -> None:
    """Check the ``token`` field of the body."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise SignatureError("The body is not JSON, so it has no token field.") from None
    token = payload.get("token") if isinstance(payload, dict) else None
    verify_plain_secret(secret, token if isinstance(token, str) else None, "token field")


def read(payload: Any, headers: Mapping[str, str], source: Source) -> Delivery:
    """The images of a ``fileUploaded`` message (other events have none)."""
    payload = payload if isinstance(payload, dict) else {}
    message = payload.get("message") if isinstance(payload.get("message"), dict) else {}
    message_id = text(payload.get("message_id") or message.get("_id"))
    # fileUploaded has no event name in its body; a message with files is one.
    event = "fileUploaded" if message.get("file") or message.get("attachments") else "message"
    delivery = Delivery(event=event, delivery_id=f"message:{message_id}" if message_id else None)
    base = base_url_of(source)
    author = message.get("u") if isinstance(message.get("u"), dict) else {}
    room = payload.get("room") if isinstance(payload.get("room"), dict) else {}
    context_url = None
    if base and message_id:
        kind = ROOM_PATHS.get(str(room.get("t") or "c"), "channel")
        place = room.get("name") if kind != "direct" else room.get("_id")
        place = place or payload.get("channel_name") or message.get("rid")
        if place:
            context_url = f"{base}/{kind}/{quote(str(place))}?msg={quote(message_id)}"
    for file_id, raw_url, name in _files(message):
        url = absolute_url(raw_url, base)
        if url is None:
            continue
        delivery.images.append(
            ImageRef(
                external_id=f"rocketchat:file:{file_id}",
                url=url,
                uploader_id=text(payload.get("user_id") or author.get("_id")),
                uploader_name=text(payload.get("user_name") or author.get("username")),
                context_url=context_url,
                context_text=text(message.get("msg") or payload.get("text"), 10_000),
                created_at=text(payload.get("timestamp") or message.get("ts")),
                metadata={
                    "platform": "rocketchat",
                    "message_id": message_id,
                    "room_id": text(message.get("rid") or payload.get("channel_id")),
                    "filename": name,
                },
                # Credentials only ever go with the server's own relative file paths.
                with_credentials=raw_url.startswith("/file-upload/"),
            )
        )
    delivery.images = delivery.images[:MAX_IMAGES_PER_DELIVERY]
    if not delivery.images:
        delivery.note = "The message has no image files."
    return delivery


def _files(message: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """``(file id, original URL, file name)`` of each image in the message, each file once."""
    found: dict[str, tuple[str, str | None]] = {}
    for attachment in message.get("attachments") or []:
        if not isinstance(attachment, dict):
            continue
        is_image = str(attachment.get("image_type") or "").startswith("image/")
        if not (is_image or attachment.get("image_url")):
            continue
        link = attachment.get("title_link") or attachment.get("image_url")
        if not isinstance(link, str):
            continue
        parts = link.split("/")
        file_id = parts[2] if link.startswith("/file-upload/") and len(parts) > 3 else None
        found.setdefault(file_id or link, (link, text(attachment.get("title"))))
    upload = message.get("file")
    if not found and isinstance(upload, dict) and str(upload.get("type", "")).startswith("image/"):
        file_id, name = text(upload.get("_id")), text(upload.get("name")) or "file"
        if file_id:
            found[file_id] = (f"/file-upload/{file_id}/{quote(name)}", name)
    return [(key, link, name) for key, (link, name) in found.items()]
