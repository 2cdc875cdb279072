"""Daily housekeeping: pruning the tables that would otherwise only ever grow.

- Webhook delivery ids a day after the replay window (``HOOK_REPLAY_RETENTION_DAYS``), and
  webhook receipts after ``HOOK_RECEIPT_RETENTION_DAYS`` (``webhooks.replay.forget_old``).
- The bank change log after a day (``bank_matching.prune_changes``): a process that looked
  nothing up for that long rebuilds its PDQ index at its next lookup instead of replaying it.
- Login attempts past the rate-limit window. A successful login tidies them too, but guesses
  at unknown addresses never end in one.

A durable job (``housekeeping.prune``), queued daily by a Huey periodic task, once however many
consumers run the schedule. Every step deletes in short batches; running it twice is harmless.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from huey import crontab
from sqlalchemy import or_, select

from app.extensions import db, huey
from app.models.job import Job, JobStatus
from app.models.types import utcnow
from app.services import bank_matching, jobs, login
from app.services.webhooks import replay

log = logging.getLogger(__name__)

PRUNE_JOB = "housekeeping.prune"
PRUNE_HOUR, PRUNE_MINUTE = 3, 47  # UTC; after the retention purge, off the round minutes


@dataclass(frozen=True)
class PruneResult:
    """How many rows one run deleted from each table."""

    replay_ids: int
    receipts: int
    bank_changes: int
    login_attempts: int


def prune(now: datetime | None = None) -> PruneResult:
    """Delete what is past its time in every table this module looks after."""
    now = now or utcnow()
    replay_ids, receipts = replay.forget_old(now)
    bank_changes = bank_matching.prune_changes(now)
    login_attempts = login.forget_old_attempts(now)
    db.session.commit()
    result = PruneResult(replay_ids, receipts, bank_changes, login_attempts)
    log.info(
        "housekeeping pruned %d webhook ids, %d receipts, %d bank changes, %d login attempts",
        replay_ids,
        receipts,
        bank_changes,
        login_attempts,
    )
    return result


@jobs.handler(PRUNE_JOB)
def prune_job() -> None:
    """The durable daily job."""
    prune()


@huey.periodic_task(crontab(minute=str(PRUNE_MINUTE), hour=str(PRUNE_HOUR)), name=PRUNE_JOB)
def schedule_prune() -> None:
    """Queue the daily prune job, once even when several consumers run the schedule."""
    with huey.flask_app.app_context():  # type: ignore[attr-defined]
        pending = db.session.scalar(
            select(Job.id).where(
                Job.name == PRUNE_JOB,
                or_(
                    Job.status.in_(JobStatus.UNFINISHED),
                    Job.created_at >= utcnow() - timedelta(hours=1),
                ),
            )
        )
        if pending is None:
            jobs.enqueue(PRUNE_JOB, max_attempts=3)
