"""Rules: order, all/any, each condition type, hits, automated removals, defaults, the editor."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models.audit import AuditEvent
from app.models.review import Decision
from app.models.rule import Rule, RuleHit
from app.models.scan import ScanResult
from app.services import rules, rules_editing
from app.services.audit import Actor
from app.services.pipeline import route_when_complete
from tests.helpers_review import csrf_of, load, login_as, make_item, make_source, make_user

FLAG = [{"name": "nudity", "score": 0.93, "category": "adult_nudity"}]
CSAM = [
    {"bank_id": 1, "bank_name": "List", "labels": ["csam"], "signal_type": "pdq", "distance": 6}
]


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"UNDO_SECONDS": 0}


def rule(
    app: Flask, name: str, conditions: list[dict[str, Any]], outcome: str = "queue", **fields: Any
) -> int:
    with app.app_context():
        made = Rule(name=name, conditions=conditions, outcome=outcome, enabled=True, **fields)
        db.session.add(made)
        db.session.commit()
        return made.id


def scanned(
    app: Flask, verdict: str = "flag", labels: Any = FLAG, matches: Any = (), **item: Any
) -> str:
    """An item whose one scanner just finished; routes it as the pipeline would."""
    item_id = make_item(
        app,
        item.pop("source_id", None) or make_source(app),
        status="scanning",
        with_media=True,
        **item,
    )
    with app.app_context():
        db.session.add(
            ScanResult(
                item_id=item_id,
                scanner="vendor",
                status="done",
                verdict=verdict,
                labels=list(labels),
                matches=list(matches),
            )
        )
        db.session.commit()
        route_when_complete(item_id, 1)
        db.session.commit()
    return item_id


def test_no_rule_keeps_the_default_routing(app: Flask):
    assert load(app, scanned(app)).status == "queued"
    assert load(app, scanned(app, "clear", [])).status == "cleared"


def test_the_first_matching_rule_in_order_decides(app: Flask):
    first = rule(
        app,
        "Nudity escalates",
        [{"type": "label", "name": "nudity"}],
        "escalate",
        position=1,
        priority=80,
    )
    rule(app, "Everything clears", [{"type": "scanner", "name": ""}], "clear", position=2)
    item = load(app, scanned(app))
    assert (item.status, item.priority, item.status_reason) == (
        "escalated",
        80,
        "rule “Nudity escalates”",
    )
    assert load(app, scanned(app, "clear", [])).status == "cleared"
    with app.app_context():
        assert db.session.get(Rule, first).hit_count == 1
        assert db.session.scalar(select(RuleHit.rule_id).where(RuleHit.item_id == item.id)) == first


def test_disabled_rules_are_skipped(app: Flask):
    rule_id = rule(app, "Off", [{"type": "label", "name": "nudity"}], "clear")
    with app.app_context():
        db.session.get(Rule, rule_id).enabled = False
        db.session.commit()
    assert load(app, scanned(app)).status == "queued"


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"type": "scanner", "name": "vendor", "value": "match"}, True),
        ({"type": "scanner", "name": "vendor", "value": "flag"}, False),
        ({"type": "category", "name": "adult_nudity"}, True),
        ({"type": "category", "name": "violence_gore"}, False),
        ({"type": "label", "name": "nudity"}, True),
        ({"type": "score", "name": "nudity", "op": ">=", "value": 0.9}, True),
        ({"type": "score", "name": "adult_nudity", "op": ">=", "value": 0.95}, False),
        ({"type": "score", "name": "nudity", "op": "<=", "value": 0.95}, True),
        ({"type": "bank", "name": "csam"}, True),
        ({"type": "bank", "name": "terror"}, False),
        ({"type": "distance", "value": 8}, True),
        ({"type": "distance", "value": 5}, False),
        ({"type": "source", "name": "wrong-slug"}, False),
        ({"type": "uploader_removed", "value": 1}, False),
    ],
)
def test_each_condition_type(app: Flask, condition: dict[str, Any], expected: bool):
    rule(app, "Under test", [condition], "escalate")
    item_id = scanned(app, "match", FLAG, CSAM)
    assert (load(app, item_id).status == "escalated") is expected


def test_source_and_uploader_history(app: Flask):
    source_id = make_source(app, "Chat")
    make_item(app, source_id, status="removed", uploader_id="u1")
    make_item(app, source_id, status="removed", uploader_id="u1")
    with app.app_context():
        from app.models.source import Source

        slug = db.session.get(Source, source_id).slug
    rule(
        app,
        "Repeat offender here",
        [{"type": "source", "name": slug}, {"type": "uploader_removed", "value": 2}],
        "escalate",
    )
    assert load(app, scanned(app, source_id=source_id, uploader_id="u1")).status == "escalated"
    assert load(app, scanned(app, source_id=source_id, uploader_id="u2")).status == "queued"


def test_all_and_any(app: Flask):
    conditions = [{"type": "label", "name": "nudity"}, {"type": "label", "name": "gore"}]
    rule_id = rule(app, "Both", conditions, "escalate", match="all")
    assert load(app, scanned(app)).status == "queued"
    with app.app_context():
        db.session.get(Rule, rule_id).match = "any"
        db.session.commit()
    assert load(app, scanned(app)).status == "escalated"


def test_an_automated_removal_is_recorded_as_automated(app: Flask):
    rule(
        app,
        "Known bad",
        [{"type": "bank", "name": "csam"}],
        "remove",
        category="csam",
        actions=["quarantine"],
    )
    item_id = scanned(app, "match", [], CSAM)
    assert load(app, item_id).status == "removed"
    with app.app_context():
        decision = db.session.scalar(select(Decision).where(Decision.item_id == item_id))
        assert decision.user_id is None and decision.category == "csam"
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "rule.applied"))
        assert event.details["automated"] is True
        from app.services import actions

        run = actions.runs_for_item(item_id)[0]
        assert (run.action, run.status, run.rule_id) == (
            "quarantine",
            "queued",
            decision.id and run.rule_id,
        )
        actions.dispatch_pending(item_id)  # what the item_scanned event does after the commit
        assert actions.runs_for_item(item_id)[0].status == "succeeded"


def test_defaults_are_created_once(app: Flask, client: Any):
    login_as(client, make_user(app, "admin"))
    page = client.get("/admin/rules").get_data(as_text=True)
    assert "Known CSAM" in page and "Any classifier flag" in page
    with app.app_context():
        for made in db.session.scalars(select(Rule)):
            db.session.delete(made)
        db.session.commit()
    assert "Known CSAM" not in client.get("/admin/rules").get_data(as_text=True)
    with app.app_context():
        assert not rules_editing.ensure_defaults(Actor.system("test"))


def test_default_csam_rule_escalates_and_quarantines(app: Flask):
    with app.app_context():
        rules_editing.ensure_defaults(Actor.system("test"))
    item_id = scanned(app, "match", [], CSAM)
    assert load(app, item_id).status == "escalated"
    with app.app_context():
        from app.services import actions

        assert [r.action for r in actions.runs_for_item(item_id)] == ["quarantine"]


FORM = {
    "name": "Gore",
    "match": "all",
    "cond_type": "score",
    "cond_name": "nudity",
    "cond_op": ">=",
    "cond_value": "0.9",
    "outcome": "escalate",
    "priority": "70",
}


def test_the_editor_validates_and_saves(app: Flask, client: Any):
    login_as(client, make_user(app, "moderator"))
    assert client.get("/admin/rules").status_code == 403
    login_as(client, make_user(app, "admin"))
    token = csrf_of(client, "/admin/rules/new")
    assert client.post("/admin/rules/new", data=FORM).status_code == 400  # no CSRF token
    bad = client.post(
        "/admin/rules/new", data={**FORM, "csrf_token": token, "name": "", "cond_value": "lots"}
    )
    text = bad.get_data(as_text=True)
    assert bad.status_code == 400 and "Give the rule a name" in text and "enter a number" in text
    removal = client.post(
        "/admin/rules/new", data={**FORM, "csrf_token": token, "outcome": "remove"}
    )
    assert "needs a policy category" in removal.get_data(as_text=True)
    assert client.post("/admin/rules/new", data={**FORM, "csrf_token": token}).status_code == 303
    with app.app_context():
        saved = db.session.scalar(select(Rule).where(Rule.name == "Gore"))
        assert saved.conditions == [{"type": "score", "name": "nudity", "op": ">=", "value": 0.9}]
        assert saved.enabled is False and saved.priority == 70
    row = client.get("/admin/rules/condition-row", headers={"HX-Request": "true"})
    assert 'name="cond_type"' in row.get_data(as_text=True)


def test_dry_run_shows_what_the_rule_would_have_done(app: Flask, client: Any):
    scanned(app)
    scanned(app, "clear", [])
    login_as(client, make_user(app, "admin"))
    token = csrf_of(client, "/admin/rules/new")
    answer = client.post(
        "/admin/rules/dry-run", data=FORM, headers={"X-CSRFToken": token, "HX-Request": "true"}
    )
    text = answer.get_data(as_text=True)
    assert "Of the last 2 scanned items" in text and "<strong>1</strong>" in text
    assert "escalated" in text
    with app.app_context():
        assert db.session.scalar(select(Rule.id)) is None, "a dry run saves nothing"
        assert rules.ordered_rules() == []
