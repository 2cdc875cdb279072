"""``/admin/rules``: the ordered rules that route scanned items, their editor and dry run."""

from __future__ import annotations

import secrets
from typing import Any

from flask import abort, flash, render_template, request, url_for

from app import htmx
from app.extensions import db
from app.models.rule import Rule, RuleOutcome
from app.models.user import Role
from app.plugins import current_plugins
from app.security import role_required
from app.services import rules, rules_editing
from app.services.policy import policy_categories
from app.views import request_actor
from app.views.admin import bp


def _rule(rule_id: int) -> Rule:
    found = db.session.get(Rule, rule_id)
    if found is None:
        abort(404, description="There is no such rule.")
    return found


def _form(rule: Rule | None, errors: dict[str, str] | None = None, status: int = 200) -> Any:
    return render_template(
        "admin/rules_form.html",
        rule=rule,
        errors=errors or {},
        rows=rules_editing.condition_rows(rule),
        types=rules.CONDITION_TYPES,
        outcomes=RuleOutcome.ALL,
        categories=policy_categories(),
        installed=sorted(current_plugins().actions),
        sources=rules.source_slugs(),
    ), status


@bp.get("/rules", endpoint="rules")
@role_required(Role.ADMIN)
def rules_list() -> Any:
    """Every rule in evaluation order; the defaults are created on a new install's first visit."""
    rules_editing.ensure_defaults(request_actor())
    return render_template("admin/rules.html", rules=rules.ordered_rules(enabled_only=False))


@bp.route("/rules/new", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def new_rule() -> Any:
    """The editor for a new rule (added last)."""
    if request.method == "GET":
        return _form(None)
    try:
        rule = rules_editing.parse_form(request.form, request.form.getlist)
    except rules_editing.RuleErrors as problem:
        return _form(_unsaved(), problem.errors, 400)
    rules_editing.save(rule, request_actor())
    flash(f"Rule “{rule.name}” saved.", "success")
    return htmx.redirect(url_for("admin.rules"))


@bp.route("/rules/<int:rule_id>", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def edit_rule(rule_id: int) -> Any:
    """The editor for an existing rule."""
    existing = _rule(rule_id)
    if request.method == "GET":
        return _form(existing)
    try:
        rule = rules_editing.parse_form(request.form, request.form.getlist)
    except rules_editing.RuleErrors as problem:
        return _form(_unsaved(existing.id), problem.errors, 400)
    rules_editing.save(rule, request_actor(), existing)
    flash(f"Rule “{existing.name}” saved.", "success")
    return htmx.redirect(url_for("admin.rules"))


def _unsaved(rule_id: int | None = None) -> Rule:
    """The form's values as typed, to show again beside the errors."""
    form = request.form
    rows = zip(
        form.getlist("cond_type"),
        form.getlist("cond_name"),
        form.getlist("cond_op"),
        form.getlist("cond_value"),
        strict=False,
    )
    return Rule(
        id=rule_id,
        name=form.get("name", ""),
        match=form.get("match", "all"),
        outcome=form.get("outcome", ""),
        priority=form.get("priority", 50),
        category=form.get("category"),
        actions=form.getlist("actions"),
        enabled=bool(form.get("enabled")),
        note=form.get("note"),
        conditions=[{"type": t, "name": n, "op": o, "value": v} for t, n, o, v in rows],
    )


@bp.post("/rules/dry-run")
@role_required(Role.ADMIN)
def dry_run_rule() -> Any:
    """What the rule in the form would have done to the most recent scanned items (htmx)."""
    try:
        rule = rules_editing.parse_form(request.form, request.form.getlist)
    except rules_editing.RuleErrors as problem:
        return render_template("admin/_rule_dry_run.html", errors=problem.errors)
    checked, hits = rules_editing.dry_run(rule)
    return render_template("admin/_rule_dry_run.html", checked=checked, hits=hits, rule=rule)


@bp.get("/rules/condition-row")
@role_required(Role.ADMIN)
def rule_condition_row() -> Any:
    """One more empty condition row (htmx)."""
    return render_template(
        "admin/_rule_condition.html",
        row={"type": ""},
        number=f"new-{secrets.token_hex(3)}",
        types=rules.CONDITION_TYPES,
    )


@bp.get("/rules/condition-row/removed")
@role_required(Role.ADMIN)
def rule_condition_removed() -> Any:
    """Nothing: the row asking for this is swapped out (htmx)."""
    return ""


@bp.post("/rules/<int:rule_id>/<any(enable, disable, up, down, delete):change>")
@role_required(Role.ADMIN)
def change_rule(rule_id: int, change: str) -> Any:
    """Switch a rule on or off, move it up or down, or delete it."""
    rule, actor = _rule(rule_id), request_actor()
    if change in ("enable", "disable"):
        rules_editing.set_enabled(rule, change == "enable", actor)
    elif change in ("up", "down"):
        rules_editing.move(rule, -1 if change == "up" else 1, actor)
    else:
        rules_editing.delete(rule, actor)
        flash("Rule deleted.", "success")
    return htmx.redirect(url_for("admin.rules"))
