"""Rules: admins' ordered conditions on scan results, and what the first match does.

When a scan round finishes, the pipeline asks ``route_for`` first: enabled rules are tried in
order (``position``) and the first whose conditions hold (``all`` or ``any`` of them) decides the
route. No rule matched: the default routing (app.services.routing) applies. ``record_hit`` then
counts the hit, records a ``RuleHit``, writes an ``automated`` audit event (and, for a removal, a
``Decision`` without a user) and creates the rule's action runs, all in the routing transaction;
the ``item_scanned`` event queues those runs after the commit. See docs/rules.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from app.extensions import db
from app.models.item import Item
from app.models.review import Decision
from app.models.rule import Rule, RuleHit, RuleOutcome
from app.models.source import Source
from app.models.types import utcnow
from app.services import audit
from app.services.audit import Actor
from app.services.routing import Route
from app.services.states import Status

RULES = Actor.system("rules")
STATUS_FOR = {
    RuleOutcome.CLEAR: Status.CLEARED,
    RuleOutcome.QUEUE: Status.QUEUED,
    RuleOutcome.ESCALATE: Status.ESCALATED,
    RuleOutcome.REMOVE: Status.REMOVED,
}
CONDITION_TYPES = {
    "scanner": "a scanner gave a verdict",
    "category": "a label has this policy category",
    "label": "a scanner gave this label",
    "score": "a label's (or category's) score compares to a number",
    "bank": "matched a bank with this label (empty: any bank)",
    "distance": "a PDQ match is at most this distance",
    "source": "the item came from this source (slug)",
    "uploader_removed": "the uploader has at least this many removed items",
}


@dataclass
class Facts:
    """What conditions look at: a finished round's rows and the item's context (lazily)."""

    rows: list[Any]
    item: Item | None

    def labels(self) -> Iterable[dict[str, Any]]:
        for row in self.rows:
            yield from row.labels or []

    def matches(self) -> Iterable[dict[str, Any]]:
        for row in self.rows:
            yield from getattr(row, "matches", None) or []


@dataclass(frozen=True)
class RuleVerdict:
    """The rule that matched and the route it gives."""

    rule: Rule
    route: Route


def _compare(found: Any, op: str, value: Any) -> bool:
    if found is None:
        return False
    return float(found) >= float(value) if op == ">=" else float(found) <= float(value)


def _uploader_removed(facts: Facts) -> int:
    item = facts.item
    if item is None or not item.uploader_id:
        return 0
    return (
        db.session.scalar(
            select(func.count(Item.id)).where(
                Item.source_id == item.source_id,
                Item.uploader_id == item.uploader_id,
                Item.status == Status.REMOVED.value,
                Item.id != item.id,
            )
        )
        or 0
    )


CHECKS: dict[str, Callable[[dict[str, Any], Facts], bool]] = {
    "scanner": lambda c, f: any(
        (not c.get("name") or r.scanner == c["name"])
        and (not c.get("value") or r.verdict == c["value"])
        for r in f.rows
    ),
    "category": lambda c, f: any(label.get("category") == c["name"] for label in f.labels()),
    "label": lambda c, f: any(label.get("name") == c["name"] for label in f.labels()),
    "score": lambda c, f: any(
        c["name"] in (label.get("name"), label.get("category"))
        and _compare(label.get("score"), c.get("op", ">="), c["value"])
        for label in f.labels()
    ),
    "bank": lambda c, f: any(
        not c.get("name") or c["name"].lower() in [str(x).lower() for x in m.get("labels") or []]
        for m in f.matches()
    ),
    "distance": lambda c, f: any(
        m.get("signal_type") == "pdq" and _compare(m.get("distance"), "<=", c["value"])
        for m in f.matches()
    ),
    "source": lambda c, f: (
        f.item is not None and f.item.source is not None and f.item.source.slug == c["name"]
    ),
    "uploader_removed": lambda c, f: _uploader_removed(f) >= int(c["value"]),
}


def matches(rule: Rule, facts: Facts) -> bool:
    """Whether ``rule``'s conditions hold for ``facts`` (a rule without conditions never does)."""
    results = (CHECKS[c["type"]](c, facts) for c in rule.conditions or [] if c["type"] in CHECKS)
    if not rule.conditions:
        return False
    return all(results) if rule.match == "all" else any(results)


def route_of(rule: Rule) -> Route:
    """Where a matching rule sends the item."""
    priority = rule.priority if rule.outcome in (RuleOutcome.QUEUE, RuleOutcome.ESCALATE) else 0
    return Route(STATUS_FOR[rule.outcome].value, priority, f"rule “{rule.name}”"[:500])


_IN_ORDER = select(Rule).order_by(Rule.position, Rule.id)
_ENABLED_IN_ORDER = _IN_ORDER.where(Rule.enabled.is_(True))  # built once: routing reads it


def ordered_rules(enabled_only: bool = True) -> list[Rule]:
    """Rules in evaluation order."""
    return list(db.session.scalars(_ENABLED_IN_ORDER if enabled_only else _IN_ORDER))


def route_for(item_id: str, rows: list[Any]) -> RuleVerdict | None:
    """The first enabled rule matching a finished round's ``rows``, with its route; or None."""
    rules = ordered_rules()
    if not rules:
        return None
    facts = Facts(list(rows), db.session.get(Item, item_id))
    for rule in rules:
        if matches(rule, facts):
            return RuleVerdict(rule, route_of(rule))
    return None


def record_hit(item_id: str, scan_round: int, verdict: RuleVerdict) -> None:
    """Count the hit and record what the rule did, automated; the caller commits."""
    from app.services import actions
    from app.services.actions_hooks import callback_url
    from app.services.policy import dsa_category

    rule, now = verdict.rule, utcnow()
    db.session.add(
        RuleHit(rule_id=rule.id, item_id=item_id, scan_round=scan_round, outcome=rule.outcome)
    )
    db.session.execute(update(Rule).where(Rule.id == rule.id).values(hit_count=Rule.hit_count + 1))
    decision = None
    if rule.outcome == RuleOutcome.REMOVE:
        decision = Decision(
            item_id=item_id,
            user_id=None,
            outcome="remove",
            category=rule.category,
            dsa_category=dsa_category(rule.category),
            note=f"Automated: rule “{rule.name}”",
            previous_status="scanning",
            created_at=now,
            actions_started_at=now,
        )  # nothing to undo
        db.session.add(decision)
        db.session.execute(update(Item).where(Item.id == item_id).values(decided_at=now))
        db.session.flush()
    audit.record(
        "rule.applied",
        RULES,
        target_type="item",
        target_id=item_id,
        details={
            "rule_id": rule.id,
            "rule": rule.name,
            "outcome": rule.outcome,
            "automated": True,
            "scan_round": scan_round,
            "decision_id": decision.id if decision else None,
        },
    )
    item = db.session.get(Item, item_id)
    for name in rule.actions or []:
        if name == "webhook" and (item is None or not callback_url(item)):
            continue
        actions.create_run(
            item_id,
            name,
            f"rule:{rule.id}:{item_id}:{scan_round}:{name}",
            params={"event": "item.decided"} if name == "webhook" else {},
            decision_id=decision.id if decision else None,
            rule_id=rule.id,
            requested_by=f"rule {rule.name}"[:255],
        )


def source_slugs() -> list[str]:
    """Every source's slug, for the rule editor."""
    return list(db.session.scalars(select(Source.slug).order_by(Source.slug)))
