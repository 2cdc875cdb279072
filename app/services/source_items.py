"""A source's own items, as its API token may see them: one by id, or a page of the newest.

A source never sees another source's items, not even whether they exist: lookups are always
scoped by ``source_id``, and a miss is the same ``None`` either way.

Pages use keyset pagination on ``(created_at, id)``, newest first, so a page costs the same at the
millionth item as at the first and items arriving meanwhile never shift a page. The cursor is
opaque to clients: URL-safe base64 of the last item's ``created_at`` and ``id``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, or_, select

from app.extensions import db
from app.models.item import Item
from app.models.source import Source
from app.services.states import Status
from app.services.submission import MAX_EXTERNAL_ID, IngestError

MAX_LIMIT = 100
DEFAULT_LIMIT = 50
MAX_CURSOR = 512


@dataclass(frozen=True)
class ItemFilter:
    """What a client asked to list; every field optional."""

    external_id: str | None = None
    status: str | None = None
    since: datetime | None = None
    cursor: str | None = None
    limit: int = DEFAULT_LIMIT


@dataclass(frozen=True)
class ItemPage:
    """One page of items and the cursor of the next (None on the last page)."""

    items: list[Item]
    next_cursor: str | None


def get_source_item(source: Source, item_id: str) -> Item | None:
    """The item with this id if it belongs to ``source``, else None."""
    if not item_id or len(item_id) > 64:
        return None
    return db.session.scalar(select(Item).where(Item.id == item_id, Item.source_id == source.id))


def list_source_items(source: Source, wanted: ItemFilter) -> ItemPage:
    """The newest items of ``source`` matching ``wanted``; raises IngestError for a bad cursor."""
    if wanted.status is not None and wanted.status not in {s.value for s in Status}:
        choices = ", ".join(s.value for s in Status)
        raise IngestError(
            "invalid_value",
            f"Unknown status {wanted.status!r}; use one of {choices}.",
            field="status",
        )
    if not 1 <= wanted.limit <= MAX_LIMIT:
        raise IngestError(
            "invalid_value", f"limit must be between 1 and {MAX_LIMIT}.", field="limit"
        )
    if wanted.external_id is not None and len(wanted.external_id) > MAX_EXTERNAL_ID:
        raise IngestError(
            "too_long", f"external_id is at most {MAX_EXTERNAL_ID} characters.", field="external_id"
        )
    query = select(Item).where(Item.source_id == source.id)
    if wanted.external_id is not None:
        query = query.where(Item.external_id == wanted.external_id)
    if wanted.status is not None:
        query = query.where(Item.status == wanted.status)
    if wanted.since is not None:
        query = query.where(Item.created_at >= wanted.since)
    if wanted.cursor:
        created_at, last_id = decode_cursor(wanted.cursor)
        query = query.where(
            or_(
                Item.created_at < created_at, and_(Item.created_at == created_at, Item.id < last_id)
            )
        )
    rows = db.session.scalars(
        query.order_by(Item.created_at.desc(), Item.id.desc()).limit(wanted.limit + 1)
    ).all()
    items = list(rows[: wanted.limit])
    more = len(rows) > wanted.limit
    return ItemPage(items, encode_cursor(items[-1]) if more else None)


def encode_cursor(item: Item) -> str:
    """The opaque cursor that continues after ``item``."""
    raw = json.dumps([item.created_at.isoformat(), item.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The ``(created_at, id)`` inside a cursor; raises IngestError when it is not one of ours."""
    try:
        if len(cursor) > MAX_CURSOR:
            raise ValueError
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, item_id = json.loads(raw)
        when = datetime.fromisoformat(created_at)
        if not isinstance(item_id, str) or when.tzinfo is None:
            raise ValueError
        return when.astimezone(UTC), item_id
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise IngestError(
            "invalid_cursor",
            "The cursor is not valid; use the next_cursor of a previous page as it was given.",
            field="cursor",
        ) from None
