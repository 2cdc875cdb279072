"""Mastodon: ``status.created``, ``status.updated`` and ``report.created`` admin webhooks.

Mastodon signs the raw body with ``X-Hub-Signature: sha256=<hex HMAC-SHA256>`` and sends no
delivery id or timestamp, so a delivery is recognised by ``event`` + status or report id +
``edited_at``/``updated_at``. Images are ``media_attachments`` of type ``image`` only (``gifv``
is a video): ``url`` is the original, ``remote_url`` the original on another server for cached
remote media. ``url`` is ``null`` while Mastodon is still processing; then nothing is taken for
that image now, and either a ``mastodon_refetch_status`` job asks the Mastodon API again (when
the source has a ``mastodon_access_token`` setting) or the image is created when a later
``status.updated`` carries its URL. Reported statuses (``report.created``) may be remote.

An image's external id is ``mastodon:media:<attachment id>``: editing a status keeps it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import current_app

from app.extensions import db
from app.models.source import Source
from app.services import fetch, jobs
from app.services.source_secrets import credential
from app.services.webhooks import (
    MAX_IMAGES_PER_DELIVERY,
    Delivery,
    ImageRef,
    absolute_url,
    base_url_of,
    html_to_text,
    text,
)
from app.services.webhooks.signatures import verify_hex_hmac

STATUS_EVENTS = {"status.created", "status.updated"}
REFETCH_JOB = "mastodon_refetch_status"
REFETCH_ATTEMPTS = 6  # with the jobs' backoff: about two minutes of waiting in all


def verify(secret: str, headers: Mapping[str, str], body: bytes) -> None:
    """Check ``X-Hub-Signature`` over the raw body."""
    verify_hex_hmac(secret, body, headers.get("X-Hub-Signature"), "X-Hub-Signature")


def read(payload: Any, headers: Mapping[str, str], source: Source) -> Delivery:
    """The images of a status event, or of the statuses a report names."""
    payload = payload if isinstance(payload, dict) else {}
    event = text(payload.get("event"), 64) or "unknown"
    target = payload.get("object") if isinstance(payload.get("object"), dict) else {}
    stamp = target.get("edited_at") or target.get("updated_at") or target.get("created_at")
    delivery = Delivery(event=event, delivery_id=f"{event}:{text(target.get('id'))}:{stamp}")
    if event in STATUS_EVENTS:
        statuses, report_id = [target], None
    elif event == "report.created":
        statuses, report_id = target.get("statuses") or [], text(target.get("id"))
    else:
        delivery.note = f"The {event} event carries no status; nothing to check."
        return delivery
    for status in statuses:
        if isinstance(status, dict):
            _read_status(status, source, delivery, report_id)
    delivery.images = delivery.images[:MAX_IMAGES_PER_DELIVERY]
    if not delivery.images and not delivery.not_ready:
        delivery.note = "No image attachments."
    return delivery


def status_images(status: dict[str, Any], source: Source) -> tuple[list[ImageRef], list[str]]:
    """One status's images, and the ids of its images that have no URL yet."""
    delivery = Delivery(event="")
    _read_status(status, source, delivery, None)
    return delivery.images, [entry["media_id"] for entry in delivery.not_ready]


def _read_status(
    status: dict[str, Any], source: Source, delivery: Delivery, report_id: str | None
) -> None:
    base = base_url_of(source)
    account = status.get("account") if isinstance(status.get("account"), dict) else {}
    text_parts = [text(status.get("spoiler_text"), 500), html_to_text(status.get("content"))]
    metadata = {"platform": "mastodon", "status_id": text(status.get("id"))}
    if report_id:
        metadata["report_id"] = report_id
    for media in status.get("media_attachments") or []:
        if not isinstance(media, dict) or media.get("type") != "image":
            continue
        media_id = text(media.get("id"))
        url = absolute_url(media.get("url"), base) or absolute_url(media.get("remote_url"), base)
        if url is None:
            delivery.not_ready.append({"status_id": text(status.get("id")), "media_id": media_id})
            continue
        delivery.images.append(
            ImageRef(
                external_id=f"mastodon:media:{media_id}",
                url=url,
                uploader_id=text(account.get("id")),
                uploader_name=text(account.get("acct") or account.get("username")),
                context_url=text(status.get("url") or status.get("uri"), 4096),
                context_text="\n\n".join(p for p in text_parts if p) or None,
                created_at=text(status.get("created_at")),
                metadata={
                    **metadata,
                    "media_id": media_id,
                    "description": text(media.get("description"), 1500),
                },
            )
        )


def schedule_refetch(source: Source, status_id: str) -> bool:
    """Queue a job that asks Mastodon for the status again, when the source has a token for it."""
    if not credential(source, "mastodon_access_token") or not base_url_of(source):
        return False
    jobs.enqueue(REFETCH_JOB, source.id, status_id, max_attempts=REFETCH_ATTEMPTS, delay=10)
    return True


@jobs.handler(REFETCH_JOB)
def refetch_status(source_id: int, status_id: str) -> None:
    """Fetch ``GET /api/v1/statuses/:id`` and take the images whose URL is there now."""
    from app.services.webhooks.receive import accept_images, system_actor

    source = db.session.get(Source, source_id)
    if source is None or not source.enabled:
        raise jobs.PermanentJobError(f"source {source_id} is gone or disabled")
    token = credential(source, "mastodon_access_token") or ""  # encrypted, else plain setting
    base = base_url_of(source)
    if not token or not base or not status_id.isdigit():
        raise jobs.PermanentJobError("the source has no base_url or mastodon_access_token")
    config = current_app.config
    result = fetch.fetch_image(
        f"{base}/api/v1/statuses/{status_id}",
        max_bytes=int(config.get("HOOK_MAX_BODY_BYTES", 1024 * 1024)),
        connect_timeout=config["FETCH_CONNECT_TIMEOUT"],
        total_timeout=config["FETCH_TOTAL_TIMEOUT"],
        allow_networks=config["FETCH_ALLOW_NETWORKS"],
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    images, pending = status_images(json.loads(result.data), source)
    accept_images(source, images, system_actor(source))
    if pending:
        # Still processing: fail this attempt so the job's backoff asks again later.
        raise RuntimeError(f"{len(pending)} image(s) of status {status_id} have no URL yet")
