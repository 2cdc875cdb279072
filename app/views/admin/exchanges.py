"""Admin pages for hash exchanges: list, set up, edit, "Fetch now", and each one's fetches.

Credentials are write-only: the form shows whether each is set and takes a new value, never the
stored one. "Fetch now" queues the durable fetch job; with htmx it swaps in the status panel,
which polls itself while a fetch is queued or running.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, render_template, request, url_for

from app.extensions import db
from app.htmx import is_htmx, redirect, render_page_or_fragment
from app.models.bank import Bank
from app.models.exchange import Exchange
from app.models.user import Role
from app.security import role_required
from app.services import exchange_fetch, exchange_schedule, exchanges
from app.services.banks import list_banks
from app.services.exchange_kinds import KINDS, ExchangeKind
from app.services.exchanges import ExchangeError
from app.views import request_actor
from app.views.admin import bp


def _exchange_or_404(exchange_id: int) -> Exchange:
    exchange = db.session.get(Exchange, exchange_id)
    if exchange is None:
        abort(404)
    return exchange


def _kind_or_404(name: str) -> ExchangeKind:
    if name not in KINDS:
        abort(404)
    return KINDS[name]


def _form(kind: ExchangeKind, exchange: Exchange | None) -> dict[str, Any]:
    """What the form shows: the posted values, the exchange's, or the defaults."""
    if request.method == "POST":
        return {
            "name": request.form.get("name", ""),
            "bank": request.form.get("bank", ""),
            "schedule_minutes": request.form.get("schedule_minutes", ""),
            "enabled": request.form.get("enabled") == "on",
            "settings": {s.name: request.form.get(f"setting-{s.name}", "") for s in kind.settings},
            "credentials": {
                s.name: request.form.get(f"secret-{s.name}", "") for s in kind.credentials
            },
        }
    stored = dict(exchange.settings or {}) if exchange else {}
    return {
        "name": exchange.name if exchange else "",
        "bank": str(exchange.bank_id) if exchange else "",
        "schedule_minutes": str(exchange.schedule_minutes if exchange else 60),
        "enabled": exchange.enabled if exchange else True,
        "settings": {
            s.name: ", ".join(map(str, value)) if isinstance(value, list) else str(value or "")
            for s in kind.settings
            for value in [stored.get(s.name, "")]
        },
        "credentials": {},
    }


def _render_form(
    kind: ExchangeKind, exchange: Exchange | None, form: dict[str, Any], errors: dict[str, str]
) -> Any:
    banks = [(str(bank.id), bank.name) for bank in list_banks() if not bank.negative]
    page = render_template(
        "admin/exchanges_form.html",
        kind=kind,
        exchange=exchange,
        form=form,
        errors=errors,
        banks=banks,
    )
    return page, 422 if errors else 200


@bp.get("/exchanges", endpoint="exchanges")
@role_required(Role.ADMIN)
def exchange_list() -> str:
    """Every exchange with its bank, schedule and last fetch."""
    banks = {bank.id: bank for bank in db.session.query(Bank)}
    return render_template(
        "admin/exchanges.html", exchanges=exchanges.list_exchanges(), banks=banks, kinds=KINDS
    )


@bp.get("/exchanges/new")
@role_required(Role.ADMIN)
def choose_exchange_kind() -> str:
    """Which kind of exchange to set up."""
    return render_template("admin/exchanges_new.html", kinds=KINDS)


@bp.route("/exchanges/new/<kind>", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def new_exchange(kind: str) -> Any:
    """The form for a new exchange of one kind."""
    chosen = _kind_or_404(kind)
    form = _form(chosen, None)
    if request.method == "GET":
        return _render_form(chosen, None, form, {})
    try:
        exchange = exchanges.create_exchange(
            form["name"],
            chosen.name,
            form["bank"],
            request_actor(),
            settings=form["settings"],
            credentials=form["credentials"],
            schedule_minutes=form["schedule_minutes"],
            enabled=form["enabled"],
        )
    except ExchangeError as error:
        db.session.rollback()
        return _render_form(chosen, None, form, error.errors)
    db.session.commit()
    flash(f"Exchange “{exchange.name}” saved. Use “Fetch now” to check its settings.", "success")
    return redirect(url_for("admin.exchange_detail", exchange_id=exchange.id))


@bp.route("/exchanges/<int:exchange_id>/edit", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def edit_exchange(exchange_id: int) -> Any:
    """Change an exchange's name, bank, schedule, settings or credentials."""
    exchange = _exchange_or_404(exchange_id)
    kind = _kind_or_404(exchange.kind)
    form = _form(kind, exchange)
    if request.method == "GET":
        return _render_form(kind, exchange, form, {})
    try:
        exchanges.update_exchange(
            exchange,
            request_actor(),
            settings=form["settings"],
            credentials=form["credentials"],
            name=form["name"],
            bank=form["bank"],
            schedule_minutes=form["schedule_minutes"],
            enabled=form["enabled"],
        )
    except ExchangeError as error:
        db.session.rollback()
        return _render_form(kind, exchange, form, error.errors)
    db.session.commit()
    flash("Exchange saved.", "success")
    return redirect(url_for("admin.exchange_detail", exchange_id=exchange.id))


@bp.get("/exchanges/<int:exchange_id>")
@role_required(Role.ADMIN)
def exchange_detail(exchange_id: int) -> Any:
    """An exchange's settings, whether its credentials are set, its last fetches."""
    exchange = _exchange_or_404(exchange_id)
    return render_page_or_fragment(
        "admin/exchanges_detail.html", "admin/_exchange_status.html", **_context(exchange)
    )


@bp.post("/exchanges/<int:exchange_id>/fetch")
@role_required(Role.ADMIN)
def fetch_exchange(exchange_id: int) -> Any:
    """Queue a fetch now."""
    exchange = _exchange_or_404(exchange_id)
    try:
        exchange_schedule.request_fetch(exchange, request_actor())
        notice, notice_kind = "Fetch started. Its result appears here when it ends.", "success"
    except exchange_fetch.FetchBusy as busy:
        notice, notice_kind = str(busy), "warning"
    db.session.expire_all()  # the job may already have run (inline, or on a fast worker)
    if is_htmx():
        context = _context(exchange) | {"notice": notice, "notice_kind": notice_kind}
        return render_template("admin/_exchange_status.html", **context)
    flash(notice, notice_kind)
    return redirect(url_for("admin.exchange_detail", exchange_id=exchange.id))


def _context(exchange: Exchange) -> dict[str, Any]:
    return {
        "exchange": exchange,
        "kind": KINDS[exchange.kind],
        "bank": db.session.get(Bank, exchange.bank_id),
        "runs": exchanges.recent_runs(exchange),
    }
