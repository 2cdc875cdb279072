"""Decisions: approve, remove or escalate an item, alone or many at once, and undo in time.

A decision needs the item waiting for review and claimed by the decider (a lead or admin may
decide any item). The claim check and the state change happen under one write: a conditional
UPDATE on the item takes SQLite's write lock (or PostgreSQL's row lock) before the state machine
moves it, so two people can never decide the same item. Each decision is a ``Decision`` row and an
``item.decided`` audit event in the same transaction; after the commit the ``item_decided`` plugin
event fires.

A decision can be undone for ``UNDO_SECONDS`` (default 30) as long as its follow-up actions have
not started (``actions_started_at``). Decisions taken together (``batch_id``) are undone together.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update

from app.extensions import db
from app.models.item import Item
from app.models.review import Decision, Outcome
from app.models.types import new_id, utcnow
from app.models.user import Role, User
from app.services import audit, policy, queues
from app.services.audit import Actor
from app.services.claims import claim_minutes, holder_id
from app.services.policy import dsa_category, policy_categories
from app.services.states import AWAITING_REVIEW, Status, can_transition, transition

TARGET = {
    Outcome.APPROVE: Status.APPROVED,
    Outcome.REMOVE: Status.REMOVED,
    Outcome.ESCALATE: Status.ESCALATED,
}
AWAITING = [status.value for status in AWAITING_REVIEW]
NOTE_MAX = 2000


class DecisionRefused(Exception):
    """A decision or undo that cannot be made; ``message`` says why and what to do."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.message, self.status = message, status


@dataclass
class BulkResult:
    """What a decision on many items did: the decisions made and the items left alone, why."""

    batch_id: str
    decisions: list[Decision] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def undo_seconds() -> float:
    """How long after a decision it can still be undone."""
    return float(current_app.config.get("UNDO_SECONDS", 30))


def check_bank(bank_id: int | None) -> None:
    """Refuse (400) an "add to bank" whose bank does not exist."""
    if bank_id is not None and not policy.bank_exists(bank_id):
        raise DecisionRefused(
            "The bank chosen for this removal does not exist; choose another.", 400
        )


def check_choice(outcome: str, category: str | None) -> tuple[Outcome, str | None]:
    """The outcome and category, checked; raises DecisionRefused (400) with what to fix."""
    try:
        chosen = Outcome(outcome)
    except ValueError:
        raise DecisionRefused("Choose approve, remove or escalate.", 400) from None
    category = (category or "").strip() or None
    if category is not None and category not in policy_categories():
        raise DecisionRefused(
            f"“{category}” is not a policy category; choose one from the list.", 400
        )
    if category is None and chosen is not Outcome.APPROVE:
        raise DecisionRefused(f"Choose a policy category to {chosen.value} this item.", 400)
    return chosen, category


def decide(
    item_id: str,
    user: User,
    outcome: str,
    actor: Actor,
    *,
    category: str | None = None,
    note: str | None = None,
    bank_id: int | None = None,
) -> Decision:
    """Decide one item; commit; fire ``item_decided``. Raises DecisionRefused."""
    chosen, category = check_choice(outcome, category)
    check_bank(bank_id)
    decision = _decide_one(item_id, user, chosen, actor, category, note, bank_id, None)
    db.session.commit()
    queues.forget_counts()
    _announce([decision])
    return decision


def decide_many(
    item_ids: Iterable[str],
    user: User,
    outcome: str,
    actor: Actor,
    *,
    category: str | None = None,
    note: str | None = None,
    bank_id: int | None = None,
) -> BulkResult:
    """Decide several items the same way in one transaction; items the user cannot decide
    (held by someone else, decided already) are skipped with the reason. Commit; fire events.

    Moderators claim the free items first, in one statement, so a selection never takes an item
    from under a colleague.
    """
    chosen, category = check_choice(outcome, category)
    check_bank(bank_id)
    ids = list(dict.fromkeys(item_ids))
    result = BulkResult(batch_id=new_id())
    if not user.has_role(Role.LEAD):
        now = utcnow()
        db.session.execute(
            update(Item)
            .where(
                Item.id.in_(ids),
                Item.status == Status.QUEUED.value,
                (Item.claimed_by_id.is_(None))
                | (Item.claimed_by_id == user.id)
                | (Item.claim_expires_at < now),
            )
            .values(
                claimed_by_id=user.id, claim_expires_at=now + timedelta(minutes=claim_minutes())
            ),
            execution_options={"synchronize_session": False},
        )
    for item_id in ids:
        # _decide_one refuses before it writes anything but the claim-check touch, so a refused
        # item leaves nothing to roll back and the others go ahead.
        try:
            result.decisions.append(
                _decide_one(item_id, user, chosen, actor, category, note, bank_id, result.batch_id)
            )
        except DecisionRefused as refusal:
            result.skipped[item_id] = refusal.message
    db.session.commit()
    queues.forget_counts()
    _announce(result.decisions)
    return result


