"""Authority reports: NCMEC CyberTipline reports and EU DSA statements of reasons.

One row is one report as we hold it, from the draft a lead completes to the authority's receipt.
Every step of a submission is stored the moment it succeeds (``report_id`` after ``/submit``,
each file id after ``/upload``), so a submission interrupted half-way resumes where it stopped
and is never opened twice; every answer the authority gave is kept in ``responses``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Base
from app.models.types import JSONType, UTCDateTime, utcnow


class ReportStatus:
    """Where a report is. ``submitting``: opened at the authority but not finished yet."""

    DRAFT = "draft"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    FAILED = "failed"
    RETRACTED = "retracted"

    EDITABLE = (DRAFT, FAILED)


class AuthorityReport(Base):
    """One report to an authority about one or more items (all from the same uploader)."""

    __tablename__ = "authority_reports"
    __table_args__ = (
        Index("ix_authority_reports_kind_status", "kind", "status", "created_at"),
        Index("ix_authority_reports_puid", "puid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "ncmec" or "dsa"
    status: Mapped[str] = mapped_column(String(16), default=ReportStatus.DRAFT)
    item_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id"), default=None)
    form: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # NCMEC's report id, or the DSA database's statement uuid
    report_id: Mapped[str | None] = mapped_column(String(64), default=None)
    puid: Mapped[str | None] = mapped_column(String(500), default=None)  # DSA: our stable id
    # item id → {"file_id", "hash", "described"}: what NCMEC holds of each file so far
    file_ids: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    responses: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    created_by: Mapped[str] = mapped_column(String(255), default="system")  # actor label
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    retracted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    evidence_hold_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    @property
    def editable(self) -> bool:
        """True while a lead may still change the form (nothing is open at the authority)."""
        return self.status in ReportStatus.EDITABLE and not self.report_id

    def log(self, step: str, **answer: Any) -> None:
        """Append one answer of the authority to the response log (a new list, so it is saved)."""
        self.responses = [
            *(self.responses or []),
            {"step": step, "at": utcnow().isoformat(), **answer},
        ]
