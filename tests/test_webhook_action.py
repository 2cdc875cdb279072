"""The webhook action: signed callbacks a platform verifies with the Standard Webhooks library."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models.action import ActionRun, WebhookDelivery
from app.models.review import Decision
from app.models.types import utcnow
from app.services import actions, decisions, sources
from app.services.audit import Actor
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.helpers_review import attach, csrf_of, login_as, make_item, make_user
from tests.pipeline_helpers import only_scanners, run_job_now, scan

LOOPBACK = {"CALLBACK_ALLOW_NETWORKS": ["127.0.0.0/8"], "UNDO_SECONDS": 0}


@pytest.fixture
def app_config() -> dict[str, Any]:
    return dict(LOOPBACK)


@pytest.fixture
def receiver(app: Flask) -> Iterator[WebhookReceiver]:
    fake = WebhookReceiver(secret="").start()
    yield fake
    fake.stop()


def platform(app: Flask, receiver: WebhookReceiver) -> int:
    """A source whose callbacks go to the fake receiver, which learns the source's secret."""
    with app.app_context():
        source, _, secret = sources.create_source(
            "Forum", "generic", Actor.system("test"), callback_url=receiver.url
        )
        db.session.commit()
        receiver.secret = secret
        return source.id


def decide(app: Flask, item_id: str, outcome: str = "approve", category: str | None = None) -> int:
    lead = make_user(app, "lead")
    with app.app_context():
        decision = decisions.decide(
            item_id, attach(lead), outcome, Actor.system("test"), category=category
        )
        return decision.id


def webhook_run(app: Flask, item_id: str) -> ActionRun:
    with app.app_context():
        run = db.session.scalar(
            select(ActionRun).where(ActionRun.item_id == item_id, ActionRun.action == "webhook")
        )
        assert run is not None
        db.session.expunge(run)
        return run


def job_of(app: Flask, run_id: int) -> str:
    from app.models.job import Job

    with app.app_context():
        jobs = db.session.scalars(select(Job).where(Job.name == actions.ACTION_JOB)).all()
        return [job.id for job in jobs if job.args == [run_id]][-1]


def test_a_decision_is_delivered_signed_and_verifiable(app: Flask, receiver: WebhookReceiver):
    item_id = make_item(app, platform(app, receiver), with_media=True)
    decision_id = decide(app, item_id)
    assert len(receiver.received) == 1
    delivery = receiver.received[0]
    assert delivery.verified, "the reference library must accept our signature"
    assert delivery.headers["webhook-signature"].startswith("v1,")
    assert delivery.payload["type"] == "item.decided"
    data = delivery.payload["data"]
    assert data["item_id"] == item_id and data["decision"]["outcome"] == "approve"
    assert data["decision"]["automated"] is False
    text = delivery.body.decode()
    assert receiver.secret not in text and "whsec_" not in text and "sha256" not in text
    run = webhook_run(app, item_id)
    assert run.status == "succeeded" and run.external_ref == delivery.headers["webhook-id"]
    with app.app_context():
        logged = db.session.scalars(select(WebhookDelivery)).all()
        assert [(row.status_code, row.event) for row in logged] == [(200, "item.decided")]
        assert db.session.get(Decision, decision_id).actions_started_at is not None


def test_undo_is_refused_once_actions_started(app: Flask, receiver: WebhookReceiver):
    item_id = make_item(app, platform(app, receiver))
    decision_id = decide(app, item_id)
    lead = make_user(app, "lead")
    with app.app_context(), pytest.raises(decisions.DecisionRefused, match="actions have started"):
        decisions.undo(decision_id, attach(lead), Actor.system("test"))


