"""The review queues: which items each one holds, in what order, one page at a time, and counts.

- To review: queued items nobody else holds (free, expired, or claimed by the viewer).
- Escalated: escalated items (leads and admins).
- Mine: items the viewer holds a live claim on.
- Decided: the latest decisions, newest first (from the decisions table, not the items).
- All: every item.

Pages are cut by keyset cursors, never OFFSET, so page 500 costs what page 1 does. A cursor
holds the sort key of the last row shown; the rows after it are fetched with one index range
query per key column (``priority = P AND created_at = C AND id > I``, then ``priority = P AND
created_at > C``, then ``priority < P``), each of which the database answers from an index.
Filters (``app.services.queue_filters``) narrow every query the same way.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, contains_eager

from app.extensions import db
from app.models.item import Item
from app.models.review import Decision
from app.models.types import utcnow
from app.models.user import Role, User
from app.services.states import AWAITING_REVIEW, Status

PAGE_SIZE = 48


class Queue(StrEnum):
    """The queues of the review screen, in the order of their tabs."""

    REVIEW = "review"
    ESCALATED = "escalated"
    MINE = "mine"
    DECIDED = "decided"
    ALL = "all"

    @property
    def title(self) -> str:
        """The tab's label."""
        return QUEUE_TITLES[self]


QUEUE_TITLES = {
    Queue.REVIEW: "To review",
    Queue.ESCALATED: "Escalated",
    Queue.MINE: "Mine",
    Queue.DECIDED: "Decided",
    Queue.ALL: "All",
}
LEAD_QUEUES = frozenset({Queue.ESCALATED})


def may_view(queue: Queue, user: User) -> bool:
    """Whether ``user`` may open ``queue`` (escalated items are for leads and admins)."""
    return queue not in LEAD_QUEUES or user.has_role(Role.LEAD)


def visible_queues(user: User) -> list[Queue]:
    """The queues ``user`` sees as tabs."""
    return [queue for queue in Queue if may_view(queue, user)]


def statuses_for_next(queue: Queue) -> tuple[str, ...]:
    """Which items "next" claims from, seen from ``queue``: the escalated queue hands out
    escalated items, every other queue hands out queued ones."""
    return (Status.ESCALATED.value,) if queue is Queue.ESCALATED else (Status.QUEUED.value,)


# --- ordering ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SortKey:
    """One column of an order: the column, its direction, and how to read it from a cursor."""

    column: InstrumentedAttribute[Any]
    descending: bool
    parse: Callable[[Any], Any]


def _parse_time(value: Any) -> datetime:
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


SORTS: dict[str, tuple[SortKey, ...]] = {
    "priority": (
        SortKey(Item.priority, True, int),
        SortKey(Item.created_at, False, _parse_time),
        SortKey(Item.id, False, str),
    ),
    "newest": (SortKey(Item.created_at, True, _parse_time), SortKey(Item.id, True, str)),
    "oldest": (SortKey(Item.created_at, False, _parse_time), SortKey(Item.id, False, str)),
}
SORT_TITLES = {
    "priority": "Priority, then oldest",
    "newest": "Newest first",
    "oldest": "Oldest first",
}
DECIDED_KEYS = (SortKey(Decision.id, True, int),)


def default_sort(queue: Queue) -> str:
    """The order a queue opens in: the review queues by priority, All by arrival."""
    return "newest" if queue is Queue.ALL else "priority"


def encode_cursor(values: Sequence[Any]) -> str:
    """A URL-safe cursor for a row's sort key."""
    plain = [value.isoformat() if isinstance(value, datetime) else value for value in values]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, keys: Sequence[SortKey]) -> list[Any] | None:
    """The sort key in ``cursor``, or None for a missing or unreadable one (the first page)."""
    if not cursor:
        return None
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list) or len(raw) != len(keys):
            return None
        return [key.parse(value) for key, value in zip(keys, raw, strict=True)]
    except (ValueError, TypeError):
        return None


def _after(
    keys: Sequence[SortKey], values: Sequence[Any], index: int, backwards: bool
) -> list[ColumnElement[bool]]:
    """Rows equal to ``values`` on the first ``index`` keys and strictly past it on the next."""
    conditions: list[ColumnElement[bool]] = [
        key.column == value for key, value in zip(keys[:index], values[:index], strict=True)
    ]
    key, value = keys[index], values[index]
    conditions.append(key.column < value if key.descending != backwards else key.column > value)
    return conditions


def keyset_rows(
    statement: Select[Any],
    keys: Sequence[SortKey],
    cursor: list[Any] | None,
    limit: int,
    backwards: bool = False,
) -> list[Any]:
    """Up to ``limit`` rows of ``statement`` after (or, ``backwards``, before) ``cursor``."""
    order = [key.column.desc() if key.descending != backwards else key.column.asc() for key in keys]
    if cursor is None:
        return list(db.session.scalars(statement.order_by(*order).limit(limit)).unique())
    rows: list[Any] = []
    for index in reversed(range(len(keys))):
        more = db.session.scalars(
            statement.where(*_after(keys, cursor, index, backwards))
            .order_by(*order)
            .limit(limit - len(rows))
        ).unique()
        rows.extend(more)
        if len(rows) >= limit:
            break
    return rows


# --- the queues -------------------------------------------------------------------------------


def item_conditions(queue: Queue, user: User, now: datetime) -> list[ColumnElement[bool]]:
    """What puts an item in ``queue`` for ``user`` (not for Decided, which lists decisions)."""
    if queue is Queue.REVIEW:
        return [
            Item.status == Status.QUEUED.value,
            or_(
                Item.claimed_by_id.is_(None),
                Item.claimed_by_id == user.id,
                Item.claim_expires_at < now,
            ),
        ]
    if queue is Queue.ESCALATED:
        return [Item.status == Status.ESCALATED.value]
    if queue is Queue.MINE:
        return [
            Item.claimed_by_id == user.id,
            Item.claim_expires_at >= now,
            Item.status.in_([status.value for status in AWAITING_REVIEW]),
        ]
    return []


