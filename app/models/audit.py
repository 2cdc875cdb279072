"""The append-only audit log: every event is chained to the one before it by SHA-256.

``AuditVerification`` records each check of the chain that an admin started from the audit
page: it runs as a background job, and the row carries its progress and result for the page.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Base
from app.models.types import JSONType, UTCDateTime, utcnow


class AuditEvent(Base):
    """Who did what to which object, when and from where.

    ``hash`` covers this row's content and ``prev_hash``, so editing a row breaks its own hash and
    deleting one breaks the link from the row after it (or the head, for the last row).
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_target", "target_type", "target_id"),
        Index("ix_audit_events_action", "action"),
        Index("ix_audit_events_created_at", "created_at"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_type: Mapped[str] = mapped_column(String(16))  # user | source | system
    actor_id: Mapped[str | None] = mapped_column(String(64), index=True)
    actor_label: Mapped[str] = mapped_column(String(320), default="")
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    ip: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """One row: the last sequence number and hash. Appending locks it, so the chain never forks."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


class VerificationStatus:
    """Where a check of the chain is: waiting, walking the chain, or its result."""

    QUEUED = "queued"
    RUNNING = "running"
    INTACT = "intact"
    BROKEN = "broken"
    FAILED = "failed"  # shown when the job gave up; the row itself keeps its last state

    UNFINISHED = (QUEUED, RUNNING)


class AuditVerification(Base):
    """One check of the whole chain, run by the durable job ``audit.verify``.

    Who asked is kept here so that the ``audit.verified`` event written at the end names them.
    """

    __tablename__ = "audit_verifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str | None] = mapped_column(String(32), default=None)
    status: Mapped[str] = mapped_column(String(16), default=VerificationStatus.QUEUED)
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(64), default=None)
    actor_label: Mapped[str] = mapped_column(String(320), default="")
    ip: Mapped[str | None] = mapped_column(String(64), default=None)
    events_total: Mapped[int] = mapped_column(Integer, default=0)  # the head when it started
    events_checked: Mapped[int] = mapped_column(Integer, default=0)
    break_count: Mapped[int] = mapped_column(Integer, default=0)
    # The first breaks found, as {"seq": …, "reason": …}; the command line lists them all.
    breaks: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