def test_failures_are_retried_with_the_same_webhook_id(app: Flask, receiver: WebhookReceiver):
    receiver.fail_times = 2
    item_id = make_item(app, platform(app, receiver))
    decide(app, item_id)
    run = webhook_run(app, item_id)
    assert run.status == "queued" and run.next_attempt_at is not None and "HTTP 500" in run.error
    run_job_now(app, job_of(app, run.id))
    run_job_now(app, job_of(app, run.id))
    assert webhook_run(app, item_id).status == "succeeded"
    assert len(receiver.received) == 3 and len(set(receiver.ids())) == 1
    with app.app_context():
        codes = db.session.scalars(
            select(WebhookDelivery.status_code).order_by(WebhookDelivery.id)
        ).all()
    assert codes == [500, 500, 200]


def test_retries_stop_after_the_window(app: Flask, receiver: WebhookReceiver):
    receiver.status = 503
    item_id = make_item(app, platform(app, receiver))
    decide(app, item_id)
    run = webhook_run(app, item_id)
    assert run.status == "queued"
    assert run.max_attempts == actions.max_attempts_for(24) and run.max_attempts > 20
    with app.app_context():
        stored = db.session.get(ActionRun, run.id)
        stored.window_started_at = stored.created_at = utcnow() - timedelta(hours=25)
        db.session.commit()
    run_job_now(app, job_of(app, run.id))
    run = webhook_run(app, item_id)
    assert run.status == "failed" and "Gave up" in run.error


def test_a_crash_between_sending_and_recording_repeats_the_same_id(
    app: Flask, receiver: WebhookReceiver
):
    item_id = make_item(app, platform(app, receiver))
    decide(app, item_id)
    run = webhook_run(app, item_id)
    with app.app_context():  # as if the worker died after the POST, before the "succeeded" mark
        db.session.get(ActionRun, run.id).status = "running"
        db.session.commit()
        actions.run_action(run.id)
    assert len(receiver.received) == 2
    assert receiver.ids()[0] == receiver.ids()[1], "the receiver must be able to dedupe"


def test_the_timeout_counts_as_a_failed_attempt(app: Flask, receiver: WebhookReceiver):
    app.config["CALLBACK_TIMEOUT"] = 0.3
    receiver.delay = 1.0
    item_id = make_item(app, platform(app, receiver))
    decide(app, item_id)
    run = webhook_run(app, item_id)
    assert run.status == "queued" and run.attempts == 1


def test_private_addresses_are_refused_without_the_allow_list(
    app: Flask, receiver: WebhookReceiver
):
    app.config["CALLBACK_ALLOW_NETWORKS"] = []
    item_id = make_item(app, platform(app, receiver))
    decide(app, item_id)
    run = webhook_run(app, item_id)
    assert run.status == "failed" and "not a public internet address" in run.error
    assert receiver.received == []


def test_a_lead_redelivers_and_a_moderator_cannot(
    app: Flask, client: Any, receiver: WebhookReceiver
):
    item_id = make_item(app, platform(app, receiver))
    decide(app, item_id)
    run = webhook_run(app, item_id)
    moderator = make_user(app, "moderator")
    login_as(client, moderator)
    token = csrf_of(client)
    assert (
        client.post(f"/actions/runs/{run.id}/redeliver", headers={"X-CSRFToken": token}).status_code
        == 403
    )
    login_as(client, make_user(app, "lead"))
    token = csrf_of(client)
    assert client.post(f"/actions/runs/{run.id}/redeliver").status_code == 400  # no CSRF token
    answer = client.post(f"/actions/runs/{run.id}/redeliver", headers={"X-CSRFToken": token})
    assert answer.status_code == 200 and "succeeded" in answer.get_data(as_text=True)
    assert len(receiver.received) == 2 and len(set(receiver.ids())) == 1


def test_the_pipeline_sends_item_scanned(app: Flask, receiver: WebhookReceiver):
    source_id = platform(app, receiver)
    only_scanners(app)
    item_id = make_item(app, source_id, status="received", with_media=True)
    scan(app, item_id)
    assert [d.payload["type"] for d in receiver.received] == ["item.scanned"]
    assert receiver.received[0].payload["data"]["status"] == "cleared"
