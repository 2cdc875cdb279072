"""Group commit of accepted items, deferred flushing of originals, and the worker making way."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, func, select

from app.extensions import QueueStorage, db, huey
from app.models.item import Item
from app.models.job import Job
from app.security import public
from app.services import audit, intake, jobs, storage
from app.services.traffic import Traffic, traffic_of
from tests.api_helpers import bearer, item_body, item_count, jpeg, make_source
from tests.pipeline_helpers import app_without_consumer


def post_together(app: Flask, token: str, bodies: list[Any]) -> list[int]:
    """POST every body at the same moment, one thread each; the statuses, in order."""
    barrier = threading.Barrier(len(bodies))
    statuses: list[int] = [0] * len(bodies)

    def deliver(index: int) -> None:
        client = app.test_client()
        barrier.wait()
        response = client.post("/api/v1/items", json=bodies[index], headers=bearer(token))
        statuses[index] = response.status_code

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_items_arriving_together_share_commits_and_keep_the_audit_chain(app: Flask) -> None:
    _, token = make_source(app)
    bodies = [item_body(f"many-{i}", jpeg(seed=i)) for i in range(16)]
    with app.app_context():
        engine = db.engine
    commits: list[str] = []

    def count(connection: Any) -> None:
        commits.append(threading.current_thread().name)

    event.listen(engine, "commit", count)
    try:
        assert post_together(app, token, bodies) == [202] * 16
    finally:
        event.remove(engine, "commit", count)
    with app.app_context():
        assert db.session.scalar(select(func.count(Item.id))) == 16
        jobs_per_item = db.session.execute(
            select(func.count(Job.id)).where(Job.name == "process_item").group_by(Job.args)
        ).scalars()
        assert set(jobs_per_item) == {1}
        assert audit.verify_chain() == []
    # Each item's own processing commits too (jobs run inline in the request threads here);
    # accepting the sixteen took fewer commits than items.
    assert 1 <= commits.count("modtools-intake") < 16


def test_a_failed_flush_refuses_the_whole_batch_and_keeps_nothing(
    app: Flask, client, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token = make_source(app)
    real_sync = storage.FileSystemStore.sync
    failures = iter([OSError(5, "Input/output error")])

    def failing_once(self: storage.FileSystemStore, names: list[str]) -> None:
        error = next(failures, None)
        if error is not None:
            raise error
        real_sync(self, names)

    monkeypatch.setattr(storage.FileSystemStore, "sync", failing_once)
    refused = client.post(
        "/api/v1/items", json=item_body("io", jpeg(seed=1)), headers=bearer(token)
    )
    assert refused.status_code >= 500
    assert item_count(app) == 0  # nothing was answered 202, nothing is half there
    again = client.post("/api/v1/items", json=item_body("io", jpeg(seed=1)), headers=bearer(token))
    assert again.status_code == 202 and item_count(app) == 1


@pytest.mark.parametrize("with_syncfs", [True, False], ids=["syncfs", "fsync each"])
def test_originals_put_unflushed_are_whole_and_then_flushed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_syncfs: bool
) -> None:
    if not with_syncfs:
        monkeypatch.setattr(storage, "_SYNCFS", None)
    store = storage.FileSystemStore(tmp_path / "originals")
    names = [store.put(jpeg(seed=i), sync=False) for i in range(3)]
    assert [store.get(name) for name in names] == [jpeg(seed=i) for i in range(3)]
    assert not list(store.root.rglob(".incoming-*"))  # renamed into place, nothing left over
    store.sync(names)
    store.sync([])
    if not with_syncfs:
        with pytest.raises(FileNotFoundError):
            store.sync(["0" * 64])  # a blob that is not there cannot have been flushed


def test_the_worker_waits_for_requests_in_flight_but_not_for_ever() -> None:
    traffic = Traffic()
    assert traffic.wait_quiet(0) is True
    traffic.enter()
    started = time.monotonic()
    assert traffic.wait_quiet(0.05) is False  # gave up: a steady stream cannot stop the worker
    assert time.monotonic() - started >= 0.05
    threading.Timer(0.05, traffic.leave).start()
    assert traffic.wait_quiet(5) is True  # woken when the last request finished


def test_requests_are_counted_while_they_run(app: Flask, client) -> None:
    seen: list[int] = []

    @app.get("/_traffic_probe")
    @public
    def probe() -> str:
        seen.append(traffic_of(app).in_flight)
        return "ok"

    assert client.get("/_traffic_probe").status_code == 200
    assert seen == [1]  # this request, while it ran
    assert traffic_of(app).in_flight == 0


def test_a_batch_of_jobs_goes_on_the_sqlite_queue_in_one_transaction(tmp_path: Path) -> None:
    queue = QueueStorage("modtools", filename=str(tmp_path / "huey.db"))
    statements: list[str] = []
    queue.enqueue(b"first")
    connection = queue.conn
    connection.set_trace_callback(statements.append)
    queue.enqueue_many([b"second", b"third"])
    connection.set_trace_callback(None)
    assert sum(s.lower().startswith("insert") for s in statements) == 2
    assert sum(s.upper() in ("COMMIT", "END") for s in statements) <= 1
    assert [queue.dequeue() for _ in range(4)] == [b"first", b"second", b"third", None]


def test_every_accepted_item_has_its_job_on_the_queue_once_drained(
    instance_path: Path, tmp_path: Path
) -> None:
    with app_without_consumer(instance_path, tmp_path) as app:
        _, token = make_source(app)
        bodies = [item_body(f"queued-{i}", jpeg(seed=i)) for i in range(12)]
        assert post_together(app, token, bodies) == [202] * 12
        assert intake.drain(app, timeout=10)
        with app.app_context():
            job_ids = set(db.session.scalars(select(Job.id).where(Job.name == "process_item")))
        queued = [huey.storage.dequeue() for _ in range(13)]
        assert queued[-1] is None  # twelve messages, no more
        on_queue = [huey.deserialize_task(message).args[0] for message in queued[:-1]]
        assert sorted(on_queue) == sorted(job_ids) and len(job_ids) == 12


def test_a_queue_that_fails_for_a_moment_still_gets_every_job(
    instance_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(intake, "DISPATCH_RETRY_SECONDS", (0.05, 0.05))
    real_dispatch_now = jobs.dispatch_now
    failures = []

    def locked_once(job_ids: list[str]) -> None:
        if not failures:
            failures.append(1)
            raise sqlite3.OperationalError("database is locked")
        real_dispatch_now(job_ids)

    monkeypatch.setattr(jobs, "dispatch_now", locked_once)
    with app_without_consumer(instance_path, tmp_path) as app:
        _, token = make_source(app)
        bodies = [item_body(f"retried-{i}", jpeg(seed=i)) for i in range(4)]
        assert post_together(app, token, bodies) == [202] * 4
        assert intake.drain(app, timeout=10)
        messages = []
        while (message := huey.storage.dequeue()) is not None:
            messages.append(message)
        assert failures == [1] and len(messages) == 4


def test_a_writer_failure_answers_the_waiting_request_at_once(
    app: Flask, client, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token = make_source(app)
    real_write, calls = intake.write, []

    def broken_once(batch: list[intake.Arrival]) -> None:
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("disk controller on fire")
        real_write(batch)

    monkeypatch.setattr(intake, "write", broken_once)
    started = time.monotonic()
    first = client.post("/api/v1/items", json=item_body("w-1", jpeg(1)), headers=bearer(token))
    assert first.status_code == 500 and time.monotonic() - started < 10  # not the 60 s wait
    second = client.post("/api/v1/items", json=item_body("w-2", jpeg(2)), headers=bearer(token))
    assert second.status_code == 202 and item_count(app) == 1
