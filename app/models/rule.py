"""Rules: admins' ordered conditions on scan results that decide where a scanned item goes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Base
from app.models.types import JSONType, UTCDateTime, utcnow


class RuleOutcome:
    """What a matching rule does with the item."""

    CLEAR = "clear"
    QUEUE = "queue"
    ESCALATE = "escalate"
    REMOVE = "remove"

    ALL = (CLEAR, QUEUE, ESCALATE, REMOVE)


class Rule(Base):
    """One rule: conditions (all or any must hold), an outcome, and actions to run.

    ``conditions`` is a list like ``[{"type": "score", "name": "nudity", "op": ">=",
    "value": 0.8}]``; app.services.rules lists the types and checks them.
    """

    __tablename__ = "rules"
    __table_args__ = (Index("ix_rules_position", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    position: Mapped[int] = mapped_column(Integer, default=0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    match: Mapped[str] = mapped_column(String(8), default="all")  # all | any
    conditions: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    outcome: Mapped[str] = mapped_column(String(16), default=RuleOutcome.QUEUE)
    priority: Mapped[int] = mapped_column(Integer, default=50)
    category: Mapped[str | None] = mapped_column(String(32), default=None)  # for remove
    actions: Mapped[list[str]] = mapped_column(JSONType, default=list)
    note: Mapped[str | None] = mapped_column(Text, default=None)
    hit_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class RuleHit(Base):
    """A rule decided an item's route (one row per scan round it decided)."""

    __tablename__ = "rule_hits"
    __table_args__ = (Index("ix_rule_hits_item", "item_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("rules.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    scan_round: Mapped[int] = mapped_column(Integer, default=1)
    outcome: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
