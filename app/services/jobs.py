"""Durable jobs: a row per unit of background work, run by Huey, recovered after a crash.

Huey carries only a job id. The row is claimed with a conditional UPDATE before its handler runs,
so a job dispatched twice runs once, and a job whose worker died (``kill -9``) is found at the next
start-up (or by another worker's reaper) and queued again. Handlers must be idempotent: a job can
run again after a crash between its effect and its ``done`` mark.
"""

from __future__ import annotations

import logging
import os
import random
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select, update

from app.extensions import core_write, db, huey
from app.models.job import Job, JobStatus, WorkerProcess
from app.models.types import utcnow

log = logging.getLogger(__name__)

Handler = Callable[..., Any]
HANDLERS: dict[str, Handler] = {}
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 3600.0


class PermanentJobError(Exception):
    """Raised by a handler when retrying cannot help; the job fails at once with this message."""


def handler(name: str) -> Callable[[Handler], Handler]:
    """Register a function as the handler of jobs called ``name``."""

    def register(func: Handler) -> Handler:
        if name in HANDLERS and HANDLERS[name] is not func:
            raise ValueError(f"two job handlers are named {name!r}")
        HANDLERS[name] = func
        return func

    return register


def enqueue(name: str, *args: Any, max_attempts: int = 5, delay: float | None = None) -> Job:
    """Commit a job row, then hand it to Huey. The caller's pending changes commit with it."""
    if name not in HANDLERS:
        raise KeyError(f"no job handler is named {name!r}")
    job = Job(name=name, args=list(args), max_attempts=max_attempts)
    if delay:
        job.next_attempt_at = utcnow() + timedelta(seconds=delay)
    db.session.add(job)
    db.session.commit()
    dispatch(job.id, job.next_attempt_at)
    return job


def dispatch(job_id: str, eta: datetime | None = None) -> None:
    """Put a job id on the Huey queue (now, or at ``eta``)."""
    from app.tasks import execute_job

    if eta is not None and eta > utcnow():
        if huey.immediate:
            # Inline (tests), a job not due yet stays queued until a test runs it: executed now it
            # would race the claim, which takes a job due within the next second.
            return
        execute_job.schedule((job_id,), eta=eta)
    else:
        execute_job(job_id)
        if huey.immediate:
            # The job ran inline in its own app context and session: let the caller's session
            # see what it wrote, as it would after a real worker finished.
            db.session.expire_all()


def dispatch_now(job_ids: list[str]) -> None:
    """Put several jobs due now on the Huey queue, in one transaction where the queue allows."""
    from app.tasks import execute_job

    enqueue_many = getattr(huey.storage, "enqueue_many", None)
    if huey.immediate or enqueue_many is None or len(job_ids) < 2:
        for job_id in job_ids:
            dispatch(job_id)
        return
    enqueue_many([huey.serialize_task(execute_job.s(job_id)) for job_id in job_ids])


# Built once: every job runs these two, and building a statement costs more than running it.
_CLAIM = (
    update(Job)
    .where(
        Job.id == bindparam("job_id"),
        Job.status == JobStatus.QUEUED,
        or_(Job.next_attempt_at.is_(None), Job.next_attempt_at <= bindparam("due_by")),
    )
    .values(
        status=JobStatus.RUNNING,
        owner=bindparam("worker"),
        attempts=Job.attempts + 1,
        started_at=bindparam("now"),
    )
    .returning(Job.name, Job.args)
)
_DONE = (
    update(Job)
    .where(Job.id == bindparam("job_id"), Job.owner == bindparam("worker"))
    .values(status=JobStatus.DONE, finished_at=bindparam("now"), error=None)
)


def run(job_id: str, owner: str) -> str:
    """Claim and run one job; return its status afterwards. Called by the Huey task."""
    now = utcnow()
    claimed = core_write(
        _CLAIM,
        {"job_id": job_id, "worker": owner, "now": now, "due_by": now + timedelta(seconds=1)},
    ).one_or_none()
    db.session.commit()
    if claimed is None:
        return "skipped"
    name, args = claimed
    try:
        HANDLERS[name](*args)
    except Exception as exc:
        db.session.rollback()
        return _record_failure(job_id, exc)
    db.session.flush()  # the handler's last changes, before the row that says it is done
    core_write(_DONE, {"job_id": job_id, "worker": owner, "now": utcnow()})
    db.session.commit()
    return JobStatus.DONE


