"""Receiving one webhook: find the source, check the platform's proof, read it, make the items.

The order matters. An unknown slug (or one whose kind has no receiver) is 404; then the
signature is checked before anything else is said about the source, so an outsider learns
nothing (401, or 409 for a Standard Webhooks timestamp outside the five-minute window); a
disabled source is 403. A delivery id handled before is answered 200 ``duplicate`` and ignored,
because platforms retry with the same id and a 4xx would make them retry or give up noisily.

Images become URL items through ``ingest.accept_item``: committed and queued, nothing fetched
here, so the platform hears back in milliseconds and the worker fetches with the SSRF-safe
fetcher. An image the platform has not finished processing (Mastodon's ``url: null``) becomes a
waiting item (``waiting``), which gets its URL when it arrives. Every outcome, refusals
included, is written to the receipt log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models.source import Source
from app.services import ingest
from app.services.audit import Actor
from app.services.media import MediaError, Readable, read_limited
from app.services.sources import webhook_secret
from app.services.webhooks import (
    Delivery,
    HookRefused,
    ImageRef,
    discourse,
    generic,
    mastodon,
    misskey,
    replay,
    rocketchat,
    waiting,
)
from app.services.webhooks.signatures import SignatureError

RECEIVERS: dict[str, Any] = {
    "discourse": discourse,
    "mastodon": mastodon,
    "rocketchat": rocketchat,
    "misskey": misskey,
    "generic": generic,
}
DEFAULT_MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class Answer:
    """What the platform is told: the HTTP status and a small JSON body."""

    status: int
    body: dict[str, Any]


def find_source(slug: str, kinds: set[str]) -> Source:
    """The source with this slug if it is one of ``kinds``; otherwise 404."""
    source = db.session.scalar(select(Source).where(Source.slug == slug[:64]))
    if source is None or source.kind not in kinds:
        raise HookRefused(404, "not_found", "No webhook receiver is at this address.")
    return source


def read_body(stream: Readable, content_length: int | None, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is known to be over ``limit`` bytes."""
    too_large = HookRefused(413, "too_large", f"The body is larger than {limit:,} bytes.")
    if content_length is not None and content_length > limit:
        raise too_large
    try:
        return read_limited(stream, limit)
    except MediaError:
        raise too_large from None


def receive_webhook(
    slug: str,
    headers: Mapping[str, str],
    stream: Readable,
    content_length: int | None,
    ip: str | None,
) -> Answer:
    """Handle one webhook request end to end; raises HookRefused for every refusal (logged)."""
    source = find_source(slug, set(RECEIVERS))
    receiver = RECEIVERS[source.kind]
    event = "unknown"
    try:
        limit = int(current_app.config.get("HOOK_MAX_BODY_BYTES", DEFAULT_MAX_BODY))
        body = read_body(stream, content_length, limit)
        secret = webhook_secret(source)
        if not secret:
            raise HookRefused(401, "no_secret", "The source has no webhook secret; rotate it.")
        try:
            receiver.verify(secret, headers, body)
        except SignatureError as error:
            raise HookRefused(
                409 if error.replay else 401,
                "replayed" if error.replay else "bad_signature",
                error.reason,
            ) from None
        if not source.enabled:
            raise HookRefused(403, "source_disabled", "The source is disabled in Modtools Image.")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise HookRefused(400, "invalid_json", "The body is not JSON.") from None
        delivery = receiver.read(payload, headers, source)
        event = delivery.event
        return _take(source, delivery, Actor.for_source(source, ip))
    except HookRefused as refusal:
        db.session.rollback()
        replay.record_receipt(
            source, event=event, status="refused", http_status=refusal.status, error=refusal.message
        )
        raise


def _take(source: Source, delivery: Delivery, actor: Actor) -> Answer:
    if replay.seen(source, delivery.delivery_id):
        return _done(source, delivery, "duplicate", 0)
    created = accept_images(source, delivery.images, actor)
    for submission in delivery.submissions:
        try:
            created += ingest.accept_item(source, submission, actor).created
        except MediaError as refusal:
            raise HookRefused(refusal.status, refusal.code, refusal.message) from None
    status = "accepted" if delivery.images or delivery.submissions else "ignored"
    if delivery.not_ready:
        status = "not_ready" if not delivery.images else status
        held, delivery.note = mastodon.hold_not_ready(source, delivery.not_ready, actor)
        created += held
    if not replay.remember(source, delivery.delivery_id):
        return _done(source, delivery, "duplicate", created)
    return _done(source, delivery, status, created)


def _done(source: Source, delivery: Delivery, status: str, created: int) -> Answer:
    replay.record_receipt(
        source,
        event=delivery.event,
        status=status,
        http_status=200,
        delivery_id=delivery.delivery_id,
        error=delivery.note,
        items_created=created,
    )
    if source.kind == "rocketchat":
        return Answer(200, {})  # any "text" in our answer would be posted into the room
    return Answer(200, {"status": status, "items_created": created, "note": delivery.note})


def accept_images(source: Source, images: list[ImageRef], actor: Actor) -> int:
    """Make (or find again) one URL item per image; returns how many were new.

    An image whose item is waiting for its URL (``waiting``) gives the item that URL instead.
    """
    created = 0
    for image in images:
        submission = image.submission()
        known = ingest.find_by_external_id(source.id, submission.external_id)
        if known is not None and waiting.is_waiting(known):
            waiting.release(known, submission, actor)
            continue
        created += ingest.accept_item(source, submission, actor).created
    return created
