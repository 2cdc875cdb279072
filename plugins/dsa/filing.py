"""Filing statements of reasons: one per removal, singly or in batches, recorded as reports.

A statement is an ``AuthorityReport`` of kind ``dsa`` whose ``puid`` is ``modtools-<item id>``.
A 201 stores the database's uuid as ``report_id``; a 422 keeps the field errors on the report
(``error`` and the response log) for the lead page to show; a duplicate PUID means it was filed
already (by an earlier attempt whose answer was lost), so the existing statement is recorded and
the report counts as submitted. A batch is all or nothing: its errors are keyed ``statement_N``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models.item import Item
from app.models.report import AuthorityReport, ReportStatus
from app.models.review import Decision
from app.models.types import utcnow
from app.services import audit
from app.services.audit import Actor
from app.services.reports import ReportError
from plugins.dsa import client_from_settings, dsa_settings
from plugins.dsa.client import DsaAnswer
from plugins.dsa.statement import build_statement, is_eu_source, puid

BATCH_SIZE = 100


def removal_of(item: Item) -> Decision | None:
    """The item's latest removal that was not undone."""
    return db.session.scalar(
        select(Decision)
        .where(
            Decision.item_id == item.id, Decision.outcome == "remove", Decision.undone_at.is_(None)
        )
        .order_by(Decision.id.desc())
    )


def prepare(item: Item, actor: Actor, decision: Decision | None = None) -> AuthorityReport:
    """The item's statement (one per PUID: an existing one is returned); the caller commits."""
    if not is_eu_source(item):
        raise ReportError(
            f"Source {item.source.name} is not marked as in the EU (setting dsa_enabled)."
        )
    decision = decision or removal_of(item)
    if decision is None:
        raise ReportError("A statement of reasons needs a removal decision; this item has none.")
    existing = db.session.scalar(
        select(AuthorityReport).where(
            AuthorityReport.kind == "dsa", AuthorityReport.puid == puid(item)
        )
    )
    if existing is not None:
        return existing
    report = AuthorityReport(
        kind="dsa",
        item_ids=[item.id],
        decision_id=decision.id,
        puid=puid(item),
        form=build_statement(item, decision, dsa_settings()),
        created_by=actor.label,
    )
    db.session.add(report)
    db.session.flush()
    return report


def file(reports: list[AuthorityReport], actor: Actor) -> list[AuthorityReport]:
    """File the reports not yet submitted (one call, or batches of 100); commits. Returns them."""
    pending = [r for r in reports if r.status != ReportStatus.SUBMITTED]
    if not pending:
        return reports
    client = client_from_settings(dsa_settings())
    for start in range(0, len(pending), BATCH_SIZE):
        chunk = pending[start : start + BATCH_SIZE]
        if len(chunk) == 1:
            _single(chunk[0], client.file(chunk[0].form), actor)
        else:
            _batch(chunk, client.file_batch([r.form for r in chunk]), actor)
        db.session.commit()
    return reports


def _single(report: AuthorityReport, answer: DsaAnswer, actor: Actor) -> None:
    report.log("statement", http=answer.status, message=answer.message, errors=answer.errors)
    if answer.created:
        _stored(report, answer.body or {}, actor)
    elif answer.existing is not None:
        _stored(report, answer.existing, actor, duplicate=True)
    else:
        report.status, report.error = ReportStatus.FAILED, _words(answer.message, answer.errors)


def _batch(reports: list[AuthorityReport], answer: DsaAnswer, actor: Actor) -> None:
    if answer.created:
        stored = {s.get("puid"): s for s in (answer.body or {}).get("statements", [])}
        for report in reports:
            report.log("statements", http=answer.status)
            _stored(report, stored.get(report.puid) or {}, actor)
        return
    for position, report in enumerate(reports):
        errors = answer.errors.get(f"statement_{position}") or {}
        report.log("statements", http=answer.status, message=answer.message, errors=errors)
        report.status = ReportStatus.FAILED
        report.error = (
            _words("", errors)
            if errors
            else (
                "Not stored: another statement in the same batch was refused. " + answer.message
            ).strip()
        )


def _stored(
    report: AuthorityReport, body: dict[str, Any], actor: Actor, duplicate: bool = False
) -> None:
    report.status, report.error, report.submitted_at = ReportStatus.SUBMITTED, None, utcnow()
    report.report_id = str(body.get("uuid") or "")[:64] or None
    if duplicate:
        report.log(
            "statement",
            note="already filed under this PUID; recorded the existing statement",
            uuid=report.report_id,
            permalink=body.get("permalink"),
        )
    audit.record(
        "report.submitted",
        actor,
        target_type="item",
        target_id=report.item_ids[0],
        details={"report": report.id, "kind": "dsa", "uuid": report.report_id},
    )


def _words(message: str, errors: dict[str, Any]) -> str:
    lines = [f"{field}: {' '.join(map(str, problems))}" for field, problems in errors.items()]
    return "; ".join(lines) or message or "The DSA database did not store the statement."
