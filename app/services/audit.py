"""Recording and verifying the hash-chained audit log.

Events are written in the caller's transaction, so an action and its audit record commit or roll
back together. Appending first updates the single ``audit_head`` row, which serialises writers on
SQLite (database write lock) and PostgreSQL (row lock) alike.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from app.extensions import core_write, db
from app.models.audit import AuditEvent, AuditHead
from app.models.types import utcnow

GENESIS = "0" * 64
SECRET_KEY_PATTERN = re.compile(r"pass|secret|token|key|otp|code|authorization|cookie", re.I)


@dataclass(frozen=True)
class Actor:
    """Who caused an event: a user, an API source, or the system itself."""

    type: str
    id: str | None
    label: str
    ip: str | None = None

    @classmethod
    def for_user(cls, user: Any, ip: str | None = None) -> Actor:
        return cls("user", str(user.id), user.email, ip)

    @classmethod
    def for_source(cls, source: Any, ip: str | None = None) -> Actor:
        return cls("source", str(source.id), source.slug, ip)

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls("system", None, label)


def redact(details: dict[str, Any]) -> dict[str, Any]:
    """Replace values whose key names a secret, so no caller leaks one into the log by accident."""
    clean: dict[str, Any] = {}
    for key, value in details.items():
        if SECRET_KEY_PATTERN.search(key) and not key.endswith(("_set", "_id", "_count")):
            clean[key] = "[redacted]"
        elif isinstance(value, dict):
            clean[key] = redact(value)
        else:
            clean[key] = value
    return clean


def event_hash(event: Any) -> str:
    """SHA-256 over the previous hash and this event's content in canonical JSON."""
    return _content_hash({name: getattr(event, name) for name in HASHED})


HASHED = (
    "seq",
    "created_at",
    "actor_type",
    "actor_id",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "details",
    "ip",
    "prev_hash",
)


def _content_hash(row: dict[str, Any]) -> str:
    content = {name: row[name] for name in HASHED if name != "prev_hash"}
    content["created_at"] = row["created_at"].isoformat()
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((row["prev_hash"] + canonical).encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    """An event to append: what happened, who did it, to what, with which details."""

    action: str
    actor: Actor
    target_type: str | None = None
    target_id: Any = None
    details: dict[str, Any] | None = None


def record(
    action: str,
    actor: Actor,
    *,
    target_type: str | None = None,
    target_id: Any = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append an event in the current transaction; the caller commits."""
    (row,) = chain([Entry(action, actor, target_type, target_id, details)])
    core_write(_INSERT_EVENTS, row)


# Built once: every event goes through these, and a statement built per call costs more Python
# than the database spends running it.
_TURN_HEAD = (
    update(AuditHead)
    .where(AuditHead.id == 1)
    .values(seq=AuditHead.seq + bindparam("count"))
    .returning(AuditHead.seq, AuditHead.last_hash)
)
_SET_LAST_HASH = update(AuditHead).where(AuditHead.id == 1).values(last_hash=bindparam("last"))
_INSERT_EVENTS = insert(AuditEvent)


def chain(entries: list[Entry]) -> list[dict[str, Any]]:
    """Take the next ``len(entries)`` places in the chain; return the rows for the caller to add.

    One turn of the head for the lot: its UPDATE serialises writers (database write lock on
    SQLite, row lock on PostgreSQL) until the caller's transaction ends.
    """
    count = len(entries)
    head = core_write(_TURN_HEAD, {"count": count}).one_or_none()
    if head is None:
        db.session.add(AuditHead(id=1, seq=count, last_hash=GENESIS))
        db.session.flush()
        last, prev_hash = count, GENESIS
    else:
        last, prev_hash = head
    now = utcnow()
    rows = []
    for seq, entry in enumerate(entries, start=last - count + 1):
        actor = entry.actor
        row = {
            "seq": seq,
            "created_at": now,
            "actor_type": actor.type,
            "actor_id": actor.id,
            "actor_label": actor.label,
            "action": entry.action,
            "target_type": entry.target_type,
            "target_id": None if entry.target_id is None else str(entry.target_id),
            "details": json.loads(json.dumps(redact(entry.details or {}), default=str)),
            "ip": actor.ip,
            "prev_hash": prev_hash,
        }
        row["hash"] = prev_hash = _content_hash(row)
        rows.append(row)
    core_write(_SET_LAST_HASH, {"last": prev_hash})
    return rows


@dataclass(frozen=True)
class ChainBreak:
    """Where and why the chain does not verify."""

    seq: int
    reason: str


def verify_chain(
    batch: int = 5000, progress: Callable[[int], None] | None = None
) -> list[ChainBreak]:
    """Check every event's hash and link; return the breaks found (empty when intact).

    ``progress`` is called after each batch with the number of events checked so far. Events
    appended while the check runs are checked too, so a busy log is not reported broken.
    """
    breaks: list[ChainBreak] = []
    expected_prev, expected_seq = GENESIS, 1
    checked = 0
    while True:
        found = 0
        for rows in _batches_in_order(expected_seq - 1, batch):
            for event in rows:
                breaks += _event_breaks(event, expected_seq, expected_prev)
                expected_prev, expected_seq = event.hash, event.seq + 1
            found += len(rows)
            checked += len(rows)
            if progress is not None:
                progress(checked)
        # A plain query, not the session's copy: the head moves while a long check runs.
        head = db.session.execute(
            select(AuditHead.seq, AuditHead.last_hash).where(AuditHead.id == 1)
        ).one_or_none()
        if not (found and head is not None and head.seq > expected_seq - 1):
            break  # caught up with the head (or the events it counts are gone)
    last_seq = expected_seq - 1
    if head is not None and (head.seq != last_seq or head.last_hash != expected_prev):
        breaks.append(
            ChainBreak(head.seq, f"the log ends at {last_seq} but was written up to {head.seq}")
        )
    if head is None and last_seq:
        breaks.append(ChainBreak(last_seq, "the chain head is missing"))
    return breaks


def _event_breaks(event: Any, expected_seq: int, expected_prev: str) -> list[ChainBreak]:
    found = []
    if event.seq != expected_seq:
        found.append(ChainBreak(expected_seq, f"events {expected_seq}–{event.seq - 1} are missing"))
    if event.prev_hash != expected_prev:
        found.append(ChainBreak(event.seq, "does not link to the event before it"))
    if event_hash(event) != event.hash:
        found.append(ChainBreak(event.seq, "content was changed after it was written"))
    return found


def _batches_in_order(after: int, batch: int) -> Iterator[list[Any]]:
    # Plain rows, not ORM objects: a million events must not pile up in the session.
    table = AuditEvent.__table__
    last = after
    while True:
        rows = db.session.execute(
            select(table).where(table.c.seq > last).order_by(table.c.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield list(rows)
        last = rows[-1].seq
