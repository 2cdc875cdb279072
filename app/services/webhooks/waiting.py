"""Items for images a platform announced before it could serve them (Mastodon's ``url: null``).

Such an image becomes an item at once, so it is never lost: a *waiting* item has neither an image
nor an image URL, and its ``status_reason`` says why. It waits in ``received`` (without a
``process_item`` job) while something will ask the platform again, and is ``fetch_failed`` with
the reason when nothing will. When the URL arrives (from that job, or in a later webhook),
:func:`release` gives it to the item and starts the usual ``process_item`` job; when the asking
ends without one, :func:`give_up` moves it to ``fetch_failed`` with the reason.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models.item import Item
from app.models.source import Source
from app.models.types import new_id
from app.services import audit, ingest, jobs
from app.services.audit import Actor
from app.services.states import Status, transition
from app.services.submission import Submission


def is_waiting(item: Item) -> bool:
    """Whether the item is a placeholder still without an image or a URL."""
    return item.sha256 is None and not item.image_url


def hold(
    source: Source, submission: Submission, reason: str, actor: Actor, *, failed: bool = False
) -> bool:
    """Record a waiting item for an image without a URL yet (committed); False if it exists.

    With ``failed`` it is ``fetch_failed`` at once: nothing will ask the platform again.
    """
    if ingest.find_by_external_id(source.id, submission.external_id) is not None:
        return False
    item = Item(
        id=new_id(),
        source_id=source.id,
        external_id=submission.external_id,
        status=Status.RECEIVED.value,
        status_reason=reason,
        uploader_id=submission.uploader_id,
        uploader_name=submission.uploader_name,
        context_url=submission.context_url,
        context_text=submission.context_text,
        context_created_at=submission.context_created_at,
        item_metadata=submission.metadata,
    )
    db.session.add(item)
    audit.record(
        "item.received",
        actor,
        target_type="item",
        target_id=item.id,
        details={"external_id": item.external_id[:80], "by_url": True, "waiting": True},
    )
    if failed:
        transition(item, Status.FETCH_FAILED, actor, reason)
    try:
        db.session.commit()
    except IntegrityError:  # another delivery of the same image made it first
        db.session.rollback()
        return False
    return True


def release(item: Item, submission: Submission, actor: Actor) -> bool:
    """Give a waiting item the URL that has arrived and queue its ``process_item`` job."""
    if not is_waiting(item) or not submission.image_url:
        return False
    if item.status == Status.FETCH_FAILED:
        transition(item, Status.RECEIVED, actor, "The platform has sent the image URL.")
    elif item.status != Status.RECEIVED:
        return False
    item.image_url = submission.image_url
    item.status_reason = None
    item.item_metadata = submission.metadata
    config = current_app.config
    attempts = config.get("FETCH_MAX_ATTEMPTS", config["JOB_MAX_ATTEMPTS"])
    jobs.enqueue(ingest.PROCESS_JOB, item.id, max_attempts=attempts)  # commits all of it
    return True


def waiting_items(source: Source, **metadata: str) -> list[Item]:
    """The source's items still waiting in ``received`` whose metadata has these values."""
    rows = db.session.scalars(
        select(Item).where(
            Item.source_id == source.id,
            Item.status == Status.RECEIVED.value,
            Item.sha256.is_(None),
            Item.image_url.is_(None),
        )
    ).all()
    return [
        row
        for row in rows
        if all((row.item_metadata or {}).get(key) == value for key, value in metadata.items())
    ]


def give_up(items: list[Item], reason: str, actor: Actor) -> int:
    """Move waiting items to ``fetch_failed`` with ``reason`` (committed); returns how many."""
    moved = 0
    for item in items:
        if is_waiting(item) and item.status == Status.RECEIVED:
            transition(item, Status.FETCH_FAILED, actor, reason)
            moved += 1
    db.session.commit()
    return moved
