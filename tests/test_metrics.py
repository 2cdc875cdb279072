"""Statistics page, queue samples, warnings and the Prometheus endpoint."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient

from app.extensions import db
from app.models.review import Decision
from app.models.scan import ScanResult
from app.models.types import utcnow
from app.services import metrics
from tests.helpers_review import login_as, make_item, make_source, make_user


def decided(app: Flask, minutes: float, outcome: str = "remove", category: str = "spam") -> str:
    """An item that arrived ``minutes`` before a moderator decided it."""
    user = make_user(app, "moderator", name="Ada")
    item_id = make_item(app, make_source(app), status="removed", age_minutes=minutes)
    with app.app_context():
        db.session.add(
            Decision(
                item_id=item_id,
                user_id=user.id,
                outcome=outcome,
                category=category,
                previous_status="queued",
            )
        )
        db.session.commit()
    return item_id


def test_statistics_page_shows_counts_times_and_charts(app: Flask, client: FlaskClient) -> None:
    for minutes in (10, 20, 30):
        decided(app, minutes)
    login_as(client, make_user(app, "lead"))
    html = client.get("/stats/").get_data(as_text=True)
    assert "<svg" in html and "Items received per day" in html
    assert "Median <strong>20.0 min</strong>" in html
    assert "spam" in html and "Ada" in html
    assert "transparency.csv" in html
    login_as(client, make_user(app, "moderator"))
    assert client.get("/stats/").status_code == 403


def test_queue_sample_is_taken_once_per_interval_and_warns_on_backlog(app: Flask, caplog) -> None:
    app.config["QUEUE_BACKLOG_WARN"] = 1
    source_id = make_source(app)
    for _ in range(3):
        make_item(app, source_id, status="queued")
    with app.app_context(), caplog.at_level(logging.WARNING):
        sample = metrics.sample_queue()
        assert sample is not None and sample.queued == 3
        assert metrics.sample_queue() is None  # another consumer already sampled
        assert "queue backlog: 3 items" in caplog.text


def test_slow_scanner_is_named_in_a_warning(app: Flask, caplog) -> None:
    item_id = make_item(app, make_source(app))
    now = utcnow()
    with app.app_context():
        db.session.add(
            ScanResult(
                item_id=item_id,
                scanner="cloudy",
                status="done",
                verdict="clear",
                duration_ms=30_000,
                finished_at=now,
            )
        )
        db.session.commit()
        with caplog.at_level(logging.WARNING):
            assert metrics.warn_slow_scanners(
                now - timedelta(minutes=5), now + timedelta(seconds=1)
            ) == ["cloudy"]
    assert "scanner cloudy is slow" in caplog.text


def test_metrics_answer_loopback_or_the_token_only(app: Flask, client: FlaskClient) -> None:
    decided(app, 5)
    body = client.get("/metrics").get_data(as_text=True)  # the test client is 127.0.0.1
    assert "# TYPE modtools_items gauge" in body and 'modtools_items{status="removed"} 1' in body
    assert 'modtools_decisions_total{outcome="remove"} 1' in body
    outside = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert outside.status_code == 404
    app.config["METRICS_TOKEN"] = "s3cret-token"
    assert client.get("/metrics").status_code == 401
    scraped = client.get(
        "/metrics",
        headers={"Authorization": "Bearer s3cret-token"},
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )
    assert scraped.status_code == 200 and scraped.mimetype == "text/plain"