def _record_failure(job_id: str, exc: Exception) -> str:
    job = db.session.get(Job, job_id)
    assert job is not None
    message = f"{type(exc).__name__}: {exc}"[:2000]
    if isinstance(exc, PermanentJobError) or job.attempts >= job.max_attempts:
        log.warning("job %s (%s) failed for good: %s", job.id, job.name, message)
        job.status, job.finished_at, job.error = JobStatus.FAILED, utcnow(), message
        db.session.commit()
        return JobStatus.FAILED
    delay = backoff_seconds(job.attempts)
    log.info(
        "job %s (%s) attempt %d failed, retrying in %.0fs: %s",
        job.id,
        job.name,
        job.attempts,
        delay,
        message,
    )
    job.status, job.error = JobStatus.QUEUED, message
    job.next_attempt_at = utcnow() + timedelta(seconds=delay)
    db.session.commit()
    dispatch(job.id, job.next_attempt_at)
    return JobStatus.QUEUED


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with full jitter between half and the whole step."""
    step = min(BACKOFF_BASE_SECONDS * 2 ** max(attempt - 1, 0), BACKOFF_CAP_SECONDS)
    return step * random.uniform(0.5, 1.0)


# --- worker processes -------------------------------------------------------------------------


def worker_identity() -> str:
    """A name for this process that no later process will reuse."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


def register_worker(worker_id: str) -> None:
    db.session.add(WorkerProcess(id=worker_id, hostname=socket.gethostname(), pid=os.getpid()))
    db.session.commit()


def heartbeat(worker_id: str) -> None:
    db.session.execute(
        update(WorkerProcess).where(WorkerProcess.id == worker_id).values(heartbeat_at=utcnow())
    )
    db.session.commit()


def unregister_worker(worker_id: str) -> None:
    db.session.execute(
        update(WorkerProcess).where(WorkerProcess.id == worker_id).values(stopped_at=utcnow())
    )
    db.session.commit()


def live_workers(stale_after: float) -> list[WorkerProcess]:
    """Workers that have not stopped and beat recently (and, on this host, whose process exists)."""
    cutoff = utcnow() - timedelta(seconds=stale_after)
    rows = db.session.scalars(
        select(WorkerProcess).where(
            WorkerProcess.stopped_at.is_(None), WorkerProcess.heartbeat_at >= cutoff
        )
    ).all()
    here = socket.gethostname()
    return [w for w in rows if w.hostname != here or _pid_alive(w.pid)]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_unfinished(stale_after: float, dispatch_queued: bool = True) -> int:
    """Queue again the jobs whose worker is gone, and dispatch queued jobs Huey no longer holds.

    Returns the number of jobs dispatched.
    """
    alive = {w.id for w in live_workers(stale_after)}
    orphans = db.session.scalars(select(Job).where(Job.status == JobStatus.RUNNING)).all()
    for job in orphans:
        if job.owner not in alive:
            log.warning(
                "job %s (%s) was running in %s, which is gone: queued again",
                job.id,
                job.name,
                job.owner,
            )
            db.session.execute(
                update(Job)
                .where(Job.id == job.id, Job.status == JobStatus.RUNNING, Job.owner == job.owner)
                .values(status=JobStatus.QUEUED, owner=None)
            )
    db.session.commit()
    if not dispatch_queued:
        return 0
    held = _job_ids_in_huey()
    queued = db.session.execute(
        select(Job.id, Job.next_attempt_at).where(Job.status == JobStatus.QUEUED)
    ).all()
    count = 0
    for job_id, eta in queued:
        if job_id not in held:
            dispatch(job_id, eta)
            count += 1
    return count


def _job_ids_in_huey() -> set[str]:
    if huey.immediate:
        return set()
    tasks = list(huey.pending()) + list(huey.scheduled())
    return {task.args[0] for task in tasks if task.args}
