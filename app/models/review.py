"""Review records: decisions, reveals, each moderator's viewing preferences and daily exposure."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import Base
from app.models.item import Item
from app.models.types import UTCDateTime, utcnow
from app.models.user import User


class Outcome(StrEnum):
    """What a moderator decided about an item."""

    APPROVE = "approve"
    REMOVE = "remove"
    ESCALATE = "escalate"


class RevealMode(StrEnum):
    """How much of the original a reveal shows. Only ``full`` sends the original's bytes."""

    GREYSCALE = "greyscale"  # the original's detail without its colour
    PARTIAL = "partial"  # the original, less blurred than the preview (the user's blur strength)
    FULL = "full"  # the original as it was sent


class Decision(Base):
    """One decision about one item: what, why (policy category and note), by whom, and when.

    ``batch_id`` ties together decisions taken at once (a selection or a similar-image cluster) so
    they are undone together. ``actions_started_at`` is set when the follow-up actions begin;
    from then on the decision cannot be undone.
    """

    __tablename__ = "decisions"
    __table_args__ = (
        Index("ix_decisions_user_created", "user_id", "created_at"),
        Index("ix_decisions_item_created", "item_id", "created_at"),
        Index("ix_decisions_created", "created_at"),
        Index("ix_decisions_batch", "batch_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    outcome: Mapped[str] = mapped_column(String(16))
    category: Mapped[str | None] = mapped_column(String(32), default=None)
    dsa_category: Mapped[str | None] = mapped_column(String(64), default=None)
    note: Mapped[str | None] = mapped_column(Text, default=None)
    previous_status: Mapped[str] = mapped_column(String(20))
    batch_id: Mapped[str | None] = mapped_column(String(32), default=None)
    bank_id: Mapped[int | None] = mapped_column(Integer, default=None)  # "add to bank" target
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    undone_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    actions_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    item: Mapped[Item] = relationship()
    user: Mapped[User | None] = relationship(foreign_keys=[user_id])


class Reveal(Base):
    """A moderator looked at an item's original (in some mode). Also in the audit log."""

    __tablename__ = "reveals"
    __table_args__ = (
        Index("ix_reveals_user_created", "user_id", "created_at"),
        Index("ix_reveals_item", "item_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    mode: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    sensitive: Mapped[bool] = mapped_column(Boolean, default=False)  # matched a lead-only bank
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserPreference(Base):
    """How one moderator wants to look at images. A missing row means the defaults."""

    __tablename__ = "user_preferences"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    blur_strength: Mapped[int] = mapped_column(Integer, default=6)  # 1 (light) … 10 (heavy)
    greyscale: Mapped[bool] = mapped_column(Boolean, default=True)
    auto_reveal_unflagged: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ExposureDay(Base):
    """How many originals one moderator revealed on one (UTC) day: the break reminder's count."""

    __tablename__ = "exposure_days"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    reveals: Mapped[int] = mapped_column(Integer, default=0)
