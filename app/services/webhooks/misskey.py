"""Misskey (and Sharkey): note webhooks (``note``, ``reply``, ``renote``, ``mention``).

Misskey sends the webhook's secret as it is in ``X-Misskey-Hook-Secret``; we compare it in
constant time. The body is ``{"server", "hookId", "userId", "eventId", "createdAt", "type",
"body": {"note": {...}}}``; the test button of some versions sends the note as ``body`` itself,
so both are read. Images are ``note.files`` whose ``type`` starts with ``image/``, fetched from
their ``url`` (which may be on another server for remote notes). A renote's own files are empty;
the renoted note's files are read too. An image's external id is ``misskey:file:<file id>``;
a delivery is recognised by ``eventId``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.models.source import Source
from app.services.webhooks import (
    MAX_IMAGES_PER_DELIVERY,
    Delivery,
    ImageRef,
    absolute_url,
    base_url_of,
    text,
)
from app.services.webhooks.signatures import verify_plain_secret

NOTE_EVENTS = {"note", "reply", "renote", "mention"}


def verify(secret: str, headers: Mapping[str, str], body: bytes) -> None:
    """Check ``X-Misskey-Hook-Secret``."""
    verify_plain_secret(secret, headers.get("X-Misskey-Hook-Secret"), "X-Misskey-Hook-Secret")


def read(payload: Any, headers: Mapping[str, str], source: Source) -> Delivery:
    """The images of a note event; other events (follows, reactions) carry none."""
    payload = payload if isinstance(payload, dict) else {}
    event = text(payload.get("type"), 64) or "unknown"
    event_id = text(payload.get("eventId"))
    delivery = Delivery(event=event, delivery_id=f"event:{event_id}" if event_id else None)
    body = payload.get("body") if isinstance(payload.get("body"), dict) else {}
    note = body.get("note") if isinstance(body.get("note"), dict) else body
    if event not in NOTE_EVENTS or not note.get("id"):
        delivery.note = f"The {event} event carries no note; nothing to check."
        return delivery
    base = base_url_of(source, text(payload.get("server"), 2048))
    notes = [note]
    if isinstance(note.get("renote"), dict):
        notes.append(note["renote"])
    for each in notes:
        _read_note(each, base, delivery)
    delivery.images = delivery.images[:MAX_IMAGES_PER_DELIVERY]
    if not delivery.images:
        delivery.note = "The note has no images."
    return delivery


def _read_note(note: dict[str, Any], base: str | None, delivery: Delivery) -> None:
    user = note.get("user") if isinstance(note.get("user"), dict) else {}
    username = text(user.get("username"))
    if username and user.get("host"):
        username = f"{username}@{user['host']}"
    note_id = text(note.get("id"))
    context = "\n\n".join(
        p for p in (text(note.get("cw"), 500), text(note.get("text"), 10_000)) if p
    )
    for file in note.get("files") or []:
        if not isinstance(file, dict) or not str(file.get("type") or "").startswith("image/"):
            continue
        url = absolute_url(file.get("url"), base)
        if url is None or not file.get("id"):
            continue
        delivery.images.append(
            ImageRef(
                external_id=f"misskey:file:{text(file.get('id'))}",
                url=url,
                uploader_id=text(note.get("userId") or user.get("id")),
                uploader_name=username,
                context_url=f"{base}/notes/{note_id}" if base and note_id else None,
                context_text=context or None,
                created_at=text(note.get("createdAt")),
                metadata={
                    "platform": "misskey",
                    "note_id": note_id,
                    "file_id": text(file.get("id")),
                    "sensitive": bool(file.get("isSensitive")),
                },
            )
        )
