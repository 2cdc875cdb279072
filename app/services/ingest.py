"""Accepting items: check the image, keep it, record the item, queue its processing.

An item is durable before the platform hears "accepted": the blob is fsynced into the
content-addressed store and the item row, its ``item.received`` audit event and its
``process_item`` job commit in one transaction (``app.services.intake`` commits the items that
arrive together in one). Only then does the caller answer 202.

Before that, an inline image gets every check that can refuse it (type, size, bomb limits,
frames, a complete decode) and its SHA-256 and MD5; nothing slower. Its PDQ hash, the derived
images and the scan pipeline follow in the ``process_item`` job (``app.services.processing``),
which decodes the picture once for hashing and previews. A hand upload and a fetched URL are
hashed in full at once (``hashing.compute_hashes_and_info``).

Re-delivery is idempotent: the same ``external_id`` from the same source returns the item already
there. Two deliveries racing each other both pass the first lookup; the unique constraint
``uq_items_source_external`` lets one insert win and the other reads the winner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, select

from app.extensions import db, huey
from app.models.item import Item
from app.models.source import Source
from app.models.types import new_id
from app.services import hashing, intake, jobs, storage
from app.services.audit import Actor
from app.services.hashing import (
    CheckedImage,
    HashedImage,
    compute_hashes_and_info,
)
from app.services.media import ImageInfo
from app.services.sources import SourceRef
from app.services.submission import Submission

PROCESS_JOB = "process_item"


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

    def keywords(self) -> dict[str, int]:
        """As media.open_image's keyword arguments."""
        return {
            "max_bytes": self.max_bytes,
            "max_pixels": self.max_pixels,
            "max_frames": self.max_frames,
        }


@dataclass(frozen=True)
class Accepted:
    """The item a submission became, and whether this delivery created it (False: re-delivery).

    ``item_id`` and ``status`` are as of acceptance; ``item`` loads the row in the caller's
    session, and by then a worker may have moved it on.
    """

    created: bool
    item_id: str
    status: str

    @property
    def item(self) -> Item:
        item = db.session.get(Item, self.item_id)
        assert item is not None, "an accepted item is never deleted while its request runs"
        return item


def accept_item(
    source: Source | SourceRef,
    submission: Submission,
    actor: Actor,
    limits: Limits | None = None,
    *,
    hashed: HashedImage | None = None,
) -> Accepted:
    """Check, store and record one submission; commit; queue ``process_item``.

    ``hashed`` is for a caller that has checked and hashed the submission's bytes already (the
    synchronous check): they are not checked again, and the item keeps that PDQ hash. Raises
    ``media.MediaError`` for an image we refuse; nothing is stored then.
    """
    existing = find_by_external_id(source.id, submission.external_id)
    if existing is not None:
        return _known(existing)
    row = _context_row(source.id, submission)
    if submission.image_data is None:
        row["image_url"] = submission.image_url
        return _record(row, actor)
    if hashed is not None:
        info, sha256, md5 = hashed.info, hashed.hashes.sha256, hashed.hashes.md5
        row["pdq"], row["pdq_quality"] = hashed.hashes.pdq, hashed.hashes.pdq_quality
    else:  # the checks and digests only: the worker decodes the picture for PDQ and previews
        checked = check_upload(submission.image_data, submission.declared_type, limits)
        info, sha256, md5 = checked.info, checked.sha256, checked.md5
    # Flushed to disk by the intake writer, together with the others of its batch.
    storage.original_store().put(submission.image_data, sync=False)
    row.update(media_columns(info, sha256, md5))
    row["bytes"] = len(submission.image_data)
    return _record(row, actor, blob=sha256)


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
    row = {
        "id": new_id(),
        "source_id": source.id,
        "external_id": external_id,
        "status": "received",
        "context_text": context_text,
        "item_metadata": {"filename": filename[:255]},
        "bytes": len(data),
        **media_columns(hashed.info, hashed.hashes.sha256, hashed.hashes.md5),
        "pdq": hashed.hashes.pdq,
        "pdq_quality": hashed.hashes.pdq_quality,
    }
    accepted = _record(row, actor)
    return accepted.item, accepted.created


