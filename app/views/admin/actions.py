"""``/admin/actions``: which actions each decision starts, per outcome and policy category."""

from __future__ import annotations

from typing import Any

from flask import flash, render_template, request, url_for

from app import htmx
from app.models.user import Role
from app.plugins import current_plugins
from app.security import role_required
from app.services import actions_config
from app.services.policy import category_title, policy_categories
from app.views import request_actor
from app.views.admin import bp


def _rows() -> list[tuple[str, str, str]]:
    """(outcome, category, words) for every line of the mapping table."""
    rows = [
        (outcome, actions_config.ANY, f"{outcome.capitalize()}, any category")
        for outcome in actions_config.OUTCOMES
    ]
    for outcome in ("remove", "escalate"):
        rows += [
            (outcome, category, f"{outcome.capitalize()}: {category_title(category)}")
            for category in policy_categories()
        ]
    return rows


@bp.route("/actions", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def actions() -> Any:
    """Show and save the decision → actions mapping."""
    error = None
    if request.method == "POST":
        table = {
            (outcome, category): request.form.getlist(f"map-{outcome}-{category}")
            for outcome, category, _ in _rows()
        }
        try:
            actions_config.save(table, request_actor())
        except actions_config.ConfigError as problem:
            error = str(problem)
        else:
            flash("Saved: decisions start these actions from now on.", "success")
            return htmx.redirect(url_for("admin.actions"))
    return render_template(
        "admin/actions.html",
        rows=_rows(),
        mapping=actions_config.mapping(),
        installed=sorted(current_plugins().actions.values(), key=lambda a: a.name),
        error=error,
    ), (400 if error else 200)
