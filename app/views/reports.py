"""The ``reports`` blueprint (``/reports``): CyberTipline reports and DSA statements, for leads.

A lead prepares a CyberTipline report from an item (optionally with the uploader's other removed
items), completes the explained form, submits it, and sees NCMEC's report id or the reason it
failed; an interrupted submission is resumed or retracted from the same page. Statements of
reasons are listed with their status and filed (singly or all pending at once) from here too.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, render_template, request, url_for
from sqlalchemy import select

from app import htmx
from app.extensions import db
from app.models.item import Item
from app.models.report import AuthorityReport, ReportStatus
from app.models.user import Role
from app.security import role_required
from app.services import reports
from app.services.reports import STATUS_WORDS, ReportError
from app.views import request_actor

bp = Blueprint("reports", __name__, url_prefix="/reports")


def _report_or_404(report_id: int) -> AuthorityReport:
    report = reports.get_report(report_id)
    if report is None:
        abort(404)
    return report


@bp.get("/")
@role_required(Role.LEAD)
def index() -> Any:
    """Every report and statement, newest first, with its status."""
    kind = request.args.get("kind") or None
    return render_template(
        "reports/index.html", reports=reports.list_reports(kind), kind=kind, words=STATUS_WORDS
    )


@bp.get("/items/<item_id>")
@role_required(Role.LEAD)
def for_item(item_id: str) -> Any:
    """The item page's reports card (a fragment for htmx)."""
    item = db.session.get(Item, item_id) or abort(404)
    from plugins.dsa.statement import is_eu_source

    context = {
        "item": item,
        "reports": reports.reports_for_item(item_id),
        "words": STATUS_WORDS,
        "others": len(reports.uploader_removed_items(item)),
        "eu": is_eu_source(item),
    }
    return htmx.render_page_or_fragment("reports/item.html", "reports/_item.html", **context)


@bp.post("/ncmec/<item_id>")
@role_required(Role.LEAD)
def prepare_ncmec(item_id: str) -> Any:
    """Prepare a CyberTipline draft from the item and open its form."""
    from flask_login import current_user

    try:
        report = reports.prepare_ncmec(
            item_id,
            request_actor(),
            user_id=current_user.id,
            include_uploader_items=bool(request.form.get("include_uploader")),
        )
    except ReportError as error:
        abort(404, str(error))
    db.session.commit()
    return htmx.redirect(url_for("reports.report", report_id=report.id))


@bp.route("/<int:report_id>", methods=["GET", "POST"])
@role_required(Role.LEAD)
def report(report_id: int) -> Any:
    """The report: its form (while a draft), status, ids and every answer the authority gave."""
    report = _report_or_404(report_id)
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            errors = reports.save_form(report, request.form.to_dict(), request_actor())
        except ReportError as error:
            flash(str(error), "error")
        if not errors and request.form.get("then") == "submit":
            return _submit(report)
        if not errors:
            flash("Saved.", "success")
    return _page(report, errors, 422 if errors else 200)


@bp.post("/<int:report_id>/submit")
@role_required(Role.LEAD)
def submit(report_id: int) -> Any:
    """Submit (or resume submitting) the report."""
    return _submit(_report_or_404(report_id))


@bp.post("/<int:report_id>/retract")
@role_required(Role.LEAD)
def retract(report_id: int) -> Any:
    """Retract a report opened at NCMEC but not finished."""
    from plugins.ncmec import flow

    report = _report_or_404(report_id)
    try:
        flow.retract(report, request_actor())
        flash("Retracted: NCMEC has cancelled this report.", "success")
    except ReportError as error:
        flash(str(error), "error")
    return htmx.redirect(url_for("reports.report", report_id=report.id))


@bp.post("/dsa/<item_id>")
@role_required(Role.LEAD)
def file_dsa(item_id: str) -> Any:
    """Prepare and file the item's statement of reasons."""
    from plugins.dsa import filing

    item = db.session.get(Item, item_id) or abort(404)
    try:
        statement = filing.prepare(item, request_actor())
        db.session.commit()
        filing.file([statement], request_actor())
    except ReportError as error:
        flash(str(error), "error")
        return htmx.redirect(url_for("reports.index", kind="dsa"))
    return htmx.redirect(url_for("reports.report", report_id=statement.id))


@bp.post("/dsa/pending")
@role_required(Role.LEAD)
def file_pending_dsa() -> Any:
    """File every statement not yet stored, in batches of up to 100."""
    from plugins.dsa import filing

    pending = list(
        db.session.scalars(
            select(AuthorityReport).where(
                AuthorityReport.kind == "dsa", AuthorityReport.status != ReportStatus.SUBMITTED
            )
        )
    )
    try:
        filing.file(pending, request_actor())
    except ReportError as error:
        flash(str(error), "error")
    else:
        failed = sum(1 for r in pending if r.status == ReportStatus.FAILED)
        flash(
            f"{len(pending) - failed} filed, {failed} refused (see each one's errors).",
            "warning" if failed else "success",
        )
    return htmx.redirect(url_for("reports.index", kind="dsa"))


def _submit(report: AuthorityReport) -> Any:
    from plugins.ncmec import flow

    try:
        flow.submit(report, request_actor())
        flash(f"Submitted to NCMEC: report {report.report_id}.", "success")
    except ReportError as error:
        flash(f"Not submitted: {error}", "error")
    return htmx.redirect(url_for("reports.report", report_id=report.id))


def _page(report: AuthorityReport, errors: dict[str, str], status: int = 200) -> Any:
    from plugins.ncmec import fields

    html = render_template(
        "reports/report.html",
        report=report,
        errors=errors,
        fields=fields,
        items=reports.items_of(report),
        words=STATUS_WORDS,
    )
    return html, status
