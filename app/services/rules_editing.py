"""Writing rules: check a rule form, save, reorder, switch on and off, delete, dry-run, defaults.

``parse_form`` turns the editor's fields into a rule (unsaved) or ``RuleErrors`` naming each
wrong field in words. ``dry_run`` tries a rule on the most recent scanned items (``RULES_DRY_RUN_
ITEMS``, default 200) and says what it would have done, without changing anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from app.extensions import db
from app.models.audit import AuditEvent
from app.models.item import Item
from app.models.rule import Rule, RuleOutcome
from app.plugins import current_plugins
from app.services import audit
from app.services.audit import Actor
from app.services.pipeline import latest_results
from app.services.rules import CONDITION_TYPES, Facts, matches, route_of

NEEDS_NAME = {"category", "label", "score", "source"}
NEEDS_NUMBER = {"score", "distance", "uploader_removed"}
DEFAULTS_EVENT = "rules.defaults_created"
DEFAULT_RULES = (
    dict(
        name="Known CSAM (bank match): escalate for an NCMEC report",
        match="all",
        conditions=[{"type": "bank", "name": "csam"}],
        outcome=RuleOutcome.ESCALATE,
        priority=100,
        actions=["quarantine"],
        category="csam",
    ),
    dict(
        name="Any classifier flag: queue for review",
        match="any",
        conditions=[{"type": "scanner", "name": "", "value": "flag"}],
        outcome=RuleOutcome.QUEUE,
        priority=50,
        actions=[],
    ),
)


@dataclass
class RuleErrors(Exception):
    """What is wrong with a rule form: field name (``cond-2`` for a condition row) → message."""

    errors: dict[str, str] = field(default_factory=dict)


def parse_form(form: Mapping[str, Any], getlist: Any) -> Rule:
    """A Rule from the editor's fields (not added to the session); raises RuleErrors."""
    errors: dict[str, str] = {}
    name = (form.get("name") or "").strip()
    if not name:
        errors["name"] = "Give the rule a name moderators will recognise in an item's history."
    match = form.get("match") or "all"
    outcome = form.get("outcome") or ""
    if outcome not in RuleOutcome.ALL:
        errors["outcome"] = "Choose clear, queue, escalate or remove."
    try:
        priority = int(form.get("priority") or 50)
    except ValueError:
        errors["priority"], priority = "Priority is a whole number (higher is reviewed first).", 50
    installed = set(current_plugins().actions)
    chosen = [a for a in getlist("actions") if a]
    if any(a not in installed for a in chosen):
        errors["actions"] = "Choose actions from the list."
    category = (form.get("category") or "").strip() or None
    if outcome == RuleOutcome.REMOVE and category is None:
        errors["category"] = "An automated removal needs a policy category (for the record)."
    conditions = []
    rows = zip(
        getlist("cond_type"),
        getlist("cond_name"),
        getlist("cond_op"),
        getlist("cond_value"),
        strict=False,
    )
    for number, (kind, subject, op, value) in enumerate(rows, 1):
        condition, problem = _condition(kind, subject.strip(), op, value.strip())
        if problem:
            errors[f"cond-{number}"] = f"Condition {number}: {problem}"
        elif condition:
            conditions.append(condition)
    if not conditions and not any(k.startswith("cond-") for k in errors):
        errors["conditions"] = "Add at least one condition."
    if errors:
        raise RuleErrors(errors)
    return Rule(
        name=name[:120],
        match="any" if match == "any" else "all",
        conditions=conditions,
        outcome=outcome,
        priority=priority,
        actions=chosen,
        category=category,
        enabled=bool(form.get("enabled")),
        note=(form.get("note") or "").strip() or None,
    )


def _condition(kind: str, subject: str, op: str, value: str) -> tuple[dict[str, Any], str]:
    if kind not in CONDITION_TYPES:
        return {}, "choose what to check."
    if kind in NEEDS_NAME and not subject:
        return {}, "say which one (a label, category or source)."
    condition: dict[str, Any] = {"type": kind, "name": subject}
    if kind == "scanner":
        condition["value"] = value if value in ("match", "flag", "clear", "error") else ""
        if value and not condition["value"]:
            return {}, "a scanner verdict is match, flag, clear or error (or empty for any)."
        return condition, ""
    if kind in NEEDS_NUMBER:
        try:
            number = float(value)
        except ValueError:
            return {}, "enter a number (e.g. 0.8 for a score, 10 for a distance)."
        if kind == "score" and not 0 <= number <= 1:
            return {}, "scores are between 0 and 1."
        if kind != "score" and (number < 0 or number != int(number)):
            return {}, "enter a whole number, 0 or more."
        condition["value"] = number if kind == "score" else int(number)
        condition["op"] = (
            "<=" if op == "<=" and kind == "score" else ("<=" if kind == "distance" else ">=")
        )
    return condition, ""


