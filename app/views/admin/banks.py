"""Admin pages for hash banks: list, create, edit, switch on and off, entries, import, export.

Every form works without JavaScript. With htmx, searching and paging swap just the entries
table, and removing an entry swaps out just its row.
"""

from __future__ import annotations

from typing import Any

from flask import Response, abort, flash, render_template, request, stream_with_context, url_for

from app.extensions import db
from app.htmx import is_htmx, redirect, render_page_or_fragment
from app.models.bank import Bank, SignalType
from app.models.types import utcnow
from app.models.user import Role
from app.security import role_required
from app.services import bank_export, bank_io, banks
from app.services.banks import BankError
from app.views import request_actor
from app.views.admin import bp

FORMAT_CHOICES = [
    ("csv", "CSV: signal_type,signal,note"),
    ("te", "threatexchange: “pdq <hash>” per line"),
    ("hma", "HMA bank content (JSON lines)"),
]
TYPE_CHOICES = [kind.value for kind in SignalType]
FORMATS = {fmt.value for fmt in bank_io.Format}


def _bank_or_404(bank_id: int) -> Bank:
    bank = db.session.get(Bank, bank_id)
    if bank is None:
        abort(404)
    return bank


def _settings_form(bank: Bank | None = None) -> dict[str, Any]:
    if request.method == "POST":
        return {
            "name": request.form.get("name", ""),
            "labels": request.form.get("labels", ""),
            "description": request.form.get("description", ""),
            "pdq_threshold": request.form.get("pdq_threshold", "31"),
            "negative": request.form.get("negative") == "on",
        }
    return {
        "name": bank.name if bank else "",
        "labels": ", ".join(bank.labels) if bank else "",
        "description": bank.description if bank else "",
        "pdq_threshold": str(bank.pdq_threshold) if bank else "31",
        "negative": bank.negative if bank else False,
    }


def _save(form: dict[str, Any], bank: Bank | None) -> tuple[Bank | None, dict[str, str]]:
    """Create or update from the form: the bank, or the errors of every field that refused."""
    errors: dict[str, str] = {}
    settings = {"labels": [form["labels"]], "pdq_threshold": form["pdq_threshold"]}
    for field, check in (
        ("name", lambda: banks.check_name(form["name"], exclude_id=bank.id if bank else None)),
        ("labels", lambda: banks.normalize_labels(settings["labels"])),
        ("pdq_threshold", lambda: banks.check_threshold(form["pdq_threshold"])),
    ):
        try:
            check()
        except BankError as error:
            errors[field] = error.message
    if errors:
        return None, errors
    values = {
        **settings,
        "name": form["name"],
        "description": form["description"],
        "negative": form["negative"],
    }
    if bank is None:
        bank = banks.create_bank(values.pop("name"), request_actor(), **values)
    else:
        banks.update_bank(bank, request_actor(), **values)
    db.session.commit()
    return bank, {}


@bp.get("/banks", endpoint="banks")
@role_required(Role.ADMIN)
def bank_list() -> str:
    """Every bank with its labels, state, threshold and entries by type."""
    return render_template("admin/banks.html", banks=banks.list_banks())


