"""Recording and verifying the hash-chained audit log.

Events are written in the caller's transaction, so an action and its audit record commit or roll
back together. Appending first updates the single ``audit_head`` row, which serialises writers on
SQLite (database write lock) and PostgreSQL (row lock) alike.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from app.extensions import db
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
    content = {
        "seq": event.seq,
        "created_at": event.created_at.isoformat(),
        "actor_type": event.actor_type,
        "actor_id": event.actor_id,
        "actor_label": event.actor_label,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "details": event.details,
        "ip": event.ip,
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((event.prev_hash + canonical).encode()).hexdigest()


def record(
    action: str,
    actor: Actor,
    *,
    target_type: str | None = None,
    target_id: Any = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append an event in the current transaction; the caller commits."""
    head = db.session.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(seq=AuditHead.seq + 1)
        .returning(AuditHead.seq, AuditHead.last_hash)
    ).one_or_none()
    if head is None:
        db.session.add(AuditHead(id=1, seq=1, last_hash=GENESIS))
        db.session.flush()
        seq, prev_hash = 1, GENESIS
    else:
        seq, prev_hash = head
    event = AuditEvent(
        seq=seq,
        created_at=utcnow(),
        actor_type=actor.type,
        actor_id=actor.id,
        actor_label=actor.label,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        details=json.loads(json.dumps(redact(details or {}), default=str)),
        ip=actor.ip,
        prev_hash=prev_hash,
    )
    event.hash = event_hash(event)
    db.session.add(event)
    db.session.execute(update(AuditHead).where(AuditHead.id == 1).values(last_hash=event.hash))
    return event


@dataclass(frozen=True)
class ChainBreak:
    """Where and why the chain does not verify."""

    seq: int
    reason: str


def verify_chain(batch: int = 5000) -> list[ChainBreak]:
    """Check every event's hash and link; return the breaks found (empty when intact)."""
    breaks: list[ChainBreak] = []
    expected_prev, expected_seq = GENESIS, 1
    for event in _events_in_order(batch):
        if event.seq != expected_seq:
            breaks.append(
                ChainBreak(expected_seq, f"events {expected_seq}–{event.seq - 1} are missing")
            )
        if event.prev_hash != expected_prev:
            breaks.append(ChainBreak(event.seq, "does not link to the event before it"))
        if event_hash(event) != event.hash:
            breaks.append(ChainBreak(event.seq, "content was changed after it was written"))
        expected_prev, expected_seq = event.hash, event.seq + 1
    head = db.session.get(AuditHead, 1)
    last_seq = expected_seq - 1
    if head is not None and (head.seq != last_seq or head.last_hash != expected_prev):
        breaks.append(
            ChainBreak(head.seq, f"the log ends at {last_seq} but was written up to {head.seq}")
        )
    if head is None and last_seq:
        breaks.append(ChainBreak(last_seq, "the chain head is missing"))
    return breaks


def _events_in_order(batch: int) -> Iterator[Any]:
    # Plain rows, not ORM objects: a million events must not pile up in the session.
    table = AuditEvent.__table__
    last = 0
    while True:
        rows = db.session.execute(
            select(table).where(table.c.seq > last).order_by(table.c.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
