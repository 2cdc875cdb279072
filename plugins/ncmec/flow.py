"""Sending a CyberTipline report: submit, upload, fileinfo, finish, each step stored; resumable.

Each step's result is committed the moment it arrives (the report id after submit, each file id
after its upload, each file's description), so a submission interrupted anywhere resumes at the
next missing step and a report is never opened twice for one draft: ``report_id`` set means
"open at NCMEC", and submit is skipped. Every answer, success or failure, is appended to the
report's response log; a failure leaves the report ``failed`` with the reason on its page, from
where a lead resumes or retracts it.
"""

from __future__ import annotations

import hashlib

from app.extensions import db
from app.models.item import Item
from app.models.report import AuthorityReport, ReportStatus
from app.models.types import utcnow
from app.services import audit, storage
from app.services.audit import Actor
from app.services.reports import EVIDENCE_HOLD_DAYS, ReportError, hold_evidence, items_of
from app.services.storage import original_store
from plugins.ncmec import client_from_settings, ncmec_settings
from plugins.ncmec.client import CyberTipline, NcmecError
from plugins.ncmec.xml import InvalidReport, build_file_details, build_report, validate


def submit(report: AuthorityReport, actor: Actor) -> AuthorityReport:
    """Send (or finish sending) the report; raises ReportError with the reason shown to the lead."""
    if report.kind != "ncmec":
        raise ReportError("Only CyberTipline reports are sent this way.")
    if report.status == ReportStatus.SUBMITTED:
        return report  # already filed: never twice
    if report.status == ReportStatus.RETRACTED:
        raise ReportError("This report was retracted. Prepare a new one from the item.")
    client = client_from_settings(ncmec_settings())
    document = build_report(report.form)
    try:
        validate(document)
    except InvalidReport as error:
        _fail(
            report,
            "validate",
            f"The report does not match NCMEC's schema, nothing was sent: {error}",
        )
    items = items_of(report)
    if not report.report_id:
        report.status, report.error = ReportStatus.SUBMITTING, None
        db.session.commit()
        answer = _call(report, "submit", lambda: client.submit(document))
        report.report_id = answer.report_id
        audit.record(
            "report.opened",
            actor,
            target_type="report",
            target_id=report.id,
            details={"ncmec_report_id": report.report_id},
        )
        db.session.commit()  # from here on a retry resumes instead of opening a second report
    report.status, report.error = ReportStatus.SUBMITTING, None
    for item in items:
        _send_file(report, client, item)
    answer = _call(report, "finish", lambda: client.finish(str(report.report_id)), done_code=5102)
    _filed(report, actor)
    return report


def _send_file(report: AuthorityReport, client: CyberTipline, item: Item) -> None:
    entry = dict((report.file_ids or {}).get(item.id) or {})
    if not entry.get("file_id"):
        data = _original(item)
        name = (report.form.get("files", {}).get(item.id) or {}).get("original_name") or item.id
        answer = _call(
            report,
            "upload",
            lambda: client.upload(str(report.report_id), name, data, item.mime or ""),
        )
        if answer.hash and answer.hash.lower() != hashlib.md5(data).hexdigest():
            _fail(
                report,
                "upload",
                f"NCMEC received file {name} damaged (MD5 differs); resume to send it again.",
            )
        entry = {"file_id": answer.file_id, "hash": answer.hash, "described": False}
        report.file_ids = {**(report.file_ids or {}), item.id: entry}
        db.session.commit()
    if not entry.get("described"):
        file = (report.form.get("files") or {}).get(item.id) or {}
        details = build_file_details(str(report.report_id), entry["file_id"], file)
        try:
            validate(details)
        except InvalidReport as error:
            _fail(report, "fileinfo", f"The file details do not match NCMEC's schema: {error}")
        _call(report, "fileinfo", lambda: client.fileinfo(details))
        report.file_ids = {**report.file_ids, item.id: {**entry, "described": True}}
        db.session.commit()


def _original(item: Item) -> bytes:
    from plugins.quarantine.store import open_quarantined

    try:
        return original_store().get(item.sha256 or "")
    except (storage.MissingMedia, ValueError):
        try:
            return open_quarantined(item.sha256 or "")
        except (storage.MissingMedia, ValueError):
            raise ReportError(
                f"The original of item {item.id} is gone; it cannot be uploaded."
            ) from None


def _call(report: AuthorityReport, step: str, call, done_code: int | None = None):  # type: ignore[no-untyped-def]
    """Make one call, log its answer, and fail the report (raising ReportError) unless it worked."""
    try:
        answer = call()
    except NcmecError as error:
        if done_code is not None and error.answer is not None and error.answer.code == done_code:
            report.log(step, **error.answer.record())
            return error.answer  # finished already (a crash after finish, before our commit)
        report.log(step, **(error.answer.record() if error.answer else {}), error=str(error))
        _fail(report, step, str(error), logged=True)
    report.log(step, **answer.record())
    return answer


def _fail(report: AuthorityReport, step: str, message: str, logged: bool = False) -> None:
    """Mark the report failed with ``message`` (kept and shown), commit, raise ReportError."""
    report.status, report.error = ReportStatus.FAILED, message
    if not logged:
        report.log(step, error=message)
    db.session.commit()
    raise ReportError(message)


def _filed(report: AuthorityReport, actor: Actor) -> None:
    report.status, report.error, report.submitted_at = ReportStatus.SUBMITTED, None, utcnow()
    until = hold_evidence(
        report.item_ids, EVIDENCE_HOLD_DAYS, f"CyberTipline report {report.report_id}"
    )
    report.evidence_hold_until = until
    for item_id in report.item_ids:
        audit.record(
            "report.submitted",
            actor,
            target_type="item",
            target_id=item_id,
            details={"report": report.id, "ncmec_report_id": report.report_id},
        )
    db.session.commit()


def retract(report: AuthorityReport, actor: Actor) -> AuthorityReport:
    """Cancel a report opened at NCMEC but not finished; raises ReportError if it cannot be."""
    if report.status == ReportStatus.SUBMITTED:
        raise ReportError("A finished report cannot be retracted (NCMEC makes it immutable).")
    if report.status == ReportStatus.RETRACTED:
        return report
    if report.report_id:
        client = client_from_settings(ncmec_settings())
        _call(report, "retract", lambda: client.retract(str(report.report_id)), done_code=5101)
    report.status, report.retracted_at, report.error = ReportStatus.RETRACTED, utcnow(), None
    audit.record(
        "report.retracted",
        actor,
        target_type="report",
        target_id=report.id,
        details={"ncmec_report_id": report.report_id},
    )
    db.session.commit()
    return report
