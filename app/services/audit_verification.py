"""Checking the audit log's chain in the background, with progress the audit page can show.

Walking the chain reads every event; on a log of millions that takes minutes, far too long for
a request. "Verify chain" on the audit page makes an ``audit_verifications`` row and a durable
job (``audit.verify``). The job walks the chain with :func:`app.services.audit.verify_chain`,
writes its progress on the row after every batch, and at the end the result together with the
``audit.verified`` event, which names the admin who asked. ``flask audit verify`` still walks
the chain in the foreground and lists every break.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from app.extensions import db
from app.models.audit import AuditHead, AuditVerification, VerificationStatus
from app.models.job import Job, JobStatus
from app.models.types import utcnow
from app.services import audit, jobs
from app.services.audit import Actor

VERIFY_JOB = "audit.verify"
KEEP_BREAKS = 100  # breaks stored on the row; the page shows fewer, the command line all


@dataclass(frozen=True)
class VerificationState:
    """A check as the audit page shows it."""

    id: int
    status: str  # a VerificationStatus value; FAILED when the job gave up
    requested_by: str
    created_at: datetime
    finished_at: datetime | None
    events_checked: int
    events_total: int
    break_count: int
    breaks: list[dict[str, object]]
    error: str | None

    @property
    def busy(self) -> bool:
        """Still queued or running: the page keeps asking for news."""
        return self.status in VerificationStatus.UNFINISHED

    @property
    def percent(self) -> int:
        """How far the walk has got, 0 to 100 (events written meanwhile can push it past)."""
        if not self.events_total:
            return 0 if self.busy else 100
        return min(100, self.events_checked * 100 // self.events_total)


def start(actor: Actor) -> tuple[AuditVerification, bool]:
    """Queue a check of the whole chain for ``actor``; True when new, False when one is running."""
    running = _unfinished()
    if running is not None:
        return running, False
    head_seq = db.session.scalar(select(AuditHead.seq).where(AuditHead.id == 1)) or 0
    verification = AuditVerification(
        actor_type=actor.type,
        actor_id=actor.id,
        actor_label=actor.label,
        ip=actor.ip,
        events_total=head_seq,
    )
    db.session.add(verification)
    db.session.flush()
    job = jobs.enqueue(VERIFY_JOB, verification.id, max_attempts=3)  # commits the row too
    # Set after the job is queued: only used to notice a job that gave up.
    db.session.execute(
        update(AuditVerification)
        .where(AuditVerification.id == verification.id)
        .values(job_id=job.id)
    )
    db.session.commit()
    return verification, True


def _unfinished() -> AuditVerification | None:
    query = (
        select(AuditVerification)
        .where(AuditVerification.status.in_(VerificationStatus.UNFINISHED))
        .order_by(AuditVerification.id.desc())
    )
    for verification in db.session.scalars(query):
        if not _job_gave_up(verification):
            return verification
    return None


def _job_gave_up(verification: AuditVerification) -> Job | None:
    job = db.session.get(Job, verification.job_id) if verification.job_id else None
    if job is not None and job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
        return job
    return None


def state(verification: AuditVerification) -> VerificationState:
    """What the page shows for ``verification``, with a job that gave up shown as failed."""
    status, error = verification.status, verification.error
    if status in VerificationStatus.UNFINISHED:
        gave_up = _job_gave_up(verification)
        if gave_up is not None:
            status, error = VerificationStatus.FAILED, gave_up.error or "the job was cancelled"
    return VerificationState(
        id=verification.id,
        status=status,
        requested_by=verification.actor_label,
        created_at=verification.created_at,
        finished_at=verification.finished_at,
        events_checked=verification.events_checked,
        events_total=verification.events_total,
        break_count=verification.break_count,
        breaks=list(verification.breaks or []),
        error=error,
    )


def find(verification_id: int) -> VerificationState | None:
    """One check by id, as the page shows it."""
    verification = db.session.get(AuditVerification, verification_id)
    return state(verification) if verification else None


def latest() -> VerificationState | None:
    """The most recent check, as the page shows it, or None before the first."""
    verification = db.session.scalar(
        select(AuditVerification).order_by(AuditVerification.id.desc()).limit(1)
    )
    return state(verification) if verification else None


@jobs.handler(VERIFY_JOB)
def verify(verification_id: int) -> None:
    """The job: walk the chain, keep the row's progress current, record the result (idempotent:
    a check interrupted by a crash starts again from the first event)."""
    verification = db.session.get(AuditVerification, verification_id)
    if verification is None or verification.status not in VerificationStatus.UNFINISHED:
        return
    verification.status, verification.started_at = VerificationStatus.RUNNING, utcnow()
    verification.events_checked = 0
    db.session.commit()
    checked = [0]

    def progress(count: int) -> None:
        checked[0] = count
        db.session.execute(
            update(AuditVerification)
            .where(AuditVerification.id == verification_id)
            .values(events_checked=count)
        )
        db.session.commit()

    breaks = audit.verify_chain(progress=progress)
    verification.status = VerificationStatus.BROKEN if breaks else VerificationStatus.INTACT
    verification.events_checked = checked[0]
    verification.break_count = len(breaks)
    verification.breaks = [{"seq": b.seq, "reason": b.reason} for b in breaks[:KEEP_BREAKS]]
    verification.finished_at = utcnow()
    verification.error = None
    asked_by = Actor(
        verification.actor_type, verification.actor_id, verification.actor_label, verification.ip
    )
    audit.record(
        "audit.verified",
        asked_by,
        target_type="audit_verification",
        target_id=verification.id,
        details={
            "intact": not breaks,
            "events": checked[0],
            "breaks": len(breaks),
            "first_break_seq": breaks[0].seq if breaks else None,
        },
    )
    db.session.commit()
