"""Visually similar items: PDQ neighbours of an item across every item, with their distance.

Each process keeps one items-wide :class:`~app.services.pdq_index.PdqIndex` (exact: every item
within the distance is found, none missed) on the app. It is filled from the items table once,
then topped up at most every ``SIMILAR_REFRESH_SECONDS`` (default 5) with the items changed since
the last look (a PDQ hash is set once, at ingest or after a URL fetch, and never changes).
Deleted items are dropped when the neighbours are read back from the database, so the page never
shows an item that is gone.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from app.extensions import db
from app.models.item import Item
from app.services.pdq_index import PdqIndex
from app.services.pdq_tables import MAX_THRESHOLD

EXTENSION_KEY = "modtools_similar"
# Rows whose commit lands after a refresh read past them are still caught by the next refresh:
# each refresh re-reads this much history before its watermark.
WATERMARK_SLACK = timedelta(minutes=2)


@dataclass
class ItemIndex:
    """The PDQ hashes of every item, keyed by a number per item id."""

    index: PdqIndex = field(default_factory=PdqIndex)
    keys: list[str] = field(default_factory=list)  # number -> item id
    numbers: dict[str, int] = field(default_factory=dict)
    watermark: datetime | None = None
    checked_at: float = float("-inf")
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh(self, every: float) -> None:
        """Add items changed since the last refresh, if the last one is ``every`` seconds old."""
        if time.monotonic() - self.checked_at < every:
            return
        with self.lock:
            if time.monotonic() - self.checked_at < every:
                return  # another thread refreshed while we waited
            started = time.monotonic()
            if self.watermark is None:
                self._load_all()
            else:
                self._load_changed()
            self.checked_at = started

    def _load_all(self) -> None:
        """The first fill: every hash, read without the ORM (100k rows in a fraction of the
        time). The watermark is read first, so a row changed during the read is seen again."""
        latest = db.session.scalar(select(func.max(Item.updated_at)))
        rows = (
            db.session.connection()
            .exec_driver_sql("SELECT id, pdq FROM items WHERE pdq IS NOT NULL")
            .fetchall()
        )
        self.keys = [item_id for item_id, _ in rows]
        self.numbers = {item_id: number for number, item_id in enumerate(self.keys)}
        self.index = PdqIndex.build(list(range(len(rows))), [pdq for _, pdq in rows])
        if latest is not None and latest.tzinfo is None:  # max() bypasses the column type
            latest = latest.replace(tzinfo=UTC)
        self.watermark = latest

    def _load_changed(self) -> None:
        """Add the items changed since the watermark (less the slack) that are not indexed."""
        assert self.watermark is not None
        statement = select(Item.id, Item.pdq, Item.updated_at).where(
            Item.pdq.is_not(None), Item.updated_at >= self.watermark - WATERMARK_SLACK
        )
        new_ids: list[int] = []
        new_hashes: list[str] = []
        latest = self.watermark
        for item_id, pdq, updated_at in db.session.execute(statement):
            latest = max(latest, updated_at)
            if item_id in self.numbers:
                continue
            number = len(self.keys)
            self.keys.append(item_id)  # before the index holds the number: readers map it
            self.numbers[item_id] = number
            new_ids.append(number)
            new_hashes.append(pdq)
        if new_ids:
            self.index.add_many(new_ids, new_hashes)
        self.watermark = latest

    def neighbours(self, pdq: str, threshold: int) -> list[tuple[str, int]]:
        """``(item_id, distance)`` of every indexed item within ``threshold``, closest first."""
        return [
            (self.keys[number], distance) for number, distance in self.index.query(pdq, threshold)
        ]


def item_index() -> ItemIndex:
    """This app's items-wide index, refreshed if due."""
    app: Any = current_app._get_current_object()  # type: ignore[attr-defined]
    index = app.extensions.get(EXTENSION_KEY)
    if index is None:
        index = app.extensions.setdefault(EXTENSION_KEY, ItemIndex())
    index.refresh(float(app.config.get("SIMILAR_REFRESH_SECONDS", 5)))
    return index


def distance_threshold() -> int:
    """The largest PDQ distance counted as similar (``SIMILAR_DISTANCE``, at most 31)."""
    return min(MAX_THRESHOLD, int(current_app.config.get("SIMILAR_DISTANCE", MAX_THRESHOLD)))


def similar_items(item: Item, limit: int = 24) -> list[tuple[Item, int]]:
    """Other items whose PDQ hash is within the threshold of ``item``'s, closest first."""
    if not item.pdq:
        return []
    found = [
        (item_id, distance)
        for item_id, distance in item_index().neighbours(item.pdq, distance_threshold())
        if item_id != item.id
    ]
    found = found[: limit * 2]  # some may have been deleted since they were indexed
    rows = {
        row.id: row
        for row in db.session.scalars(
            select(Item).where(Item.id.in_([item_id for item_id, _ in found]))
        )
    }
    return [(rows[item_id], distance) for item_id, distance in found if item_id in rows][:limit]
