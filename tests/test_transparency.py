"""Transparency report: counts for a period, in CSV and JSON, with no personal data."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from app.extensions import db
from app.models.report import AuthorityReport
from app.models.review import Decision
from app.models.rule import Rule, RuleHit
from app.models.types import utcnow
from tests.helpers_review import login_as, make_item, make_source, make_user


def seed(app: Flask) -> None:
    source_id = make_source(app)
    user = make_user(app, "moderator", name="Grace Hopper")
    human = make_item(app, source_id, status="removed", age_minutes=60)
    automated = make_item(app, source_id, status="removed")
    make_item(app, source_id, status="cleared")
    with app.app_context():
        db.session.add(
            Decision(
                item_id=human,
                user_id=user.id,
                outcome="remove",
                category="csam",
                previous_status="queued",
            )
        )
        rule = Rule(name="Known CSAM", outcome="remove", category="csam", enabled=True)
        db.session.add(rule)
        db.session.flush()
        db.session.add(RuleHit(rule_id=rule.id, item_id=automated, outcome="remove"))
        db.session.add(
            AuthorityReport(
                kind="ncmec", status="submitted", item_ids=[human], submitted_at=utcnow()
            )
        )
        db.session.commit()


def test_report_counts_actions_by_category_and_detection_method(
    app: Flask, runner: FlaskCliRunner
) -> None:
    seed(app)
    today = utcnow().date()
    result = runner.invoke(
        args=[
            "transparency",
            "--from",
            str(today - timedelta(days=1)),
            "--to",
            str(today),
            "--format",
            "json",
        ]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["items"]["received"] == 3
    assert report["removals_by_detection_method"] == {"human": 1, "automated": 1}
    assert report["removals_by_category"]["human"] == {"csam": 1}
    assert report["reports_to_authorities"]["ncmec_cybertipline"] == 1
    assert 3500 < report["median_handling_time_seconds"] < 3700
    assert "Grace" not in result.output  # figures only, no people

    earlier = runner.invoke(
        args=["transparency", "--from", "2020-01-01", "--to", "2020-01-31", "--format", "json"]
    )
    assert json.loads(earlier.output)["items"]["received"] == 0


def test_csv_download_for_leads(app: Flask, client: FlaskClient) -> None:
    seed(app)
    login_as(client, make_user(app, "lead"))
    today = utcnow().date()
    response = client.get(f"/stats/transparency.csv?from={today}&to={today}")
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["section", "key", "value"]
    assert ["removals_by_detection_method", "automated", "1"] in rows
    assert ["reports_to_authorities", "ncmec_cybertipline", "1"] in rows
