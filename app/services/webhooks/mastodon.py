"""Mastodon: ``status.created``, ``status.updated`` and ``report.created`` admin webhooks.

Mastodon signs the raw body with ``X-Hub-Signature: sha256=<hex HMAC-SHA256>`` and sends no
delivery id or timestamp, so a delivery is recognised by ``event`` + status or report id +
``edited_at``/``updated_at``. Images are ``media_attachments`` of type ``image`` only (``gifv``
is a video): ``url`` is the original, ``remote_url`` the original on another server for cached
remote media. Reported statuses (``report.created``) may be remote.

``url`` is ``null`` while Mastodon is still processing. Such an image becomes a waiting item at
once (``waiting``), with the status as its context, so it is never dropped. With a
``mastodon_access_token`` the ``mastodon_refetch_status`` job then asks
``GET /api/v1/statuses/:id`` again with backoff, gives each image its URL as it appears (and
the item is fetched and scanned as usual), and on its last attempt moves the images still
without one to ``fetch_failed`` with the reason. Without a token the item is ``fetch_failed`` at
once, saying so, and a later ``status.updated`` that carries the URL still brings it back.

An image's external id is ``mastodon:media:<attachment id>``: editing a status keeps it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NoReturn

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models.job import Job, JobStatus
from app.models.source import Source
from app.services import fetch, jobs
from app.services.audit import Actor
from app.services.source_secrets import credential
from app.services.webhooks import (
    MAX_IMAGES_PER_DELIVERY,
    Delivery,
    ImageRef,
    absolute_url,
    base_url_of,
    html_to_text,
    text,
    waiting,
)
from app.services.webhooks.signatures import verify_hex_hmac

STATUS_EVENTS = {"status.created", "status.updated"}
REFETCH_JOB = "mastodon_refetch_status"
REFETCH_ATTEMPTS = 6  # after REFETCH_DELAY, with the jobs' backoff: about a minute in all
REFETCH_DELAY = 10  # seconds before the first question: images usually take a few
WAITING = "Mastodon is still processing this image; asking Mastodon again shortly."
NO_TOKEN = (
    "Mastodon had not finished processing this image, and the source has no "
    "mastodon_access_token to ask again: add one under Platform credentials. A later "
    "status.updated that carries the image's URL brings it back."
)
NEVER_READY = (
    "Mastodon had not finished processing this image after {attempts} tries; open the status "
    "on Mastodon to see it."
)


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
    delivery.not_ready = delivery.not_ready[:MAX_IMAGES_PER_DELIVERY]
    if not delivery.images and not delivery.not_ready:
        delivery.note = "No image attachments."
    return delivery


def status_images(
    status: dict[str, Any], source: Source, report_id: str | None = None
) -> tuple[list[ImageRef], list[ImageRef]]:
    """One status's images with a URL, and those Mastodon is still processing (no ``url``)."""
    delivery = Delivery(event="")
    _read_status(status, source, delivery, report_id)
    return delivery.images, delivery.not_ready


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
        image = ImageRef(
            external_id=f"mastodon:media:{media_id}",
            url=url or "",
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
        (delivery.images if url else delivery.not_ready).append(image)


def hold_not_ready(source: Source, images: list[ImageRef], actor: Actor) -> tuple[int, str]:
    """Waiting items for images without a URL yet, and a job to ask for them when we can.

    Returns how many items were new and the note for the receipt log.
    """
    can_ask = bool(credential(source, "mastodon_access_token") and base_url_of(source))
    reason = WAITING if can_ask else NO_TOKEN
    created = sum(
        waiting.hold(source, image.submission(), reason, actor, failed=not can_ask)
        for image in images
    )
    if not can_ask:
        return created, "Images not processed yet, and no mastodon_access_token to ask again."
    asked = {(image.metadata["status_id"], image.metadata.get("report_id")) for image in images}
    for status_id, report_id in sorted(asked, key=str):
        if status_id:
            jobs.enqueue(
                REFETCH_JOB,
                source.id,
                status_id,
                report_id,
                max_attempts=REFETCH_ATTEMPTS,
                delay=REFETCH_DELAY,
            )
    return created, "Images not processed yet: asking Mastodon again shortly."


@jobs.handler(REFETCH_JOB)
def refetch_status(source_id: int, status_id: str, report_id: str | None = None) -> None:
    """Ask ``GET /api/v1/statuses/:id`` and give the waiting images the URLs that are there now.

    Raises while images are still processing, so the job's backoff asks again; on the last
    attempt, or when asking cannot succeed, the status's waiting items end ``fetch_failed``.
    """
    from app.services.webhooks.receive import accept_images

    source = db.session.get(Source, source_id)
    if source is None:
        raise jobs.PermanentJobError(f"source {source_id} is gone")
    actor = Actor.for_source(source)  # the work the source's webhook started
    token = credential(source, "mastodon_access_token") or ""  # encrypted, else plain setting
    base = base_url_of(source)
    if not source.enabled or not token or not base or not status_id.isdigit():
        _give_up(
            source, actor, status_id, "The source is disabled or has no base_url or token now."
        )
    try:
        status = _fetch_status(base or "", status_id, token)
    except fetch.FetchError as error:
        if error.transient and not _last_attempt(source_id, status_id):
            raise
        _give_up(source, actor, status_id, f"Mastodon could not be asked again: {error.message}")
    images, pending = status_images(status, source, report_id)
    accept_images(source, images, actor)
    for image in pending:  # an edit may have added one while this job waited
        waiting.hold(source, image.submission(), WAITING, actor)
    if not pending:
        return
    if _last_attempt(source_id, status_id):
        _give_up(source, actor, status_id, NEVER_READY.format(attempts=REFETCH_ATTEMPTS))
    # Still processing: fail this attempt so the job's backoff asks again later.
    raise RuntimeError(f"{len(pending)} image(s) of status {status_id} have no URL yet")


def _fetch_status(base: str, status_id: str, token: str) -> dict[str, Any]:
    config = current_app.config
    result = fetch.fetch_image(
        f"{base}/api/v1/statuses/{status_id}",
        max_bytes=int(config.get("HOOK_MAX_BODY_BYTES", 1024 * 1024)),
        connect_timeout=config["FETCH_CONNECT_TIMEOUT"],
        total_timeout=config["FETCH_TOTAL_TIMEOUT"],
        allow_networks=config["FETCH_ALLOW_NETWORKS"],
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    try:
        status = json.loads(result.data)
    except (ValueError, UnicodeDecodeError):
        raise fetch.FetchError(
            "bad_json", "Mastodon's answer is not JSON.", transient=True
        ) from None
    if not isinstance(status, dict):
        raise fetch.FetchError("bad_json", "Mastodon's answer is not a status.", transient=False)
    return status


def _give_up(source: Source, actor: Actor, status_id: str, reason: str) -> NoReturn:
    """End the status's waiting items as ``fetch_failed`` with ``reason``; stop the job."""
    moved = waiting.give_up(waiting.waiting_items(source, status_id=status_id), reason, actor)
    raise jobs.PermanentJobError(f"status {status_id}: {reason} ({moved} item(s) failed)")


def _last_attempt(source_id: int, status_id: str) -> bool:
    """True when the running re-fetch job for this status has no attempt left."""
    # The handler gets only its arguments; the job row it runs in says the attempt.
    running = db.session.scalars(
        select(Job).where(Job.status == JobStatus.RUNNING, Job.name == REFETCH_JOB)
    ).all()
    for job in running:
        if list(job.args[:2]) == [source_id, status_id]:
            return job.attempts >= job.max_attempts
    return True  # run outside a job (a test, a shell): there is no retry to wait for