def _decide_one(
    item_id: str,
    user: User,
    outcome: Outcome,
    actor: Actor,
    category: str | None,
    note: str | None,
    bank_id: int | None,
    batch_id: str | None,
) -> Decision:
    now = utcnow()
    lead = user.has_role(Role.LEAD)
    held = [] if lead else [Item.claimed_by_id == user.id]
    # The write lock (SQLite) or row lock (PostgreSQL) taken here is held until the commit, so the
    # status read next cannot change under us.
    locked = db.session.execute(
        update(Item)
        .where(Item.id == item_id, Item.status.in_(AWAITING), *held)
        .values(updated_at=now),
        execution_options={"synchronize_session": False},
    ).rowcount
    item = db.session.get(Item, item_id, populate_existing=True)
    if item is None:
        raise DecisionRefused("This item does not exist (it may have been deleted).", 404)
    if item.status == Status.ESCALATED.value and not lead:
        raise DecisionRefused("Escalated items are decided by a lead or an admin.", 403)
    if not locked:
        _explain_refusal(item, user, now)
    if item.status == Status.ESCALATED.value and outcome is Outcome.ESCALATE:
        raise DecisionRefused("This item is escalated already; approve or remove it.")
    previous = item.status
    transition(
        item, TARGET[outcome], actor, f"{outcome.value} ({category})" if category else outcome.value
    )
    item.claimed_by_id, item.claim_expires_at = None, None
    if outcome is not Outcome.ESCALATE:
        item.decided_at = now
    decision = Decision(
        item_id=item.id,
        user_id=user.id,
        outcome=outcome.value,
        category=category,
        dsa_category=dsa_category(category),
        note=(note or "").strip()[:NOTE_MAX] or None,
        previous_status=previous,
        batch_id=batch_id,
        created_at=now,
        bank_id=bank_id if outcome is Outcome.REMOVE else None,
    )
    db.session.add(decision)
    db.session.flush()
    audit.record(
        "item.decided",
        actor,
        target_type="item",
        target_id=item.id,
        details={
            "decision_id": decision.id,
            "outcome": outcome.value,
            "category": category,
            "dsa_category": decision.dsa_category,
            "note": decision.note,
            "batch_id": batch_id,
            "bank_id": decision.bank_id,
        },
    )
    if decision.bank_id is not None:
        policy.add_to_bank(item, decision, actor)
    return decision


def _explain_refusal(item: Item, user: User, now: datetime) -> None:
    if item.status not in AWAITING:
        raise DecisionRefused(f"This item was decided already (it is {item.status}).")
    holder = holder_id(item, now)
    if holder is not None and holder != user.id:
        person = db.session.get(User, holder)
        name = (person.display_name or person.email) if person else "someone else"
        raise DecisionRefused(f"{name} is working on this item. Pick another one, or ask a lead.")
    raise DecisionRefused("Claim this item before you decide it (press c).")


def _announce(decisions: list[Decision]) -> None:
    """Fire ``item_decided`` for each committed decision; a plugin's failure is only logged."""
    if not decisions:
        return
    from app.plugins import current_plugins

    plugins = current_plugins()
    for decision in decisions:
        plugins.fire("item_decided", item=decision.item, decision=decision)


# --- undo -------------------------------------------------------------------------------------


