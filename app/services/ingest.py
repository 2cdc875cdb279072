"""Accepting items: check the image, keep it, record the item, queue its processing.

An item is durable before the platform hears "accepted": the blob is fsynced into the
content-addressed store and the item row, its ``item.received`` audit event and its
``process_item`` job commit in one transaction. Only then does the caller answer 202.

The image is decoded once on this path (``hashing.compute_hashes_and_info``: type, bomb limits,
frames and all hashes from one decode). Derived images and the scan pipeline run later, in the
``process_item`` job (``app.services.processing``).

Re-delivery is idempotent: the same ``external_id`` from the same source returns the item already
there. Two deliveries racing each other both pass the first lookup; the unique constraint
``uq_items_source_external`` lets one insert win and the other reads the winner.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from flask import current_app
from PIL import Image
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models.item import Item
from app.models.source import Source
from app.models.types import new_id
from app.services import audit, jobs, storage
from app.services.audit import Actor
from app.services.hashing import HashedImage, compute_hashes_and_info
from app.services.submission import Submission

PROCESS_JOB = "process_item"
PICTURES_KEPT = 32  # at most 512×512 RGB each: under 25 MB however far the worker falls behind


@dataclass(frozen=True)
class Limits:
    """What an image may be; read from the configuration once per request or job."""

    max_bytes: int
    max_pixels: int
    max_frames: int

    @classmethod
    def from_config(cls, config: Any = None) -> Limits:
        """The limits configured on the current app (or on ``config``)."""
        config = config if config is not None else current_app.config
        return cls(
            config["MAX_IMAGE_BYTES"], config["MAX_IMAGE_PIXELS"], config["MAX_IMAGE_FRAMES"]
        )


@dataclass(frozen=True)
class Accepted:
    """The item a submission became, and whether this delivery created it (False: re-delivery).

    ``item_id`` and ``status`` are as of acceptance; reading ``item`` after the commit loads it
    again, and by then a worker may have moved it on.
    """

    item: Item
    created: bool
    item_id: str
    status: str


def accept_item(
    source: Source, submission: Submission, actor: Actor, limits: Limits | None = None
) -> Accepted:
    """Check, store and record one submission; commit; queue ``process_item``.

    Raises ``media.MediaError`` for an image we refuse; nothing is stored then.
    """
    existing = find_by_external_id(source.id, submission.external_id)
    if existing is not None:
        return _known(existing)
    item = Item(
        id=new_id(), source_id=source.id, external_id=submission.external_id, status="received"
    )
    _apply_context(item, submission)
    if submission.image_data is None:
        item.image_url = submission.image_url
        return _record(item, actor)
    hashed = check_image(submission.image_data, submission.declared_type, limits)
    keep_image(submission.image_data)
    apply_media(item, hashed, len(submission.image_data))
    pictures = decoded_pictures()
    pictures.keep(item.id, hashed.picture)  # before the commit: the worker may start at once
    accepted: Accepted | None = None
    try:
        accepted = _record(item, actor)
    finally:
        if accepted is None or not accepted.created:
            pictures.take(item.id)  # no job will come for it
    return accepted


def ingest_upload(
    source: Source,
    data: bytes,
    *,
    filename: str,
    declared_type: str | None,
    context_text: str | None,
    actor: Actor,
) -> tuple[Item, bool]:
    """Accept an image a moderator uploaded by hand; the same bytes again are the same item.

    Returns ``(item, created)``; raises ``media.MediaError`` for an image we refuse.
    """
    hashed = check_image(data, declared_type)
    # A hand upload has no platform id; its content is its identity within the manual source.
    external_id = f"sha256:{hashed.hashes.sha256}"
    existing = find_by_external_id(source.id, external_id)
    if existing is not None:
        return existing, False
    keep_image(data)
    item = Item(
        id=new_id(),
        source_id=source.id,
        external_id=external_id,
        status="received",
        context_text=context_text,
        item_metadata={"filename": filename[:255]},
    )
    apply_media(item, hashed, len(data))
    accepted = _record(item, actor)
    return accepted.item, accepted.created


def check_image(
    data: bytes, declared_type: str | None = None, limits: Limits | None = None
) -> HashedImage:
    """Type, size, bomb and frame checks and every hash, from one decode; raises MediaError."""
    limits = limits or Limits.from_config()
    return compute_hashes_and_info(
        data,
        max_bytes=limits.max_bytes,
        max_pixels=limits.max_pixels,
        max_frames=limits.max_frames,
        declared_type=declared_type,
    )


def keep_image(data: bytes) -> str:
    """Put the original into the content-addressed store (fsynced); returns its SHA-256."""
    return original_store().put(data)


def original_store() -> storage.MediaStore:
    """The store of original images (``storage.original_store``: filesystem or S3)."""
    return storage.original_store()


def derived_store() -> storage.DerivedMediaStore:
    """The store of thumbnails and blurred previews (``storage.derived_store``)."""
    return storage.derived_store()


def apply_media(item: Item, hashed: HashedImage, size: int) -> None:
    """Copy what the decode found (type, size, frames, hashes) onto the item."""
    info, hashes = hashed.info, hashed.hashes
    item.sha256, item.md5 = hashes.sha256, hashes.md5
    item.pdq, item.pdq_quality = hashes.pdq, hashes.pdq_quality
    item.mime, item.width, item.height = info.mime, info.width, info.height
    item.frames, item.bytes = info.frames, size


def find_by_external_id(source_id: int, external_id: str) -> Item | None:
    """The source's item with this external id, if it has been delivered before."""
    return db.session.scalar(
        select(Item).where(Item.source_id == source_id, Item.external_id == external_id)
    )


