"""Action runs: the decision → actions mapping and its page, the runs fragment, retry and cancel."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models.action import ActionRun
from app.models.audit import AuditEvent
from app.services import actions, actions_config, decisions
from app.services.audit import Actor
from tests.helpers_review import attach, csrf_of, login_as, make_item, make_source, make_user


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"UNDO_SECONDS": 30}


def remove_csam(app: Flask) -> tuple[str, int]:
    item_id = make_item(app, make_source(app), with_media=True)
    lead = make_user(app, "lead")
    with app.app_context():
        decision = decisions.decide(
            item_id, attach(lead), "remove", Actor.system("test"), category="csam"
        )
        return item_id, decision.id


def runs(app: Flask, item_id: str) -> list[tuple[str, str]]:
    with app.app_context():
        return [(run.action, run.status) for run in actions.runs_for_item(item_id)]


def test_defaults_map_decisions_to_actions(app: Flask):
    with app.app_context():
        assert actions_config.actions_for("remove", "csam") == ["quarantine", "webhook"]
        assert actions_config.actions_for("remove", "spam") == ["webhook"]
        assert actions_config.actions_for("approve", None) == ["webhook"]
        assert actions_config.actions_for("escalate", "csam") == []


def test_runs_wait_for_the_undo_period_and_an_undo_cancels_them(app: Flask):
    item_id, decision_id = remove_csam(app)
    assert runs(app, item_id) == [("quarantine", "queued")]  # no callback URL: no webhook
    lead = make_user(app, "lead")
    with app.app_context():
        decisions.undo(decision_id, attach(lead), Actor.system("test"))
        run = actions.runs_for_item(item_id)[0]
        actions.run_action(run.id)  # the delayed job comes due after the undo
    assert runs(app, item_id) == [("quarantine", "cancelled")]


def test_the_same_decision_never_starts_an_action_twice(app: Flask):
    item_id, decision_id = remove_csam(app)
    with app.app_context():
        assert (
            actions.create_run(item_id, "quarantine", f"decision:{decision_id}:quarantine") is None
        )


def test_the_item_fragment_polls_while_a_run_waits(app: Flask, client: Any):
    item_id, _ = remove_csam(app)
    login_as(client, make_user(app, "moderator"))
    html = client.get(f"/actions/items/{item_id}", headers={"HX-Request": "true"}).get_data(
        as_text=True
    )
    assert "quarantine" in html and 'hx-trigger="every 3s"' in html and "<html" not in html
    assert "Cancel" not in html, "moderators get no lead controls"
    with app.app_context():
        run = actions.runs_for_item(item_id)[0]
        actions.run_action(run.id)  # quarantines now: the undo period is not checked here
    html = client.get(f"/actions/items/{item_id}").get_data(as_text=True)
    assert "succeeded" in html and "every 3s" not in html and "<html" in html


def test_a_lead_cancels_a_queued_run_and_retries_it(app: Flask, client: Any):
    item_id, _ = remove_csam(app)
    with app.app_context():
        run_id = actions.runs_for_item(item_id)[0].id
    login_as(client, make_user(app, "moderator"))
    token = csrf_of(client)
    assert (
        client.post(f"/actions/runs/{run_id}/cancel", headers={"X-CSRFToken": token}).status_code
        == 403
    )
    login_as(client, make_user(app, "lead"))
    token = csrf_of(client)
    answer = client.post(f"/actions/runs/{run_id}/cancel", headers={"X-CSRFToken": token})
    assert answer.status_code == 200 and "cancelled" in answer.get_data(as_text=True)
    assert (
        client.post(f"/actions/runs/{run_id}/cancel", headers={"X-CSRFToken": token}).status_code
        == 409
    )
    answer = client.post(f"/actions/runs/{run_id}/retry", headers={"X-CSRFToken": token})
    assert answer.status_code == 200
    assert runs(app, item_id) == [("quarantine", "succeeded")]  # retried at once
    with app.app_context():
        events = db.session.scalars(
            select(AuditEvent.action).where(AuditEvent.action.like("action.%"))
        ).all()
    assert "action.cancelled" in events and "action.retried" in events


def test_admins_configure_the_mapping_and_moderators_cannot(app: Flask, client: Any):
    login_as(client, make_user(app, "moderator"))
    assert client.get("/admin/actions").status_code == 403
    login_as(client, make_user(app, "admin"))
    page = client.get("/admin/actions").get_data(as_text=True)
    assert 'name="map-remove-csam" value="quarantine" checked' in page
    token = csrf_of(client, "/admin/actions")
    assert client.post("/admin/actions", data={"map-remove-spam": "email"}).status_code == 400
    answer = client.post(
        "/admin/actions", data={"csrf_token": token, "map-remove-spam": ["email", "webhook"]}
    )
    assert answer.status_code == 303
    with app.app_context():
        assert actions_config.actions_for("remove", "spam") == ["email", "webhook"]
        assert actions_config.actions_for("remove", "csam") == []
    answer = client.post("/admin/actions", data={"csrf_token": token, "map-remove-spam": "nope"})
    assert answer.status_code == 400 and "No action is installed" in answer.get_data(as_text=True)


def test_max_attempts_cover_the_retry_window():
    assert actions.max_attempts_for(24) > actions.max_attempts_for(1) > 5
    assert actions.webhook_id("decision:1:webhook") == actions.webhook_id("decision:1:webhook")
    assert "." not in actions.webhook_id("a.b")


def test_every_run_is_a_row_with_a_unique_key(app: Flask):
    _, decision_id = remove_csam(app)
    with app.app_context():
        keys = db.session.scalars(select(ActionRun.idempotency_key)).all()
    assert keys == [f"decision:{decision_id}:quarantine"]
