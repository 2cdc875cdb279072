"""Hash exchanges: programmes such as NCMEC hash sharing or StopNCII that fill a bank by fetching.

``Exchange`` is one configured connection: which kind of exchange, which bank it fills, its
encrypted credentials, its settings, its schedule and where the last fetch stopped (the
threatexchange library's checkpoint, serialised). ``ExchangeRun`` is the history of fetches.

``ExchangeSignal`` remembers which hashes each upstream record gave us, keyed the way the library
keys its updates (an NCMEC entry id, or "pdq:<hash>" for simpler exchanges). An upstream record
may be updated or deleted later without repeating its hashes, so this is how a deletion finds
the hashes to take out of the bank, and how a hash two records share stays until both are gone.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Base
from app.models.types import JSONType, UTCDateTime, utcnow


class RunStatus(StrEnum):
    """How a fetch ended (or that it has not yet)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"  # stopped at its time budget; the next run carries on from the checkpoint
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # the process died mid-run; its committed pages are kept


class Exchange(Base):
    """One hash exchange connection that fills one bank."""

    __tablename__ = "exchanges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(32))  # a key of app.services.exchange_kinds.KINDS
    bank_id: Mapped[int] = mapped_column(ForeignKey("banks.id"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)  # fetched on schedule
    # Fernet token of a JSON object; the names of the values set are kept apart in clear so
    # pages can say "set" without decrypting anything.
    credentials: Mapped[str | None] = mapped_column(Text, default=None)
    credentials_set: Mapped[list[str]] = mapped_column(JSONType, default=list)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    schedule_minutes: Mapped[int] = mapped_column(Integer, default=60)
    checkpoint: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    # A full fetch (first, or after the checkpoint went stale) stamps every record it sees with
    # a new generation; when it completes, records of older generations are gone upstream.
    generation: Mapped[int] = mapped_column(Integer, default=0)
    sweep_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    # The last run stopped at its time budget with more to fetch: the scheduler carries on at once.
    more_to_fetch: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set while a fetch is queued or running, so the scheduler, "Fetch now" and the command
    # line never run two fetches of one exchange at once.
    fetch_claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    added_count: Mapped[int] = mapped_column(Integer, default=0)  # by the last run
    removed_count: Mapped[int] = mapped_column(Integer, default=0)  # by the last run
    skipped_count: Mapped[int] = mapped_column(Integer, default=0)  # by the last run
    total_count: Mapped[int] = mapped_column(Integer, default=0)  # hashes it holds now
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"<Exchange {self.name} ({self.kind})>"


class ExchangeRun(Base):
    """One fetch of one exchange: when, why, how it ended and what it changed."""

    __tablename__ = "exchange_runs"
    __table_args__ = (Index("ix_exchange_runs_exchange_id_id", "exchange_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    exchange_id: Mapped[int] = mapped_column(ForeignKey("exchanges.id", ondelete="CASCADE"))
    trigger: Mapped[str] = mapped_column(String(16))  # schedule, manual, cli
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.RUNNING.value)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    records: Mapped[int] = mapped_column(Integer, default=0)
    added: Mapped[int] = mapped_column(Integer, default=0)
    removed: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)


class ExchangeSignal(Base):
    """One image hash that one upstream record of an exchange gave us."""

    __tablename__ = "exchange_signals"
    __table_args__ = (
        UniqueConstraint(
            "exchange_id", "record_key", "signal_type", "signal", name="uq_exchange_signals"
        ),
        Index("ix_exchange_signals_signal", "signal_type", "signal"),
        Index("ix_exchange_signals_generation", "exchange_id", "generation"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    exchange_id: Mapped[int] = mapped_column(ForeignKey("exchanges.id", ondelete="CASCADE"))
    record_key: Mapped[str] = mapped_column(String(255))
    signal_type: Mapped[str] = mapped_column(String(16))
    signal: Mapped[str] = mapped_column(String(64))
    generation: Mapped[int] = mapped_column(Integer, default=0)
