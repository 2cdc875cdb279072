"""Durable jobs: run once, retry with backoff, fail visibly, recover orphans."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from app.extensions import db
from app.models.job import Job, WorkerProcess
from app.models.types import utcnow
from app.services import jobs

CALLS: list[tuple[str, tuple]] = []


@jobs.handler("test.record")
def record_call(*args: object) -> None:
    CALLS.append(("record", args))


@jobs.handler("test.flaky")
def flaky(failures_before_success: int) -> None:
    CALLS.append(("flaky", (failures_before_success,)))
    if len([c for c in CALLS if c[0] == "flaky"]) <= failures_before_success:
        raise ConnectionError("service unavailable")


@jobs.handler("test.permanent")
def permanent() -> None:
    raise jobs.PermanentJobError("the image URL answered 404")


@pytest.fixture(autouse=True)
def clear_calls():
    CALLS.clear()


def make_due(job_id: str) -> None:
    db.session.execute(
        update(Job).where(Job.id == job_id).values(next_attempt_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()


def test_a_job_runs_once_even_when_dispatched_twice(app) -> None:
    with app.app_context():
        job = jobs.enqueue("test.record", "item-1")
        assert db.session.get(Job, job.id).status == "done"
        assert jobs.run(job.id, "worker-b") == "skipped"
        assert CALLS == [("record", ("item-1",))]


def test_failures_are_retried_with_backoff_then_succeed(app) -> None:
    with app.app_context():
        job = jobs.enqueue("test.flaky", 2)
        stored = db.session.get(Job, job.id)
        assert stored.status == "queued"
        assert stored.attempts == 1
        assert "service unavailable" in stored.error
        assert stored.next_attempt_at > utcnow()
        assert jobs.run(job.id, "w") == "skipped"  # not due yet
        make_due(job.id)
        assert jobs.run(job.id, "w") == "queued"
        make_due(job.id)
        assert jobs.run(job.id, "w") == "done"
        db.session.refresh(stored)
        assert (stored.status, stored.attempts, stored.error) == ("done", 3, None)


def test_retries_end_in_a_visible_failure(app) -> None:
    with app.app_context():
        job = jobs.enqueue("test.flaky", 99, max_attempts=2)
        make_due(job.id)
        assert jobs.run(job.id, "w") == "failed"
        stored = db.session.get(Job, job.id)
        assert stored.status == "failed"
        assert stored.error == "ConnectionError: service unavailable"


def test_a_permanent_error_fails_at_once(app) -> None:
    with app.app_context():
        job = jobs.enqueue("test.permanent")
        stored = db.session.get(Job, job.id)
        assert (stored.status, stored.attempts) == ("failed", 1)
        assert "404" in stored.error


def test_backoff_grows_and_is_jittered() -> None:
    first = [jobs.backoff_seconds(1) for _ in range(50)]
    fifth = [jobs.backoff_seconds(5) for _ in range(50)]
    assert all(1.0 <= s <= 2.0 for s in first)
    assert all(16.0 <= s <= 32.0 for s in fifth)
    assert len(set(fifth)) > 1
    assert jobs.backoff_seconds(40) <= jobs.BACKOFF_CAP_SECONDS


def test_unknown_job_names_are_refused(app) -> None:
    with app.app_context(), pytest.raises(KeyError):
        jobs.enqueue("no.such.job")


def test_orphaned_running_jobs_are_queued_again(app) -> None:
    with app.app_context():
        alive, dead = "host:1:alive", "host:2:dead"
        db.session.add(WorkerProcess(id=alive, hostname="elsewhere", pid=1))
        db.session.add(
            WorkerProcess(
                id=dead, hostname="elsewhere", pid=2, heartbeat_at=utcnow() - timedelta(minutes=10)
            )
        )
        mine = Job(name="test.record", args=["a"], status="running", owner=alive, attempts=1)
        orphan = Job(name="test.record", args=["b"], status="running", owner=dead, attempts=1)
        db.session.add_all([mine, orphan])
        db.session.commit()
        jobs.recover_unfinished(stale_after=60)
        assert db.session.get(Job, mine.id).status == "running"  # its worker still beats
        assert db.session.get(Job, orphan.id).status == "done"  # re-queued and, inline, run
        assert CALLS == [("record", ("b",))]