def save(rule: Rule, actor: Actor, existing: Rule | None = None) -> Rule:
    """Add a new rule at the end, or copy the form's values onto ``existing``; audited; commits."""
    fields = (
        "name",
        "match",
        "conditions",
        "outcome",
        "priority",
        "actions",
        "category",
        "enabled",
        "note",
    )
    if existing is None:
        rule.position = (db.session.scalar(select(func.max(Rule.position))) or 0) + 1
        db.session.add(rule)
        target = rule
    else:
        for name in fields:
            setattr(existing, name, getattr(rule, name))
        target = existing
    db.session.flush()
    audit.record(
        "rule.saved",
        actor,
        target_type="rule",
        target_id=target.id,
        details={name: getattr(target, name) for name in fields},
    )
    db.session.commit()
    return target


def move(rule: Rule, step: int, actor: Actor) -> None:
    """Swap the rule with its neighbour above (-1) or below (+1); commits."""
    ordered = list(db.session.scalars(select(Rule).order_by(Rule.position, Rule.id)))
    for position, each in enumerate(ordered, 1):
        each.position = position
    index = ordered.index(rule)
    other = index + step
    if 0 <= other < len(ordered):
        ordered[index].position, ordered[other].position = other + 1, index + 1
        audit.record(
            "rule.moved",
            actor,
            target_type="rule",
            target_id=rule.id,
            details={"position": rule.position},
        )
    db.session.commit()


def set_enabled(rule: Rule, enabled: bool, actor: Actor) -> None:
    """Switch a rule on or off; commits."""
    rule.enabled = enabled
    audit.record(
        "rule.enabled" if enabled else "rule.disabled",
        actor,
        target_type="rule",
        target_id=rule.id,
        details={"name": rule.name},
    )
    db.session.commit()


def delete(rule: Rule, actor: Actor) -> None:
    """Delete a rule (its hits go with it); commits."""
    audit.record(
        "rule.deleted",
        actor,
        target_type="rule",
        target_id=rule.id,
        details={"name": rule.name, "hit_count": rule.hit_count},
    )
    db.session.delete(rule)
    db.session.commit()


@dataclass(frozen=True)
class DryRunRow:
    """One recent item the rule would have matched: where it went, where the rule would send it."""

    item: Item
    now: str
    would: str


def dry_run(rule: Rule, limit: int | None = None) -> tuple[int, list[DryRunRow]]:
    """How many of the last ``limit`` scanned items the rule matches, and those items."""
    limit = limit or int(current_app.config.get("RULES_DRY_RUN_ITEMS", 200))
    items = db.session.scalars(
        select(Item)
        .where(Item.scanned_at.is_not(None))
        .order_by(Item.scanned_at.desc())
        .limit(limit)
    ).all()
    would = route_of(rule).status
    hits = [
        DryRunRow(item, item.status, would)
        for item in items
        if matches(rule, Facts(latest_results(item.id), item))
    ]
    return len(items), hits


def ensure_defaults(actor: Actor) -> bool:
    """Create the default rules once per install (True when created now); commits."""
    if db.session.scalar(
        select(AuditEvent.seq).where(AuditEvent.action == DEFAULTS_EVENT).limit(1)
    ):
        return False
    for position, values in enumerate(DEFAULT_RULES, 1):
        db.session.add(Rule(position=position, enabled=True, **values))
    audit.record(
        DEFAULTS_EVENT,
        actor,
        target_type="rule",
        details={"rules": [r["name"] for r in DEFAULT_RULES]},
    )
    db.session.commit()
    return True


def condition_rows(rule: Rule | None) -> Sequence[dict[str, Any]]:
    """The editor's condition rows for ``rule`` (one empty row for a new rule)."""
    return list(rule.conditions) if rule is not None and rule.conditions else [{"type": ""}]