@bp.route("/banks/new", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def new_bank() -> Any:
    """The new-bank form."""
    form = _settings_form()
    errors: dict[str, str] = {}
    if request.method == "POST":
        bank, errors = _save(form, None)
        if bank is not None:
            flash(f"Bank “{bank.name}” created. Add hashes one by one or import a file.", "success")
            return redirect(url_for("admin.bank_detail", bank_id=bank.id))
    page = render_template(
        "admin/banks_form.html",
        form=form,
        errors=errors,
        bank=None,
        suggested=banks.SUGGESTED_LABELS,
    )
    return page, 422 if errors else 200


@bp.route("/banks/<int:bank_id>/edit", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def edit_bank(bank_id: int) -> Any:
    """Change a bank's name, labels, description, threshold or negative flag."""
    bank = _bank_or_404(bank_id)
    form = _settings_form(bank)
    errors: dict[str, str] = {}
    if request.method == "POST":
        saved, errors = _save(form, bank)
        if saved is not None:
            flash("Bank saved. Every process matches with the new settings from now on.", "success")
            return redirect(url_for("admin.bank_detail", bank_id=bank.id))
    page = render_template(
        "admin/banks_form.html",
        form=form,
        errors=errors,
        bank=bank,
        suggested=banks.SUGGESTED_LABELS,
    )
    return page, 422 if errors else 200


@bp.post("/banks/<int:bank_id>/enabled")
@role_required(Role.ADMIN)
def bank_enabled(bank_id: int) -> Response:
    """Switch matching against a bank on (``enabled=1``) or off (``enabled=0``)."""
    bank = _bank_or_404(bank_id)
    enabled = request.form.get("enabled") == "1"
    banks.update_bank(bank, request_actor(), enabled=enabled)
    db.session.commit()
    flash(
        "Bank enabled: its hashes match again."
        if enabled
        else "Bank disabled: its hashes match nothing until you enable it.",
        "success",
    )
    return redirect(url_for("admin.bank_detail", bank_id=bank.id))


@bp.get("/banks/<int:bank_id>")
@role_required(Role.ADMIN)
def bank_detail(bank_id: int) -> Response:
    """A bank's settings and its entries, searchable by hash prefix or note, 50 a page."""
    bank = _bank_or_404(bank_id)
    search = (request.args.get("q") or "").strip()[:200]
    before = request.args.get("before", type=int)
    listing = banks.list_entries(bank, search=search, before=before)
    older_url = (
        url_for("admin.bank_detail", bank_id=bank.id, q=search or None, before=listing.older_than)
        if listing.older_than
        else None
    )
    newest_url = url_for("admin.bank_detail", bank_id=bank.id, q=search or None)
    return render_page_or_fragment(
        "admin/banks_detail.html",
        "admin/_bank_entries.html",
        bank=bank,
        listing=listing,
        search=search,
        before=before,
        older_url=older_url,
        newer_url=newest_url if before else None,
        types=TYPE_CHOICES,
        form={},
        errors={},
    )


@bp.post("/banks/<int:bank_id>/entries")
@role_required(Role.ADMIN)
def add_bank_entry(bank_id: int) -> Any:
    """Add one hash (type, hex, note) to the bank."""
    bank = _bank_or_404(bank_id)
    form = {key: request.form.get(key, "") for key in ("signal_type", "signal", "note")}
    try:
        entry = banks.add_entry(
            bank, form["signal_type"], form["signal"], request_actor(), note=form["note"]
        )
    except BankError as error:
        db.session.rollback()
        listing = banks.list_entries(bank)
        older_url = (
            url_for("admin.bank_detail", bank_id=bank.id, before=listing.older_than)
            if listing.older_than
            else None
        )
        return render_template(
            "admin/banks_detail.html",
            bank=bank,
            listing=listing,
            search="",
            before=None,
            older_url=older_url,
            newer_url=None,
            types=TYPE_CHOICES,
            form=form,
            errors={error.field or "signal": error.message},
        ), 422
    db.session.commit()
    flash(
        f"Added {entry.signal_type} entry {entry.id}. It matches from the next lookup on.",
        "success",
    )
    return redirect(url_for("admin.bank_detail", bank_id=bank.id))


@bp.post("/banks/<int:bank_id>/entries/<int:entry_id>/remove")
@role_required(Role.ADMIN)
def remove_bank_entry(bank_id: int, entry_id: int) -> Any:
    """Remove one entry: htmx gets an empty answer (the row goes), a form the bank page."""
    bank = _bank_or_404(bank_id)
    entry = banks.remove_entry(bank, entry_id, request_actor())
    if entry is None:
        abort(404)
    db.session.commit()
    if is_htmx():
        return render_template("admin/_bank_removed.html", entry_id=entry_id)
    flash(f"Removed entry {entry_id}. It no longer matches.", "success")
    return redirect(url_for("admin.bank_detail", bank_id=bank.id))


@bp.route("/banks/<int:bank_id>/import", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def import_bank(bank_id: int) -> Any:
    """Upload a file of hashes; the answer is the import report."""
    bank = _bank_or_404(bank_id)
    report, error, fmt = None, "", request.form.get("format", "")
    if request.method == "POST":
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            error = "Choose a file to import."
        elif fmt and fmt not in FORMATS:
            error = "Choose one of the formats listed, or let it be guessed."
        else:
            report = bank_io.import_entries(
                bank, upload.stream, request_actor(), fmt=fmt or None, filename=upload.filename
            )
    page = render_template(
        "admin/banks_import.html",
        bank=bank,
        report=report,
        error=error,
        formats=FORMAT_CHOICES,
        fmt=fmt,
    )
    return page, 422 if error else 200


@bp.get("/banks/<int:bank_id>/export")
@role_required(Role.ADMIN)
def export_bank(bank_id: int) -> Response:
    """Every entry as a download in ``format`` (csv, te or hma). Exporting is audited."""
    bank = _bank_or_404(bank_id)
    fmt = request.args.get("format", "csv")
    if fmt not in FORMATS:
        abort(404)
    banks.record_export(bank, fmt, request_actor())
    db.session.commit()
    chosen = bank_io.Format(fmt)
    response = Response(
        stream_with_context(bank_export.export_lines(bank, fmt)),
        mimetype="text/csv" if chosen is bank_io.Format.CSV else "text/plain",
    )
    stamp = utcnow().strftime("%Y%m%d")
    name = "".join(c if c.isalnum() else "-" for c in bank.name).strip("-").lower() or "bank"
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{name}-{stamp}-{fmt}.{chosen.extension}"'
    )
    return response