@dataclass
class Page:
    """One page of a queue: items (and, in Decided, their decisions) plus cursors around it."""

    items: list[Item]
    decisions: dict[str, Decision]
    next_cursor: str | None
    prev_cursor: str | None


def list_page(
    queue: Queue,
    user: User,
    conditions: Sequence[ColumnElement[bool]] = (),
    sort: str | None = None,
    after: str | None = None,
    before: str | None = None,
    limit: int = PAGE_SIZE,
    now: datetime | None = None,
) -> Page:
    """One page of ``queue`` as ``user`` sees it, narrowed by filter ``conditions``."""
    now = now or utcnow()
    if queue is Queue.DECIDED:
        statement: Select[Any] = (
            select(Decision)
            .join(Decision.item)
            .options(contains_eager(Decision.item))
            .where(Decision.undone_at.is_(None), *conditions)
        )
        keys: Sequence[SortKey] = DECIDED_KEYS
    else:
        statement = select(Item).where(*item_conditions(queue, user, now), *conditions)
        keys = SORTS.get(sort or "", SORTS[default_sort(queue)])
    backwards = before is not None and after is None
    cursor = decode_cursor(before if backwards else after, keys)
    rows = keyset_rows(statement, keys, cursor, limit + 1, backwards)
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    values = [[getattr(row, key.column.key) for key in keys] for row in rows]
    has_newer = (more if backwards else cursor is not None) and bool(rows)
    has_older = (True if backwards else more) and bool(rows)
    if queue is Queue.DECIDED:
        decisions = {row.item_id: row for row in rows}
        items = [row.item for row in rows]
    else:
        decisions, items = {}, rows
    return Page(
        items,
        decisions,
        encode_cursor(values[-1]) if has_older else None,
        encode_cursor(values[0]) if has_newer else None,
    )


# --- counts -----------------------------------------------------------------------------------


def start_of_day(now: datetime) -> datetime:
    """Midnight UTC of ``now``'s day: "today" for counters."""
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


COUNTS_KEY = "modtools_queue_counts"


def _totals(now: datetime) -> dict[str, int]:
    """Items per waiting status and in all, cached for ``QUEUE_COUNTS_CACHE_SECONDS`` (default 5).

    Counting 100k rows costs milliseconds each time, and every open queue page asks every ten
    seconds; one count per process per few seconds serves them all. Decisions in this process
    clear the cache (:func:`forget_counts`), so the decider sees their own change at once.
    """
    app: Any = current_app._get_current_object()  # type: ignore[attr-defined]
    cached = app.extensions.get(COUNTS_KEY)
    ttl = float(app.config.get("QUEUE_COUNTS_CACHE_SECONDS", 5))
    if cached is not None and time.monotonic() - cached[0] < ttl:
        return cached[1]  # type: ignore[no-any-return]
    totals: dict[str, int] = dict(
        db.session.execute(
            select(Item.status, func.count())
            .where(Item.status.in_([Status.QUEUED.value, Status.ESCALATED.value]))
            .group_by(Item.status)
        ).all()
    )
    totals["all"] = db.session.scalar(select(func.count()).select_from(Item)) or 0
    app.extensions[COUNTS_KEY] = (time.monotonic(), totals)
    return totals


def forget_counts() -> None:
    """Drop the cached totals (after a decision or an undo)."""
    current_app.extensions.pop(COUNTS_KEY, None)


def counts(user: User, now: datetime | None = None) -> dict[Queue, int]:
    """How many entries each queue ``user`` may see holds right now (Decided: today)."""
    now = now or utcnow()
    totals = _totals(now)
    held = db.session.execute(
        select(Item.claimed_by_id, Item.status, func.count())
        .where(
            Item.claimed_by_id.is_not(None),
            Item.claim_expires_at >= now,
            Item.status.in_([Status.QUEUED.value, Status.ESCALATED.value]),
        )
        .group_by(Item.claimed_by_id, Item.status)
    ).all()
    held_by_others = sum(
        n for holder, status, n in held if holder != user.id and status == Status.QUEUED.value
    )
    result = {
        Queue.REVIEW: max(0, totals.get(Status.QUEUED.value, 0) - held_by_others),
        Queue.ESCALATED: totals.get(Status.ESCALATED.value, 0),
        Queue.MINE: sum(n for holder, _, n in held if holder == user.id),
        Queue.DECIDED: db.session.scalar(
            select(func.count())
            .select_from(Decision)
            .where(Decision.created_at >= start_of_day(now), Decision.undone_at.is_(None))
        )
        or 0,
        Queue.ALL: totals["all"],
    }
    return {queue: result[queue] for queue in visible_queues(user)}


def oldest_waiting(now: datetime | None = None) -> timedelta | None:
    """How long the oldest queued item has waited, or None when nothing waits."""
    oldest = db.session.scalar(
        select(func.min(Item.created_at)).where(Item.status == Status.QUEUED.value)
    )
    if oldest is None:
        return None
    if oldest.tzinfo is None:  # min() bypasses the column type on SQLite
        oldest = _parse_time(oldest)
    return (now or utcnow()) - oldest


def decided_today(user_id: int, now: datetime | None = None) -> int:
    """How many decisions (not undone) ``user_id`` made today."""
    return (
        db.session.scalar(
            select(func.count())
            .select_from(Decision)
            .where(
                Decision.user_id == user_id,
                Decision.created_at >= start_of_day(now or utcnow()),
                Decision.undone_at.is_(None),
            )
        )
        or 0
    )
