"""Decisions: who may decide, the state machine, the record they leave, bulk, undo, banks."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from app.extensions import db
from app.hookspecs import hookimpl
from app.models.audit import AuditEvent
from app.models.bank import BankEntry
from app.models.item import Item
from app.models.review import Decision
from app.services import banks, claims, decisions, policy
from app.services.audit import Actor
from app.services.states import IllegalTransition, Status, transition
from tests.helpers_review import attach, load, make_item, make_source, make_user

DECIDED: list[tuple[str, str]] = []


@hookimpl
def item_decided(item: Any, decision: Any) -> None:
    """This test module is also a plugin: it records the event."""
    DECIDED.append((item.id, decision.outcome))


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"PLUGINS_MODULES": ["tests.test_decisions"]}


@pytest.fixture(autouse=True)
def forget_events() -> None:
    DECIDED.clear()


def claimed_item(app: Flask, user: Any, **fields: Any) -> str:
    item_id = make_item(app, make_source(app), **fields)
    with app.app_context():
        assert claims.claim(item_id, attach(user))
    return item_id


def actor(user: Any) -> Actor:
    return Actor.for_user(user, "127.0.0.1")


def test_a_decision_moves_the_item_records_it_and_fires_the_plugin_event(app: Flask) -> None:
    moderator = make_user(app)
    item_id = claimed_item(app, moderator)
    with app.app_context():
        user = attach(moderator)
        decision = decisions.decide(
            item_id, user, "remove", actor(user), category="spam", note="Crypto spam again"
        )
        assert decision.dsa_category == "STATEMENT_CATEGORY_OTHER_VIOLATION_TC"
        event = db.session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "item.decided", AuditEvent.target_id == item_id
            )
        ).one()
        assert event.details["outcome"] == "remove"
        assert event.details["category"] == "spam"
        assert event.actor_id == str(moderator.id)
    item = load(app, item_id)
    assert item.status == "removed"
    assert item.claimed_by_id is None and item.decided_at is not None
    assert [(item_id, "remove")] == DECIDED


def test_a_moderator_must_hold_the_claim(app: Flask) -> None:
    alice, bob = make_user(app, name="Alice"), make_user(app)
    item_id = claimed_item(app, alice)
    unclaimed = make_item(app, make_source(app))
    with app.app_context():
        with pytest.raises(decisions.DecisionRefused, match="Alice is working on this item"):
            decisions.decide(item_id, attach(bob), "approve", actor(bob))
        with pytest.raises(decisions.DecisionRefused, match="Claim this item"):
            decisions.decide(unclaimed, attach(bob), "approve", actor(bob))
    assert load(app, item_id).status == "queued"
    assert DECIDED == []


def test_a_lead_may_decide_without_a_claim(app: Flask) -> None:
    lead = make_user(app, "lead")
    item_id = make_item(app, make_source(app), status="escalated")
    with app.app_context():
        decisions.decide(item_id, attach(lead), "approve", actor(lead))
    assert load(app, item_id).status == "approved"


def test_escalated_items_are_for_leads(app: Flask) -> None:
    moderator = make_user(app)
    item_id = make_item(app, make_source(app), status="escalated", claimed_by_id=moderator.id)
    with app.app_context(), pytest.raises(decisions.DecisionRefused, match="lead"):
        decisions.decide(item_id, attach(moderator), "remove", actor(moderator), category="hate")


@pytest.mark.parametrize(
    ("outcome", "category", "message"),
    [
        ("remove", None, "Choose a policy category"),
        ("escalate", "", "Choose a policy category"),
        ("remove", "not-a-category", "not a policy category"),
        ("delete", "spam", "approve, remove or escalate"),
    ],
)
def test_choices_are_checked(app: Flask, outcome: str, category: str | None, message: str) -> None:
    moderator = make_user(app)
    item_id = claimed_item(app, moderator)
    with app.app_context(), pytest.raises(decisions.DecisionRefused, match=message):
        decisions.decide(item_id, attach(moderator), outcome, actor(moderator), category=category)


def test_a_decided_item_cannot_be_decided_again(app: Flask) -> None:
    lead = make_user(app, "lead")
    item_id = make_item(app, make_source(app))
    with app.app_context():
        decisions.decide(item_id, attach(lead), "approve", actor(lead))
        with pytest.raises(decisions.DecisionRefused, match="decided already"):
            decisions.decide(item_id, attach(lead), "remove", actor(lead), category="spam")


def test_the_state_machine_refuses_illegal_transitions(app: Flask) -> None:
    item_id = make_item(app, make_source(app), status="approved")
    with app.app_context():
        item = db.session.get(Item, item_id)
        assert item is not None
        # (approved → escalated exists only so undoing a lead's decision restores "escalated")
        for target in (Status.REMOVED, Status.CLEARED, Status.FETCH_FAILED):
            with pytest.raises(IllegalTransition):
                transition(item, target, Actor.system())
        db.session.rollback()
    assert load(app, item_id).status == "approved"


def test_escalating_an_escalated_item_is_refused(app: Flask) -> None:
    lead = make_user(app, "lead")
    item_id = make_item(app, make_source(app), status="escalated")
    with app.app_context(), pytest.raises(decisions.DecisionRefused, match="escalated already"):
        decisions.decide(item_id, attach(lead), "escalate", actor(lead), category="csam")


def test_undo_puts_the_item_back_and_gives_it_to_the_decider(app: Flask) -> None:
    moderator = make_user(app)
    item_id = claimed_item(app, moderator)
    with app.app_context():
        user = attach(moderator)
        decision = decisions.decide(item_id, user, "remove", actor(user), category="spam")
        assert [d.id for d in decisions.latest_undoable(moderator.id)] == [decision.id]
        decisions.undo(decision.id, user, actor(user))
        assert db.session.get(Decision, decision.id).undone_at is not None
        assert decisions.latest_undoable(moderator.id) == []
        assert (
            db.session.scalars(
                select(AuditEvent.action).where(AuditEvent.target_id == item_id)
            ).all()[-1]
            == "item.decision_undone"
        )
    item = load(app, item_id)
    assert item.status == "queued" and item.decided_at is None
    assert item.claimed_by_id == moderator.id


def test_undo_is_refused_when_too_late_or_actions_started_or_by_someone_else(app: Flask) -> None:
    moderator, other, lead = make_user(app), make_user(app), make_user(app, "lead")
    first, second, third = (claimed_item(app, moderator) for _ in range(3))
    with app.app_context():
        user = attach(moderator)
        late = decisions.decide(first, user, "approve", actor(user))
        started = decisions.decide(second, user, "approve", actor(user))
        mine = decisions.decide(third, user, "approve", actor(user))
        db.session.execute(
            update(Decision)
            .where(Decision.id == started.id)
            .values(actions_started_at=started.created_at)
        )
        db.session.commit()
        app.config["UNDO_SECONDS"] = 0
        with pytest.raises(decisions.DecisionRefused, match="Too late"):
            decisions.undo(late.id, user, actor(user))
        app.config["UNDO_SECONDS"] = 30
        with pytest.raises(decisions.DecisionRefused, match="Too late"):
            decisions.undo(started.id, user, actor(user))
        with pytest.raises(decisions.DecisionRefused, match="Only the person who decided"):
            decisions.undo(mine.id, attach(other), actor(other))
        decisions.undo(mine.id, attach(lead), actor(lead))
    assert [load(app, i).status for i in (first, second, third)] == [
        "approved",
        "approved",
        "queued",
    ]


def test_bulk_decides_what_it_can_and_says_why_it_skipped_the_rest(app: Flask) -> None:
    moderator, colleague = make_user(app), make_user(app, name="Colleague")
    source = make_source(app)
    free = [make_item(app, source) for _ in range(3)]
    held = make_item(app, source)
    done = make_item(app, source, status="approved")
    with app.app_context():
        claims.claim(held, attach(colleague))
        result = decisions.decide_many(
            [*free, held, done], attach(moderator), "approve", actor(moderator)
        )
        assert sorted(d.item_id for d in result.decisions) == sorted(free)
        assert set(result.skipped) == {held, done}
        assert "Colleague" in result.skipped[held]
        assert len({d.batch_id for d in result.decisions}) == 1
        decisions.undo(result.decisions[0].id, attach(moderator), actor(moderator))
    assert [load(app, item_id).status for item_id in free] == ["queued"] * 3
    assert load(app, held).status == "queued"
    assert sorted(item_id for item_id, _ in DECIDED) == sorted(free)


def test_remove_with_add_to_bank_puts_the_hashes_in_the_bank_and_undo_takes_them_out(
    app: Flask,
) -> None:
    moderator = make_user(app)
    item_id = make_item(app, make_source(app), with_media=True)
    with app.app_context():
        bank = banks.create_bank("Spam seen here", Actor.system(), labels=["spam"])
        db.session.commit()
        bank_id = bank.id
        user = attach(moderator)
        claims.claim(item_id, user)
        decision = decisions.decide(
            item_id, user, "remove", actor(user), category="spam", bank_id=bank_id
        )
        item = db.session.get(Item, item_id)
        entries = {
            (e.signal_type, e.signal)
            for e in db.session.scalars(select(BankEntry).where(BankEntry.bank_id == bank_id))
        }
        assert entries == {("sha256", item.sha256), ("md5", item.md5), ("pdq", item.pdq)}
        decisions.undo(decision.id, user, actor(user))
        assert db.session.scalars(select(BankEntry).where(BankEntry.bank_id == bank_id)).all() == []
        with pytest.raises(decisions.DecisionRefused, match="bank"):
            decisions.decide(item_id, user, "remove", actor(user), category="spam", bank_id=9999)


def test_bank_for_category_and_the_dsa_map_are_configurable(app: Flask) -> None:
    app.config["DSA_CATEGORY_MAP"] = {"spam": "STATEMENT_CATEGORY_SCAMS_AND_FRAUD"}
    with app.app_context():
        bank = banks.create_bank("Spam", Actor.system(), labels=["spam"])
        db.session.commit()
        app.config["BANK_FOR_CATEGORY"] = {"spam": "spam"}
        assert policy.bank_for_category("spam") == bank.id
        assert policy.bank_for_category("hate") is None
        assert policy.dsa_category("spam") == "STATEMENT_CATEGORY_SCAMS_AND_FRAUD"
    assert set(policy.DEFAULT_DSA_CATEGORY_MAP) == set(policy.DEFAULT_POLICY_CATEGORIES)


def test_undoing_an_escalation_follows_the_state_table(app: Flask) -> None:
    from app.services.states import can_transition

    moderator = make_user(app)
    item_id = claimed_item(app, moderator)
    with app.app_context():
        user = attach(moderator)
        decision = decisions.decide(item_id, user, "escalate", actor(user), category="csam")
        if can_transition(Status.ESCALATED, Status.QUEUED):
            decisions.undo(decision.id, user, actor(user))
            assert db.session.get(Item, item_id).status == "queued"
        else:  # the table has no way back yet: refused in words, nothing changed
            with pytest.raises(decisions.DecisionRefused, match="cannot be undone here"):
                decisions.undo(decision.id, user, actor(user))
            assert db.session.get(Item, item_id).status == "escalated"
