"""Group commit for accepted items: many requests, one transaction, one fsync.

Every accepted item needs its row, its ``item.received`` audit event and its ``process_item`` job
row to commit together before the platform hears 202. Committed one request at a time, each item
costs a transaction (the ORM's flushes, a turn of the audit head, an fsync of the WAL), and under
load the requests queue on SQLite's write lock, whose busy handler sleeps in steps of up to
100 ms. That was most of what accepting an item cost, and most of its tail latency.

Instead each request hands its prepared rows to this process's intake writer and waits. The
writer takes whatever has arrived (up to ``MAX_BATCH``), writes it in one transaction with bulk
inserts and one turn of the audit chain, commits, and wakes the requests. Durability is the same
(nothing is answered before its commit), the audit chain is the same (consecutive events, each
chained to the one before), and the cost of a commit is shared by everything that arrived while
the previous one was being written.

A batch that fails (the same ``external_id`` twice, a lost race with another process, any other
error) is written again one arrival at a time, so one bad item never fails the others: a
duplicate learns the id of the item that won, anything else gets its own exception back.

The committed jobs go to the queue from a second thread, so that the writer is already
writing the next batch while the queue (a database of its own) takes the last one's jobs. A job
whose hand-over is lost (a crash in between) is committed all the same: the worker's start-up
recovery queues it. Both threads are per app, started by the first arrival and stopped after a
quiet spell; ``drain`` waits for the hand-overs in flight when the server stops.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from flask import Flask, current_app
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db, huey
from app.models.audit import AuditEvent
from app.models.item import Item
from app.models.job import Job
from app.models.types import new_id
from app.services import audit, jobs, storage

log = logging.getLogger(__name__)

MAX_BATCH = 64  # enough to amortise a commit; small enough that one batch never takes long
IDLE_SECONDS = 2.0  # a writer with nothing to do for this long stops; the next arrival restarts it
WAIT_SECONDS = 60.0  # a request never waits longer than this for its commit


T = TypeVar("T")


@dataclass
class Arrival:
    """One item waiting for its commit, and then what became of it."""

    row: dict[str, Any]  # the items row, keyed by attribute name; "id" is set
    actor: audit.Actor
    audit_details: dict[str, Any]
    job_name: str
    max_attempts: int
    blob: str | None = None  # an original put without its flush: the writer flushes it
    created: bool = False
    item_id: str | None = None  # ours when created, else the winner's
    status: str | None = None
    job_id: str | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


class BatchThread(ABC, Generic[T]):
    """A thread per app that handles what is put to it in batches of up to ``max_batch``.

    Started by the first ``put``, stopped after ``IDLE_SECONDS`` with nothing to do; ``drain``
    waits until everything put so far has been handled.
    """

    name = "modtools-batch"
    max_batch = MAX_BATCH

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.items: queue.Queue[T] = queue.Queue()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def put(self, item: T) -> None:
        with self.lock:
            self.items.put(item)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self.thread.start()

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for everything put so far to be handled."""
        deadline = time.monotonic() + timeout
        with self.items.all_tasks_done:
            while self.items.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.items.all_tasks_done.wait(remaining)
        return True

    @abstractmethod
    def handle(self, batch: list[T]) -> None:
        """Do the work of one batch, on this thread, inside the app context."""

    def _run(self) -> None:
        with self.app.app_context():
            while (batch := self._next_batch()) is not None:
                try:
                    self.handle(batch)
                except Exception:  # the thread must live on, or nothing put later is handled
                    log.exception("%s failed on a batch of %d", self.name, len(batch))
                finally:
                    db.session.remove()
                    for _ in batch:
                        self.items.task_done()

    def _next_batch(self) -> list[T] | None:
        try:
            batch = [self.items.get(timeout=IDLE_SECONDS)]
        except queue.Empty:
            with self.lock:
                if self.items.empty():  # nothing slipped in while we gave up: stop
                    self.thread = None
                    return None
            return self._next_batch()
        while len(batch) < self.max_batch:
            try:
                batch.append(self.items.get_nowait())
            except queue.Empty:
                break
        return batch


