"""Authority reports: prepare a CyberTipline draft from items, edit it, list reports, hold evidence.

A report is prepared from one item, optionally with the same uploader's other removed items (NCMEC
prefers one report per offender), prefilled from what we know and completed by a lead. Sending
is ``plugins.ncmec.flow``; DSA statements are ``plugins.dsa.filing``.

Evidence: a report holds its items' media through the quarantine plugin's ``ItemHold`` rows
(a later date always wins). A draft holds them for ``PENDING_HOLD_DAYS`` so a report being
written cannot lose its evidence; a filed CyberTipline report holds them for one year (REPORT
Act, Public Law 118-59). Retention and quarantine ask ``is_under_evidence_hold(item)``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models.item import Item
from app.models.report import AuthorityReport, ReportStatus
from app.models.types import utcnow
from app.services import audit
from app.services.audit import Actor
from plugins.quarantine.store import held, hold

EVIDENCE_HOLD_DAYS = 365  # REPORT Act: a filed report is a request to preserve for one year
PENDING_HOLD_DAYS = 30


class ReportError(Exception):
    """A report that cannot be prepared, saved or sent; the message says what to do."""


def is_under_evidence_hold(item: Item) -> bool:
    """Whether the item's media and records must be kept now (retention must skip it)."""
    return held(item.id)


def hold_evidence(item_ids: list[str], days: int, reason: str) -> Any:
    """Hold the items' evidence for ``days`` from now; returns the end of the hold."""
    until = utcnow() + timedelta(days=days)
    for item_id in item_ids:
        hold(item_id, until, reason)
    return until


def uploader_removed_items(item: Item, limit: int = 100) -> list[Item]:
    """The same uploader's other removed items on the same source, newest first."""
    if not item.uploader_id:
        return []
    query = (
        select(Item)
        .where(
            Item.source_id == item.source_id,
            Item.uploader_id == item.uploader_id,
            Item.status == "removed",
            Item.id != item.id,
        )
        .order_by(Item.created_at.desc())
        .limit(limit)
    )
    return list(db.session.scalars(query))


def items_of(report: AuthorityReport) -> list[Item]:
    """The report's items, in the report's order (missing ones left out)."""
    found = {i.id: i for i in db.session.scalars(select(Item).where(Item.id.in_(report.item_ids)))}
    return [found[item_id] for item_id in report.item_ids if item_id in found]


def open_draft(kind: str, item_id: str) -> AuthorityReport | None:
    """A draft (or failed, unsent) report of ``kind`` that already holds the item."""
    for report in reports_for_item(item_id):
        if report.kind == kind and report.editable:
            return report
    return None


def prepare_ncmec(
    item_id: str,
    actor: Actor,
    *,
    include_uploader_items: bool = False,
    user_id: int | None = None,
    decision_id: int | None = None,
) -> AuthorityReport:
    """A CyberTipline draft for the item (an open draft of it is reused); the caller commits."""
    from plugins.ncmec import fields, ncmec_settings

    item = db.session.get(Item, item_id)
    if item is None:
        raise ReportError("No such item.")
    existing = open_draft("ncmec", item_id)
    if existing is not None:
        return existing
    items = [item, *(uploader_removed_items(item) if include_uploader_items else [])]
    report = AuthorityReport(
        kind="ncmec",
        item_ids=[i.id for i in items],
        form=fields.prefill(items, ncmec_settings()),
        created_by_id=user_id,
        created_by=actor.label,
        decision_id=decision_id,
    )
    db.session.add(report)
    db.session.flush()
    hold_evidence(report.item_ids, PENDING_HOLD_DAYS, f"CyberTipline report {report.id} pending")
    for held_id in report.item_ids:
        audit.record(
            "report.prepared",
            actor,
            target_type="item",
            target_id=held_id,
            details={"report": report.id, "kind": "ncmec"},
        )
    return report


def save_form(report: AuthorityReport, submitted: dict[str, str], actor: Actor) -> dict[str, str]:
    """Store a lead's edit of the form; returns the errors (empty when complete). Commits."""
    from plugins.ncmec import fields

    if not report.editable:
        raise ReportError("This report is already open at NCMEC; its form can no longer change.")
    report.form, errors = fields.parse(submitted, report.form)
    audit.record("report.edited", actor, target_type="report", target_id=report.id)
    db.session.commit()
    return errors


def reports_for_item(item_id: str) -> list[AuthorityReport]:
    """Every report that names the item, newest first."""
    rows = db.session.scalars(select(AuthorityReport).order_by(AuthorityReport.id.desc()))
    return [report for report in rows if item_id in (report.item_ids or [])]


def list_reports(
    kind: str | None = None, status: str | None = None, limit: int = 200
) -> list[AuthorityReport]:
    """Reports, newest first, optionally of one kind and status."""
    query = select(AuthorityReport).order_by(AuthorityReport.id.desc()).limit(limit)
    if kind:
        query = query.where(AuthorityReport.kind == kind)
    if status:
        query = query.where(AuthorityReport.status == status)
    return list(db.session.scalars(query))


def get_report(report_id: int) -> AuthorityReport | None:
    """One report by our id."""
    return db.session.get(AuthorityReport, report_id)


STATUS_WORDS = {
    ReportStatus.DRAFT: ("draft", "muted"),
    ReportStatus.SUBMITTING: ("open at the authority, not finished", "warn"),
    ReportStatus.SUBMITTED: ("submitted", "ok"),
    ReportStatus.FAILED: ("failed", "danger"),
    ReportStatus.RETRACTED: ("retracted", "muted"),
}
