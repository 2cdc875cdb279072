"""Claims: who is working on an item right now, so two moderators never decide the same one.

A claim is ``items.claimed_by_id`` plus ``items.claim_expires_at``. Every change is one
conditional UPDATE whose WHERE clause re-checks that the item is still free (unclaimed, or its
claim has expired, or it is already the caller's), so the database, not the application, settles
a race: on SQLite the write lock serialises the statements, on PostgreSQL the row lock makes the
loser re-check the condition against the winner's row and update nothing.

Claims expire after ``CLAIM_MINUTES`` (default 10) and are renewed while the moderator works: each
view of the item, each action and a ping from the open page push the expiry forward. Ordinary
claims are not audited (they change every few seconds and a decision names who made it); a lead
taking over someone else's claim is.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, and_, or_, select, update

from app.extensions import db
from app.models.item import Item
from app.models.types import utcnow
from app.models.user import Role, User
from app.services import audit
from app.services.audit import Actor
from app.services.states import Status

NEXT_ATTEMPTS = 5  # a lost race is retried; five losses in a row means a very busy queue


def claim_minutes() -> float:
    """How long a claim lasts without being renewed."""
    return float(current_app.config.get("CLAIM_MINUTES", 10))


def claimable_statuses(user: User) -> tuple[str, ...]:
    """The states of items ``user`` may claim: leads and admins also take escalated items."""
    if user.has_role(Role.LEAD):
        return (Status.QUEUED.value, Status.ESCALATED.value)
    return (Status.QUEUED.value,)


def _free(now: datetime, user_id: int | None = None) -> ColumnElement[bool]:
    """Items nobody holds: unclaimed, or claimed with an expired claim (or held by ``user_id``)."""
    conditions = [Item.claimed_by_id.is_(None), Item.claim_expires_at < now]
    if user_id is not None:
        conditions.append(Item.claimed_by_id == user_id)
    return or_(*conditions)


def holds_claim(item: Item, user_id: int, now: datetime | None = None) -> bool:
    """True when ``user_id`` holds a live claim on ``item``."""
    now = now or utcnow()
    return (
        item.claimed_by_id == user_id
        and item.claim_expires_at is not None
        and item.claim_expires_at >= now
    )


def holder_id(item: Item, now: datetime | None = None) -> int | None:
    """The id of the user holding a live claim on ``item``, or None when it is free."""
    now = now or utcnow()
    if item.claimed_by_id is None or item.claim_expires_at is None or item.claim_expires_at < now:
        return None
    return item.claimed_by_id


def claim(item_id: str, user: User, now: datetime | None = None) -> bool:
    """Claim one item (or renew the caller's claim); commit. False when someone else holds it
    or the item is not waiting for review (or not in a state this user may claim)."""
    now = now or utcnow()
    result = db.session.execute(
        update(Item)
        .where(Item.id == item_id, Item.status.in_(claimable_statuses(user)), _free(now, user.id))
        .values(claimed_by_id=user.id, claim_expires_at=now + timedelta(minutes=claim_minutes())),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()
    return result.rowcount == 1  # type: ignore[attr-defined]


def claim_next(
    user: User,
    statuses: Iterable[str] = (Status.QUEUED.value,),
    conditions: Iterable[ColumnElement[bool]] = (),
) -> str | None:
    """Claim the highest-priority free item in ``statuses`` (narrowed by ``conditions``, the
    queue's filters); commit and return its id, or None when there is none.

    One statement: ``UPDATE items SET … WHERE id = (SELECT id … ORDER BY priority DESC,
    created_at LIMIT 1) AND <still free>``. ``FOR UPDATE SKIP LOCKED`` lets PostgreSQL hand
    concurrent callers different rows at once; SQLite ignores it and serialises the writes.
    """
    allowed = set(claimable_statuses(user))
    wanted = [status for status in statuses if status in allowed]
    if not wanted:
        return None
    extra = list(conditions)
    for _ in range(NEXT_ATTEMPTS):
        now = utcnow()
        candidate = (
            select(Item.id)
            .where(Item.status.in_(wanted), _free(now), *extra)
            .order_by(Item.priority.desc(), Item.created_at, Item.id)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        row = db.session.execute(
            update(Item)
            .where(Item.id == candidate, Item.status.in_(wanted), _free(now))
            .values(
                claimed_by_id=user.id, claim_expires_at=now + timedelta(minutes=claim_minutes())
            )
            .returning(Item.id),
            execution_options={"synchronize_session": False},
        ).first()
        db.session.commit()
        if row is not None:
            return str(row[0])
        # Nothing updated: the queue is empty, or another moderator took our candidate between
        # the subquery and the update (PostgreSQL). Only the second is worth another try.
        if (
            db.session.scalar(
                select(Item.id).where(Item.status.in_(wanted), _free(now), *extra).limit(1)
            )
            is None
        ):
            return None
    return None


def renew(item_id: str, user: User, now: datetime | None = None) -> bool:
    """Push the expiry of the caller's claim forward; commit. False when they do not hold it
    (an expired claim nobody else took is still theirs to renew)."""
    now = now or utcnow()
    result = db.session.execute(
        update(Item)
        .where(
            Item.id == item_id,
            Item.claimed_by_id == user.id,
            Item.status.in_(claimable_statuses(user)),
        )
        .values(claim_expires_at=now + timedelta(minutes=claim_minutes())),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()
    return result.rowcount == 1  # type: ignore[attr-defined]


def release(item_id: str, user: User) -> bool:
    """Give up the caller's claim; commit. False when they did not hold it."""
    result = db.session.execute(
        update(Item)
        .where(Item.id == item_id, Item.claimed_by_id == user.id)
        .values(claimed_by_id=None, claim_expires_at=None),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()
    return result.rowcount == 1  # type: ignore[attr-defined]


class ClaimRefused(Exception):
    """A claim change the user may not make; ``message`` says why in words."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def take_over(item_id: str, lead: User, actor: Actor, now: datetime | None = None) -> int | None:
    """A lead or admin takes the item whoever holds it; audited; commit.

    Returns the id of the user who lost the claim (None if it was free). Raises ClaimRefused.
    """
    if not lead.has_role(Role.LEAD):
        raise ClaimRefused("Only a lead or an admin can take over someone else's claim.")
    now = now or utcnow()
    item = db.session.get(Item, item_id, with_for_update=True)
    if item is None or item.status not in claimable_statuses(lead):
        raise ClaimRefused("This item is not waiting for review, so there is nothing to take over.")
    previous = holder_id(item, now)
    item.claimed_by_id = lead.id
    item.claim_expires_at = now + timedelta(minutes=claim_minutes())
    if previous is not None and previous != lead.id:
        details: dict[str, Any] = {"from_user_id": previous}
        holder = db.session.get(User, previous)
        if holder is not None:
            details["from_user"] = holder.email
        audit.record(
            "item.claim_taken_over", actor, target_type="item", target_id=item.id, details=details
        )
    db.session.commit()
    return previous


def claimed_by_others(user_id: int, now: datetime) -> ColumnElement[bool]:
    """Items someone other than ``user_id`` holds a live claim on (for queue filters)."""
    return and_(
        Item.claimed_by_id.is_not(None), Item.claimed_by_id != user_id, Item.claim_expires_at >= now
    )
