"""Webhooks we receive: the delivery ids already handled (replay protection) and a receipt log.

A platform's delivery id (``webhook-id``, ``X-Discourse-Event-Id``, Misskey's ``eventId`` …) is
kept once handled, unique per source, so the same delivery sent again is recognised and ignored.
The receipt log is what an admin reads when "the forum says it sent it but nothing arrived":
one short row per request, refused ones included, never with a secret or a body in it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Base
from app.models.types import UTCDateTime, utcnow


class ReceivedWebhook(Base):
    """A delivery id from a source that has been handled; a second delivery with it is a replay."""

    __tablename__ = "webhook_seen_ids"
    __table_args__ = (
        UniqueConstraint("source_id", "delivery_id", name="uq_webhook_seen_source_delivery"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    delivery_id: Mapped[str] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class WebhookReceipt(Base):
    """One webhook request as we answered it: accepted, ignored, a duplicate, or refused and why."""

    __tablename__ = "webhook_receipts"
    __table_args__ = (Index("ix_webhook_receipts_source_created", "source_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(64), default="")
    # accepted, ignored, duplicate, not_ready, refused, failed
    status: Mapped[str] = mapped_column(String(20))
    http_status: Mapped[int] = mapped_column(Integer)
    delivery_id: Mapped[str | None] = mapped_column(String(255), default=None)
    error: Mapped[str | None] = mapped_column(String(500), default=None)
    items_created: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
