"""The quarantine store: originals taken out of the served media store, and evidence holds.

Quarantine is ``storage.quarantine_store()``: a ``FileSystemStore`` at ``QUARANTINE_ROOT`` (default
``MEDIA_ROOT/../quarantine``) or, with ``MEDIA_BACKEND=s3``, ``quarantine/`` in the bucket; either
way outside what the media routes serve. Hashes and the derived (blurred) previews stay where
they are, so the item is still reviewable and matchable. Blobs are content-addressed: every item
with the same bytes shares the quarantined original.
"""

from __future__ import annotations

from datetime import datetime

from app.extensions import db
from app.models.action import ItemHold, QuarantinedMedia
from app.models.item import Item
from app.models.types import utcnow
from app.services import storage
from app.services.storage import original_store


def quarantine_store() -> storage.MediaStore:
    """Where quarantined originals are kept (``storage.quarantine_store``)."""
    return storage.quarantine_store()


def is_quarantined(sha256: str | None) -> bool:
    """Whether this original was moved to quarantine."""
    return bool(sha256) and db.session.get(QuarantinedMedia, sha256) is not None


def move_to_quarantine(item: Item, run_id: int | None = None) -> bool:
    """Move the item's original into quarantine; True if moved now, False if it already was.

    Idempotent by construction: every step checks what is there first, so a run repeated after
    a crash finishes the move and never copies twice. Raises MissingMedia when the original is in
    neither store. The caller commits.
    """
    sha256 = storage.check_sha256(item.sha256 or "")
    served, kept = original_store(), quarantine_store()
    moved = False
    if not kept.exists(sha256):
        kept.put(served.get(sha256))  # durable before the served copy goes
        moved = True
    moved = served.delete(sha256) or moved
    if db.session.get(QuarantinedMedia, sha256) is None:
        db.session.add(QuarantinedMedia(sha256=sha256, item_id=item.id, run_id=run_id))
        moved = True
    return moved


def open_quarantined(sha256: str) -> bytes:
    """A quarantined original's bytes (for a lead's reveal); MissingMedia if not there."""
    return quarantine_store().get(sha256)


def hold(item_id: str, until: datetime, reason: str) -> ItemHold:
    """Keep the item's evidence at least until ``until`` (a later date wins); the caller commits."""
    existing = db.session.get(ItemHold, item_id)
    if existing is None:
        existing = ItemHold(item_id=item_id, evidence_hold_until=until, reason=reason)
        db.session.add(existing)
    elif until > existing.evidence_hold_until:
        existing.evidence_hold_until, existing.reason = until, reason
    return existing


def held(item_id: str) -> bool:
    """Whether retention must keep this item now."""
    row = db.session.get(ItemHold, item_id)
    return row is not None and row.evidence_hold_until > utcnow()
