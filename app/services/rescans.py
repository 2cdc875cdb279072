"""Re-scanning a filtered set of items: after a bank import, or when a scanner is switched on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from app.extensions import db
from app.models.item import Item
from app.models.source import Source
from app.services import pipeline
from app.services.audit import Actor
from app.services.states import IllegalTransition, Status, can_transition

BATCH = 500


class RescanError(Exception):
    """A filter that cannot be applied (an unknown state or source); the message says why."""


@dataclass(frozen=True)
class RescanSummary:
    """How many items matched the filter, how many were sent to the scanners, how many not."""

    matched: int
    started: int
    skipped: int


def rescan_items(
    actor: Actor,
    *,
    statuses: list[str] | None = None,
    source_slug: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
    dry_run: bool = False,
) -> RescanSummary:
    """Start a new scan round for every item matching the filters, oldest first; commits each.

    Items still ``received`` (their first scan is coming), ``fetch_failed`` or ``removed`` are
    skipped: the state machine does not let them be scanned again.
    """
    query = select(Item.id).order_by(Item.created_at, Item.id)
    for status in statuses or []:
        if status not in {s.value for s in Status}:
            raise RescanError(
                f"{status!r} is not a state; use one of {', '.join(s.value for s in Status)}."
            )
    if statuses:
        query = query.where(Item.status.in_(statuses))
    if source_slug:
        source_id = db.session.scalar(select(Source.id).where(Source.slug == source_slug))
        if source_id is None:
            raise RescanError(f"No source has the slug {source_slug!r}.")
        query = query.where(Item.source_id == source_id)
    if since is not None:
        query = query.where(Item.created_at >= since)
    if limit:
        query = query.limit(limit)
    item_ids = list(db.session.scalars(query))
    if dry_run:
        return RescanSummary(len(item_ids), 0, 0)
    started = 0
    for start in range(0, len(item_ids), BATCH):
        batch = db.session.scalars(select(Item).where(Item.id.in_(item_ids[start : start + BATCH])))
        for item in list(batch):
            if item.status == Status.RECEIVED or not can_transition(item.status, Status.SCANNING):
                continue
            try:
                pipeline.rescan(item, actor)
            except IllegalTransition:  # its state changed since it was read
                db.session.rollback()
                continue
            started += 1
    return RescanSummary(len(item_ids), started, len(item_ids) - started)