class IntakeWriter(BatchThread[Arrival]):
    """The thread that commits arrivals in batches for one app."""

    name = "modtools-intake"

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self.dispatcher = Dispatcher(app)

    def submit(self, arrival: Arrival) -> Arrival:
        """Queue ``arrival`` and wait until it is committed (or has failed, which is raised)."""
        self.put(arrival)
        if not arrival.done.wait(WAIT_SECONDS):
            raise TimeoutError("The database did not accept the item in time; resend it.")
        if arrival.error is not None:
            raise arrival.error
        return arrival

    def handle(self, batch: list[Arrival]) -> None:
        try:
            write(batch)
            # Before the requests hear back: a server that stops once they are answered then
            # finds these jobs in the dispatcher when it drains it.
            job_ids = [a.job_id for a in batch if a.created and a.job_id is not None]
            if job_ids and not huey.immediate:  # inline, each request runs its job itself
                self.dispatcher.put(job_ids)
        except Exception as error:  # never leave a request waiting for nothing
            log.exception("the intake writer failed on a batch of %d", len(batch))
            for arrival in batch:
                if arrival.item_id is None and arrival.error is None:
                    arrival.error = error
        finally:
            for arrival in batch:
                arrival.done.set()


class Dispatcher(BatchThread[list[str]]):
    """The thread that hands committed jobs to the queue, as many at a time as have piled up."""

    name = "modtools-intake-queue"
    max_batch = 4  # writer batches: up to 4 × MAX_BATCH jobs in one queue transaction

    def handle(self, batch: list[list[str]]) -> None:
        _dispatch([job_id for job_ids in batch for job_id in job_ids])


def writer() -> IntakeWriter:
    """This app's intake writer (one per app, so tests never share one)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    found = app.extensions.get("modtools_intake")
    if found is None:
        found = app.extensions.setdefault("modtools_intake", IntakeWriter(app))
    return found


def drain(app: Flask, timeout: float = 10.0) -> bool:
    """Wait until the jobs of every committed arrival are on the queue (the server is stopping)."""
    found: IntakeWriter | None = app.extensions.get("modtools_intake")
    return True if found is None else found.dispatcher.drain(timeout)


def commit_arrival(arrival: Arrival) -> Arrival:
    """Commit one arrival through this app's writer; returns it with its outcome filled in."""
    return writer().submit(arrival)


def write(batch: list[Arrival]) -> None:
    """Commit ``batch`` in one transaction, or, if that fails, each arrival on its own; the
    caller then wakes the arrivals' requests."""
    try:
        # The originals first: a committed item must never name a blob a power cut could lose.
        storage.original_store().sync([a.blob for a in batch if a.blob is not None])
        _insert(batch)
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        if len(batch) == 1 or isinstance(exc, OSError):
            for arrival in batch:
                _settle_alone(arrival, exc)
        else:
            for arrival in batch:
                _write_alone(arrival)
    else:
        for arrival in batch:
            arrival.created, arrival.item_id = True, arrival.row["id"]
            arrival.status = arrival.row["status"]


DISPATCH_RETRY_SECONDS = (0.5, 2.0, 8.0)  # a queue busy or briefly unreachable (Redis restarts)


def _dispatch(job_ids: list[str]) -> None:
    """Hand committed jobs to the queue, together, from one thread (no contention for it).

    A failure is retried a few times; after that the jobs stay committed and queued in the
    database, and the next start-up's recovery hands them over.
    """
    for pause in (*DISPATCH_RETRY_SECONDS, None):
        try:
            jobs.dispatch_now(job_ids)
            return
        except Exception as error:
            if pause is None:
                log.exception(
                    "could not queue %d jobs; they run after the next restart", len(job_ids)
                )
                return
            log.warning("could not queue %d jobs (%s); trying again", len(job_ids), error)
            time.sleep(pause)


def _write_alone(arrival: Arrival) -> None:
    try:
        _insert([arrival])
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        _settle_alone(arrival, exc)
    else:
        arrival.created, arrival.item_id = True, arrival.row["id"]
        arrival.status = arrival.row["status"]


def _settle_alone(arrival: Arrival, exc: Exception) -> None:
    """A single arrival failed: a lost race finds the winner; anything else is its error."""
    if isinstance(exc, IntegrityError):
        row = arrival.row
        winner = db.session.execute(
            select(Item.id, Item.status).where(
                Item.source_id == row["source_id"], Item.external_id == row["external_id"]
            )
        ).one_or_none()
        if winner is not None:
            arrival.item_id, arrival.status = winner
            return
    arrival.error = exc


def _insert(batch: list[Arrival]) -> None:
    """Bulk-insert the items, their jobs and their audit events, uncommitted."""
    for arrival in batch:
        arrival.job_id = new_id()
    db.session.execute(insert(Item), [arrival.row for arrival in batch])
    db.session.execute(
        insert(Job),
        [
            {
                "id": a.job_id,
                "name": a.job_name,
                "args": [a.row["id"]],
                "max_attempts": a.max_attempts,
            }
            for a in batch
        ],
    )
    events = audit.chain(
        [audit.Entry("item.received", a.actor, "item", a.row["id"], a.audit_details) for a in batch]
    )
    db.session.execute(insert(AuditEvent), events)
