"""What the scanners said about an item: one row per scanner per scan round.

A scan round starts when an item enters ``scanning`` (first delivery or a re-scan). Each enabled
scanner gets a ``pending`` row; the row is the truth about that scanner's progress, which the
item page polls and the API reports. Rows of earlier rounds stay as the item's history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Base
from app.models.types import JSONType, UTCDateTime, utcnow


class ScanStatus:
    """Where one scanner is with one item."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    UNFINISHED = (PENDING, RUNNING)


class Verdict:
    """What a scanner concluded. ``error``: it could not say (down, timed out, refused)."""

    MATCH = "match"
    FLAG = "flag"
    CLEAR = "clear"
    ERROR = "error"

    ALL = (MATCH, FLAG, CLEAR, ERROR)


class ScanResult(Base):
    """One scanner's result for one item in one scan round."""

    __tablename__ = "scan_results"
    __table_args__ = (
        UniqueConstraint("item_id", "scanner", "scan_round", name="uq_scan_results_round"),
        Index("ix_scan_results_item_round", "item_id", "scan_round", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    scan_round: Mapped[int] = mapped_column(Integer, default=1)
    scanner: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=ScanStatus.PENDING)
    verdict: Mapped[str | None] = mapped_column(String(16), default=None)
    # [{"name": "nudity", "score": 0.93, "category": "sexual"}]
    labels: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    # [{"bank_id": 3, "bank_name": "NCMEC", "labels": ["csam"], "distance": 6, …}]
    matches: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    raw: Mapped[Any] = mapped_column(JSONType, default=None)  # the vendor's answer, for the record
    duration_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set in the same commit as the scanner's job, so a re-run of the round never queues it twice.
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    @property
    def finished(self) -> bool:
        """True once the scanner answered or ran out of attempts."""
        return self.status not in ScanStatus.UNFINISHED


class ScannerBucket(Base):
    """A token bucket per scanner, shared by every thread and process through the database.

    ``version`` makes taking a token an optimistic conditional UPDATE, so two workers never spend
    the same token; on SQLite the write lock already serialises them, on PostgreSQL this does.
    """

    __tablename__ = "scanner_buckets"

    scanner: Mapped[str] = mapped_column(String(64), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=0)
