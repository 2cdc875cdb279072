"""Operations records: which items' media retention purged, each purge run, queue depth samples."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Base
from app.models.types import UTCDateTime, utcnow


class MediaPurge(Base):
    """The item's media (original, thumbnail, preview) was purged; its hashes and decisions stay.

    A row of its own rather than a column on ``items``, so an item's record is never rewritten by
    retention and the purge reason ("approved after 30 days") is kept beside the date.
    """

    __tablename__ = "media_purges"

    item_id: Mapped[str] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    purged_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason: Mapped[str] = mapped_column(String(120))
    run_id: Mapped[int | None] = mapped_column(Integer, default=None)


class PurgeRun(Base):
    """One retention run: when, what it purged, what it kept because of an evidence hold."""

    __tablename__ = "purge_runs"
    __table_args__ = (Index("ix_purge_runs_started", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    items_purged: Mapped[int] = mapped_column(Integer, default=0)
    blobs_deleted: Mapped[int] = mapped_column(Integer, default=0)
    blobs_shared: Mapped[int] = mapped_column(Integer, default=0)  # kept: another item needs them
    items_held: Mapped[int] = mapped_column(Integer, default=0)  # kept: under evidence hold
    error: Mapped[str | None] = mapped_column(Text, default=None)


class QueueSample(Base):
    """How many items waited for review, and how many jobs for a worker, at one moment."""

    __tablename__ = "queue_samples"
    __table_args__ = (Index("ix_queue_samples_sampled", "sampled_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sampled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    queued: Mapped[int] = mapped_column(Integer, default=0)
    escalated: Mapped[int] = mapped_column(Integer, default=0)
    scanning: Mapped[int] = mapped_column(Integer, default=0)
    jobs_waiting: Mapped[int] = mapped_column(Integer, default=0)
