"""The item's state machine, in one place.

``received → scanning → queued | escalated | cleared | removed``; a URL that cannot be fetched
leaves the item in ``fetch_failed`` (visible, with the reason) until it is retried; a human
decision moves a queued or escalated item to ``approved``, ``removed`` or ``escalated``. Every
transition is checked against this table and written to the audit log.
"""

from __future__ import annotations

from enum import StrEnum

from app.models.item import Item
from app.services import audit
from app.services.audit import Actor


class Status(StrEnum):
    RECEIVED = "received"
    FETCH_FAILED = "fetch_failed"
    SCANNING = "scanning"
    QUEUED = "queued"
    ESCALATED = "escalated"
    CLEARED = "cleared"
    REMOVED = "removed"
    APPROVED = "approved"


ALLOWED: dict[Status, frozenset[Status]] = {
    Status.RECEIVED: frozenset({Status.SCANNING, Status.FETCH_FAILED}),
    Status.FETCH_FAILED: frozenset({Status.RECEIVED}),
    # A re-scan sends a routed item back through the scanners.
    Status.SCANNING: frozenset(
        {Status.QUEUED, Status.ESCALATED, Status.CLEARED, Status.REMOVED, Status.SCANNING}
    ),
    Status.QUEUED: frozenset({Status.APPROVED, Status.REMOVED, Status.ESCALATED, Status.SCANNING}),
    # Undoing an escalation sends the item back to the queue.
    Status.ESCALATED: frozenset({Status.APPROVED, Status.REMOVED, Status.SCANNING, Status.QUEUED}),
    Status.CLEARED: frozenset({Status.SCANNING, Status.QUEUED, Status.REMOVED}),
    # Undo within the grace period returns an item to where it was: queued, or escalated when a
    # lead decided an escalated item.
    Status.APPROVED: frozenset({Status.SCANNING, Status.QUEUED, Status.ESCALATED}),
    Status.REMOVED: frozenset({Status.QUEUED, Status.ESCALATED}),
}

# States in which an item waits for a human.
AWAITING_REVIEW = frozenset({Status.QUEUED, Status.ESCALATED})


class IllegalTransition(Exception):
    """A state change the table does not allow."""

    def __init__(self, item: Item, target: Status) -> None:
        super().__init__(f"item {item.id} cannot go from {item.status} to {target}")
        self.item, self.target = item, target


def can_transition(current: str, target: Status) -> bool:
    """True when the table allows ``current → target``."""
    return Status(target) in ALLOWED.get(Status(current), frozenset())


def transition(
    item: Item, target: Status, actor: Actor, reason: str | None = None, **details: object
) -> None:
    """Move ``item`` to ``target`` in the current transaction, or raise IllegalTransition."""
    target = Status(target)
    if not can_transition(item.status, target):
        raise IllegalTransition(item, target)
    previous = item.status
    item.status = target.value
    item.status_reason = reason
    audit.record(
        "item.status",
        actor,
        target_type="item",
        target_id=item.id,
        details={"from": previous, "to": target.value, "reason": reason, **details},
    )
