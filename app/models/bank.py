"""Hash banks: labelled lists of SHA-256, MD5 and PDQ hashes, and the change log that keeps every
process's in-memory PDQ index current.

``BankChange`` is append-only. Every write to a bank or its entries appends rows in the same
transaction; each process remembers the highest change id it has applied and, before a lookup,
applies only the newer ones (``app/services/bank_matching.py``). Ids must therefore only grow and
never be reused: SQLite's AUTOINCREMENT guarantees that; on PostgreSQL writers take an advisory
lock so ids also become visible in order. Rows older than a day are pruned daily, oldest first
and never the newest; a process that was behind them rebuilds its index instead.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Base
from app.models.types import JSONType, UTCDateTime, utcnow


class SignalType(StrEnum):
    """The kinds of hash a bank holds, named as threatexchange names them where it has a name."""

    SHA256 = "sha256"
    MD5 = "md5"
    PDQ = "pdq"

    @property
    def hex_length(self) -> int:
        """Characters of lowercase hex in a valid signal."""
        return HEX_LENGTH[self]


HEX_LENGTH = {SignalType.SHA256: 64, SignalType.MD5: 32, SignalType.PDQ: 64}
DEFAULT_PDQ_THRESHOLD = 31


class ChangeOp(StrEnum):
    """What a change-log row records."""

    ADD = "add"
    REMOVE = "remove"
    BANK_UPDATE = "bank_update"  # created, renamed, enabled, disabled, threshold or labels changed


class Bank(Base):
    """A labelled list of hashes. A match to an entry implies the bank's labels."""

    __tablename__ = "banks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    labels: Mapped[list[str]] = mapped_column(JSONType, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Entries of a negative bank are known false positives: matching one suppresses every match.
    negative: Mapped[bool] = mapped_column(Boolean, default=False)
    pdq_threshold: Mapped[int] = mapped_column(Integer, default=DEFAULT_PDQ_THRESHOLD)
    # Kept by app.services.banks in the same transaction as the entries, so the bank list never
    # has to count a million rows.
    sha256_count: Mapped[int] = mapped_column(Integer, default=0)
    md5_count: Mapped[int] = mapped_column(Integer, default=0)
    pdq_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def entry_count(self) -> int:
        """Entries of every type."""
        return self.sha256_count + self.md5_count + self.pdq_count

    def count_of(self, signal_type: str) -> int:
        """Entries of one type."""
        return int(getattr(self, f"{SignalType(signal_type).value}_count"))

    def __repr__(self) -> str:
        return f"<Bank {self.name}>"


class BankEntry(Base):
    """One hash in one bank. Removing an entry deletes the row (and logs a change)."""

    __tablename__ = "bank_entries"
    __table_args__ = (
        UniqueConstraint("bank_id", "signal_type", "signal", name="uq_bank_entries_signal"),
        Index("ix_bank_entries_lookup", "signal_type", "signal"),  # exact SHA-256/MD5 matching
        Index("ix_bank_entries_bank_id_id", "bank_id", "id"),  # the bank page, newest first
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("banks.id", ondelete="CASCADE"))
    signal_type: Mapped[str] = mapped_column(String(16))
    signal: Mapped[str] = mapped_column(String(64))  # lowercase hex
    note: Mapped[str | None] = mapped_column(String(500), default=None)
    source_ref: Mapped[str | None] = mapped_column(String(500), default=None)  # file:line, HMA id
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(320), default=None)  # actor label

    def __repr__(self) -> str:
        return f"<BankEntry {self.id} {self.signal_type}>"


class BankChange(Base):
    """One append-only change-log row; ``id`` orders all changes across all banks."""

    __tablename__ = "bank_changes"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bank_id: Mapped[int] = mapped_column(Integer)  # no foreign key: the log outlives rows
    entry_id: Mapped[int | None] = mapped_column(Integer, default=None)
    signal_type: Mapped[str | None] = mapped_column(String(16), default=None)
    signal: Mapped[str | None] = mapped_column(String(64), default=None)
    op: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