def _apply_context(item: Item, submission: Submission) -> None:
    item.uploader_id, item.uploader_name = submission.uploader_id, submission.uploader_name
    item.uploader_ip = submission.uploader_ip
    item.context_url, item.context_text = submission.context_url, submission.context_text
    item.context_created_at = submission.context_created_at
    item.item_metadata = submission.metadata
    item.callback_url = submission.callback_url


def _record(item: Item, actor: Actor) -> Accepted:
    """Add the row, its audit event and its job in one commit; on a lost race, the winner."""
    # Read before the commit expires the row: the caller answers without loading it again.
    item_id, source_id, external_id = item.id, item.source_id, item.external_id
    config = current_app.config
    attempts = (
        config.get("FETCH_MAX_ATTEMPTS", config["JOB_MAX_ATTEMPTS"])
        if item.image_url
        else config["JOB_MAX_ATTEMPTS"]
    )
    try:
        db.session.add(item)
        # Kept small: the audit log holds who sent what, the item row holds the rest.
        audit.record(
            "item.received",
            actor,
            target_type="item",
            target_id=item.id,
            details={
                "external_id": item.external_id[:80],
                "sha256": item.sha256,
                "by_url": item.image_url is not None,
            },
        )
        jobs.enqueue(PROCESS_JOB, item_id, max_attempts=attempts)  # commits all of it
    except IntegrityError:  # raised by the autoflush before the audit update, or by the commit
        db.session.rollback()
        winner = find_by_external_id(source_id, external_id)
        if winner is None:  # the conflict was something else; let it surface
            raise
        return _known(winner)
    return Accepted(item, True, item_id, "received")


class DecodedPictures:
    """The last few pictures ingest decoded, for this process's worker to make previews from.

    Ingest has the upright, reduced picture in hand when it answers; in the one-process server
    the worker usually gets to the item moments later, and taking the picture from here spares
    it a second decode of the original. A miss (another process, a restart, a long backlog)
    only means the worker decodes the stored original itself.
    """

    def __init__(self, size: int = PICTURES_KEPT) -> None:
        self.size = size
        self.pictures: OrderedDict[str, Image.Image] = OrderedDict()
        self.lock = threading.Lock()

    def keep(self, item_id: str, picture: Image.Image) -> None:
        """Remember ``picture`` for ``item_id``, forgetting the oldest beyond ``size``."""
        with self.lock:
            self.pictures[item_id] = picture
            while len(self.pictures) > self.size:
                self.pictures.popitem(last=False)

    def take(self, item_id: str) -> Image.Image | None:
        """The picture kept for ``item_id``, once; None if there is none."""
        with self.lock:
            return self.pictures.pop(item_id, None)


def decoded_pictures() -> DecodedPictures:
    """This app's DecodedPictures (one per app, so tests never share them)."""
    return current_app.extensions.setdefault("modtools_decoded_pictures", DecodedPictures())


def _known(item: Item) -> Accepted:
    return Accepted(item, False, item.id, item.status)


from app.services import processing  # noqa: E402,F401  (registers the process_item job)
