"""Retention: purge the media of decided items after a set time; hashes and decisions stay.

Cleared and approved items lose their original, thumbnail and preview after
``RETENTION_CLEARED_DAYS`` / ``RETENTION_APPROVED_DAYS`` (default 30), removed items after
``RETENTION_REMOVED_DAYS`` (default 90), counted from the item's decision (or its scan, for an
item the scanners cleared). An item under an evidence hold (a report to an authority holds its
media for one year) is never purged while the hold lasts.

Blobs are content-addressed, so one blob can belong to several items: it is deleted only when
every item that has it is purged. The purge is a daily durable job; running it twice is harmless.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from huey import crontab
from sqlalchemy import and_, func, or_, select

from app.extensions import db, huey
from app.models.item import Item
from app.models.job import Job, JobStatus
from app.models.ops import MediaPurge, PurgeRun
from app.models.types import utcnow
from app.services import audit, jobs
from app.services.reports import is_under_evidence_hold
from app.services.storage import derived_store, original_store, quarantine_store

log = logging.getLogger(__name__)

PURGE_JOB = "retention.purge"
PURGE_HOUR, PURGE_MINUTE = 3, 17  # UTC; a quiet hour, off the round minute other crons use
DEFAULT_DAYS = {"cleared": 30, "approved": 30, "removed": 90}


def retention_days() -> dict[str, int]:
    """Days the media of each outcome is kept, from the configuration."""
    config = current_app.config
    return {
        status: int(config.get(f"RETENTION_{status.upper()}_DAYS", default))
        for status, default in DEFAULT_DAYS.items()
    }


@dataclass
class PurgePlan:
    """What a purge run would do (``dry_run``) or did."""

    items: list[tuple[str, str]] = field(default_factory=list)  # (item id, reason)
    blobs: list[str] = field(default_factory=list)  # deleted: no remaining item needs them
    shared: list[str] = field(default_factory=list)  # kept: another item still needs them
    held: list[str] = field(default_factory=list)  # item ids kept by an evidence hold


def _decided_at() -> object:
    # When the item's outcome was settled: a human decision, else the scan that routed it.
    return func.coalesce(Item.decided_at, Item.scanned_at, Item.updated_at, Item.created_at)


def due_items(now: datetime | None = None) -> list[Item]:
    """Items whose media is past its retention time and not purged yet."""
    now = now or utcnow()
    settled = _decided_at()
    windows = [
        and_(Item.status == status, settled <= now - timedelta(days=days))
        for status, days in retention_days().items()
    ]
    purged = select(MediaPurge.item_id)
    query = (
        select(Item)
        .where(or_(*windows), Item.sha256.is_not(None), Item.id.not_in(purged))
        .order_by(Item.created_at)
    )
    return list(db.session.scalars(query))


def plan_purge(now: datetime | None = None) -> PurgePlan:
    """Decide what a purge would take now, without changing anything."""
    plan = PurgePlan()
    leaving: dict[str, set[str]] = {}
    for item in due_items(now):
        if is_under_evidence_hold(item):
            plan.held.append(item.id)
            continue
        plan.items.append((item.id, f"{item.status} after {retention_days()[item.status]} days"))
        leaving.setdefault(item.sha256 or "", set()).add(item.id)
    for sha256, item_ids in leaving.items():
        (plan.shared if _needed_by_unpurged(sha256, item_ids) else plan.blobs).append(sha256)
    return plan


def _needed_by_unpurged(sha256: str, leaving: set[str]) -> bool:
    # Another item keeps the blob alive if it is not purged and not leaving in this run.
    query = select(Item.id).where(
        Item.sha256 == sha256,
        Item.id.not_in(leaving),
        Item.id.not_in(select(MediaPurge.item_id)),
    )
    return db.session.scalar(query.limit(1)) is not None


def purge(now: datetime | None = None) -> tuple[PurgeRun, PurgePlan]:
    """Purge what is due: delete the blobs nobody needs, record the purges, commit."""
    run = PurgeRun(started_at=utcnow())
    db.session.add(run)
    db.session.flush()
    plan = plan_purge(now)
    for item_id, reason in plan.items:
        db.session.add(MediaPurge(item_id=item_id, reason=reason, run_id=run.id))
    run.items_purged, run.items_held = len(plan.items), len(plan.held)
    run.blobs_deleted, run.blobs_shared = len(plan.blobs), len(plan.shared)
    audit.record(
        "retention.purged",
        audit.Actor.system("retention"),
        target_type="purge_run",
        target_id=run.id,
        details={"items": run.items_purged, "blobs": run.blobs_deleted, "held": run.items_held},
    )
    # Blobs go before the records commit: a crash in between leaves items that the next run
    # plans again (their deletes find nothing), never a blob that no record points at.
    originals, derived, quarantine = original_store(), derived_store(), quarantine_store()
    for sha256 in plan.blobs:
        if _needed_by_unpurged(sha256, {item_id for item_id, _ in plan.items}):
            continue  # the same image arrived again while we planned: it stays
        originals.delete(sha256)
        derived.delete(sha256)
        quarantine.delete(sha256)
    run.finished_at = utcnow()
    db.session.commit()
    log.info(
        "retention purged %d items, %d blobs; %d held",
        len(plan.items),
        len(plan.blobs),
        len(plan.held),
    )
    return run, plan


def last_run() -> PurgeRun | None:
    """The most recent purge run, if any."""
    return db.session.scalar(select(PurgeRun).order_by(PurgeRun.started_at.desc()).limit(1))


def next_run(now: datetime | None = None) -> datetime:
    """When the daily purge next starts."""
    now = now or utcnow()
    today = now.replace(hour=PURGE_HOUR, minute=PURGE_MINUTE, second=0, microsecond=0)
    return today if today > now else today + timedelta(days=1)


def purged_at(item_id: str) -> datetime | None:
    """When the item's media was purged, or None while it is kept."""
    row = db.session.get(MediaPurge, item_id)
    return row.purged_at if row else None


@jobs.handler(PURGE_JOB)
def purge_job() -> None:
    """The durable daily job."""
    purge()


@huey.periodic_task(crontab(minute=str(PURGE_MINUTE), hour=str(PURGE_HOUR)), name=PURGE_JOB)
def schedule_purge() -> None:
    """Queue the daily purge job, once even when several consumers run the schedule."""
    app = huey.flask_app  # type: ignore[attr-defined]
    with app.app_context():
        pending = db.session.scalar(
            select(Job.id).where(
                Job.name == PURGE_JOB,
                or_(
                    Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
                    Job.created_at >= utcnow() - timedelta(hours=1),
                ),
            )
        )
        if pending is None:
            jobs.enqueue(PURGE_JOB, max_attempts=3)