def current_decision(item_id: str) -> Decision | None:
    """The item's latest decision that was not undone (human or automated), if any."""
    return db.session.scalar(
        select(Decision)
        .where(Decision.item_id == item_id, Decision.undone_at.is_(None))
        .order_by(Decision.created_at.desc(), Decision.id.desc())
        .limit(1)
    )


def undoable(decision: Decision, now: datetime | None = None) -> bool:
    """Whether ``decision`` can still be undone (in time, not undone, actions not started)."""
    now = now or utcnow()
    return (
        decision.undone_at is None
        and decision.actions_started_at is None
        and decision.created_at >= now - timedelta(seconds=undo_seconds())
    )


def latest_undoable(user_id: int, now: datetime | None = None) -> list[Decision]:
    """The user's most recent decision (with its batch) if it can still be undone, else []."""
    now = now or utcnow()
    latest = db.session.scalar(
        select(Decision)
        .where(
            Decision.user_id == user_id,
            Decision.created_at >= now - timedelta(seconds=undo_seconds()),
        )
        .order_by(Decision.id.desc())
        .limit(1)
    )
    if latest is None or not undoable(latest, now):
        return []
    return _batch_of(latest)


def _batch_of(decision: Decision) -> list[Decision]:
    if decision.batch_id is None:
        return [decision]
    return list(
        db.session.scalars(
            select(Decision).where(Decision.batch_id == decision.batch_id).order_by(Decision.id)
        )
    )


def undo(decision_id: int, user: User, actor: Actor) -> list[Decision]:
    """Undo a decision (and the others of its batch): the items go back where they were; commit.

    A single item is claimed by the user again so they can decide it afresh. Raises
    DecisionRefused when it is too late, or the user neither made it nor leads.
    """
    now = utcnow()
    first = db.session.get(Decision, decision_id)
    if first is None:
        raise DecisionRefused("There is no such decision.", 404)
    if first.user_id != user.id and not user.has_role(Role.LEAD):
        raise DecisionRefused("Only the person who decided, or a lead, can undo a decision.", 403)
    batch = [decision for decision in _batch_of(first) if decision.undone_at is None]
    for decision in batch:
        if not undoable(decision, now):
            raise DecisionRefused(
                "Too late to undo: the decision is older than "
                f"{undo_seconds():.0f} seconds or its actions have started."
            )
        if not can_transition(TARGET[Outcome(decision.outcome)], Status(decision.previous_status)):
            raise DecisionRefused(
                f"A decision to {decision.outcome} an item that was "
                f"{decision.previous_status} cannot be undone here; "
                "decide the item again instead."
            )
    try:
        for decision in batch:
            _undo_one(decision, user, actor, now, single=len(batch) == 1)
    except DecisionRefused:
        db.session.rollback()
        raise
    db.session.commit()
    queues.forget_counts()
    return batch


def _undo_one(decision: Decision, user: User, actor: Actor, now: datetime, single: bool) -> None:
    # Marking the decision undone is the first write, conditional on its actions not having
    # started: an action run that starts at the same moment either wins (and the undo is
    # refused) or finds the decision undone.
    marked = db.session.execute(
        update(Decision)
        .where(
            Decision.id == decision.id,
            Decision.undone_at.is_(None),
            Decision.actions_started_at.is_(None),
        )
        .values(undone_at=now, undone_by_id=user.id)
    ).rowcount
    if not marked:
        raise DecisionRefused("Too late to undo: the decision's actions have started.")
    item = db.session.get(Item, decision.item_id, populate_existing=True)
    if item is None or item.status != TARGET[Outcome(decision.outcome)].value:
        raise DecisionRefused("The item has changed since the decision; decide it again.")
    transition(
        item, Status(decision.previous_status), actor, "decision undone", decision_id=decision.id
    )
    item.decided_at = None
    item.claimed_by_id = user.id if single else None
    item.claim_expires_at = now + timedelta(minutes=claim_minutes()) if single else None
    audit.record(
        "item.decision_undone",
        actor,
        target_type="item",
        target_id=item.id,
        details={"decision_id": decision.id, "outcome": decision.outcome},
    )
    if decision.bank_id is not None:
        policy.remove_from_bank(decision, actor)