def check_upload(
    data: bytes, declared_type: str | None = None, limits: Limits | None = None
) -> CheckedImage:
    """Type, size, bomb and frame checks, SHA-256 and MD5, and the picture; raises MediaError."""
    limits = limits or Limits.from_config()
    return hashing.check_and_digest(data, declared_type=declared_type, **limits.keywords())


def check_image(
    data: bytes, declared_type: str | None = None, limits: Limits | None = None
) -> HashedImage:
    """Type, size, bomb and frame checks and every hash, from one decode; raises MediaError."""
    limits = limits or Limits.from_config()
    return compute_hashes_and_info(data, declared_type=declared_type, **limits.keywords())


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
    for name, value in media_columns(hashed.info, hashed.hashes.sha256, hashed.hashes.md5).items():
        setattr(item, name, value)
    item.pdq, item.pdq_quality = hashed.hashes.pdq, hashed.hashes.pdq_quality
    item.bytes = size


def media_columns(info: ImageInfo, sha256: str, md5: str) -> dict[str, Any]:
    """The item columns the checks and digests fill (PDQ apart)."""
    return {
        "sha256": sha256,
        "md5": md5,
        "mime": info.mime,
        "width": info.width,
        "height": info.height,
        "frames": info.frames,
    }


_ID_OF_EXTERNAL_ID = select(Item.id).where(  # built once: every delivery asks
    Item.source_id == bindparam("source"), Item.external_id == bindparam("external")
)


def find_by_external_id(source_id: int, external_id: str) -> Item | None:
    """The source's item with this external id, if it has been delivered before."""
    # Most deliveries are new: ask for the id alone (an index lookup) before loading a row.
    item_id = db.session.scalar(_ID_OF_EXTERNAL_ID, {"source": source_id, "external": external_id})
    return None if item_id is None else db.session.get(Item, item_id)


def _context_row(source_id: int, submission: Submission) -> dict[str, Any]:
    return {
        "id": new_id(),
        "source_id": source_id,
        "external_id": submission.external_id,
        "status": "received",
        "uploader_id": submission.uploader_id,
        "uploader_name": submission.uploader_name,
        "uploader_ip": submission.uploader_ip,
        "context_url": submission.context_url,
        "context_text": submission.context_text,
        "context_created_at": submission.context_created_at,
        "item_metadata": submission.metadata,
        "callback_url": submission.callback_url,
    }


def _record(row: dict[str, Any], actor: Actor, blob: str | None = None) -> Accepted:
    """Commit the row, its audit event and its job (group commit); on a lost race, the winner."""
    config = current_app.config
    by_url = row.get("image_url") is not None
    attempts = config.get("FETCH_MAX_ATTEMPTS", config["JOB_MAX_ATTEMPTS"]) if by_url else None
    arrival = intake.commit_arrival(
        intake.Arrival(
            row=row,
            actor=actor,
            # Kept small: the audit log holds who sent what, the item row holds the rest.
            audit_details={
                "external_id": row["external_id"][:80],
                "sha256": row.get("sha256"),
                "by_url": by_url,
            },
            job_name=PROCESS_JOB,
            max_attempts=attempts or config["JOB_MAX_ATTEMPTS"],
            blob=blob,
        )
    )
    assert arrival.item_id is not None and arrival.status is not None
    if arrival.created and huey.immediate:  # inline, the job runs here, in the request
        assert arrival.job_id is not None
        jobs.dispatch(arrival.job_id)
    return Accepted(arrival.created, arrival.item_id, arrival.status)


def _known(item: Item) -> Accepted:
    return Accepted(False, item.id, item.status)


from app.services import processing  # noqa: E402,F401  (registers the process_item job)
