"""Follow-up actions: each run of an action on an item, webhook deliveries, which decisions
trigger which actions, quarantined originals and evidence holds.

An ``ActionRun`` is the truth about one action on one item, as ``ScanResult`` is for a scanner:
the item page polls it, leads retry or cancel it. Its ``idempotency_key`` is unique, so the same
decision can never start the same action twice, and it is handed to the action (and sent as the
``webhook-id``) so a run repeated after a crash is recognised by whoever receives it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Base
from app.models.types import JSONType, UTCDateTime, utcnow


class RunStatus:
    """Where one action run is."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    ACTIVE = (QUEUED, RUNNING)
    FINISHED = (SUCCEEDED, FAILED, CANCELLED)


class ActionRun(Base):
    """One action carried out (or to be) on one item, with what started it and how it went."""

    __tablename__ = "action_runs"
    __table_args__ = (
        Index("ix_action_runs_item", "item_id", "created_at"),
        Index("ix_action_runs_status", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id"), default=None)
    rule_id: Mapped[int | None] = mapped_column(Integer, default=None)
    requested_by: Mapped[str] = mapped_column(String(255), default="system")  # actor label
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    external_ref: Mapped[str | None] = mapped_column(String(255), default=None)
    response_summary: Mapped[str | None] = mapped_column(Text, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Retries stop this long after the window opened (creation, or a lead's retry).
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    @property
    def active(self) -> bool:
        """True while the run is waiting or running (the item page keeps polling)."""
        return self.status in RunStatus.ACTIVE


class WebhookDelivery(Base):
    """One attempt to deliver a signed callback: where, which event, what came back."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_run", "run_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("action_runs.id", ondelete="CASCADE"), default=None
    )
    url: Mapped[str] = mapped_column(String(2048))
    event: Mapped[str] = mapped_column(String(64))
    webhook_id: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    duration_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ActionConfig(Base):
    """Which actions a decision starts: per outcome and policy category (``*``: any category)."""

    __tablename__ = "action_configs"
    __table_args__ = (UniqueConstraint("outcome", "category", name="uq_action_configs"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32), default="*")
    actions: Mapped[list[str]] = mapped_column(JSONType, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class QuarantinedMedia(Base):
    """An original moved out of the served media store into quarantine (by SHA-256)."""

    __tablename__ = "quarantined_media"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    run_id: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ItemHold(Base):
    """Evidence hold: the item's media and records must be kept until ``evidence_hold_until``.

    Set when a report to an authority is pending or filed; retention must skip held items.
    """

    __tablename__ = "item_holds"

    item_id: Mapped[str] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    evidence_hold_until: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
