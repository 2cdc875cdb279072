"""The item: one image with its context, the unit of review."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import Base
from app.models.source import Source
from app.models.types import JSONType, UTCDateTime, new_id, utcnow


class Item(Base):
    """An image a source sent us, its hashes, where it appeared and where it is in review."""

    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("source_id", "external_id", name="uq_items_source_external"),
        Index("ix_items_source_created", "source_id", "created_at"),
        Index("ix_items_uploader", "source_id", "uploader_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    external_id: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20), default="received")
    status_reason: Mapped[str | None] = mapped_column(Text, default=None)  # e.g. why a fetch failed

    # Media (filled when the bytes are in the store; a URL item gets them after the fetch)
    image_url: Mapped[str | None] = mapped_column(String(4096), default=None)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    md5: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    pdq: Mapped[str | None] = mapped_column(String(64), default=None)
    pdq_quality: Mapped[int | None] = mapped_column(Integer, default=None)
    mime: Mapped[str | None] = mapped_column(String(32), default=None)
    width: Mapped[int | None] = mapped_column(Integer, default=None)
    height: Mapped[int | None] = mapped_column(Integer, default=None)
    bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    frames: Mapped[int | None] = mapped_column(Integer, default=None)
    has_derivatives: Mapped[bool] = mapped_column(default=False)

    # Context
    uploader_id: Mapped[str | None] = mapped_column(String(255), default=None)
    uploader_name: Mapped[str | None] = mapped_column(String(255), default=None)
    uploader_ip: Mapped[str | None] = mapped_column(String(64), default=None)
    context_url: Mapped[str | None] = mapped_column(String(4096), default=None)
    context_text: Mapped[str | None] = mapped_column(Text, default=None)
    context_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    item_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    callback_url: Mapped[str | None] = mapped_column(String(2048), default=None)

    # Review
    priority: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    claim_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    scanned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    source: Mapped[Source] = relationship()


# Indexes with a descending column cannot be declared in __table_args__. They serve the review
# queue's order and "next" (status, priority desc, age), "Mine" and claim expiry, "All" newest
# first, and the refresh of the similar-images index (bench/bench_review.py measures them).
Index("ix_items_review_order", Item.status, Item.priority.desc(), Item.created_at, Item.id)
Index("ix_items_claimed", Item.claimed_by_id, Item.claim_expires_at)
Index("ix_items_created_at", Item.created_at)
Index("ix_items_updated_at", Item.updated_at)
