"""CyberTipline reports against the fake NCMEC: prepare from the item page, complete, submit,
failures shown and stored, resume without a second report, retract, XSD checks, evidence hold.
All report contents are synthetic; the images are generated test scenes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

from app.extensions import db
from app.models.action import ItemHold
from app.models.report import AuthorityReport
from app.models.types import utcnow
from app.services import plugin_settings, reports
from app.services.audit import Actor
from plugins.ncmec.xml import schema
from tests.fakes import running
from tests.fakes.ncmec import PASSWORD, USERNAME, FakeNcmec
from tests.helpers_review import csrf_of, login_as, make_item, make_source, make_user

POSTED = "2025-03-01T14:05:00+00:00"


@pytest.fixture
def ncmec(app: Flask) -> Iterator[FakeNcmec]:
    with running(FakeNcmec()) as fake:
        configure(app, fake.url + "/ispws")
        yield fake


def configure(app: Flask, base_url: str, password: str = PASSWORD) -> None:
    """Save the plugin's settings as an admin would (synthetic reporter details)."""
    with app.app_context():
        plugin_settings.save_settings(
            "ncmec_report",
            {
                "environment": "test",
                "base_url": base_url,
                "username": USERNAME,
                "password": password,
                "reporter_first_name": "Test",
                "reporter_last_name": "Lead",
                "reporter_email": "safety@example.org",
                "platform": "Example Forum",
            },
            set(),
            Actor.system("test"),
        )


def removed_items(app: Flask, count: int = 1) -> list[str]:
    """Removed items by one (synthetic) uploader, each with a generated image."""
    source = make_source(app, "Forum")
    return [
        make_item(
            app,
            source,
            status="removed",
            with_media=True,
            uploader_id="user-77",
            uploader_name="synthetic-user",
            uploader_ip="192.0.2.10",
            context_url=f"https://forum.example/t/{n}",
        )
        for n in range(count)
    ]


def lead_client(app: Flask, client: FlaskClient) -> tuple[FlaskClient, str]:
    login_as(client, make_user(app, "lead"))
    return client, csrf_of(client)


def prepare(client: FlaskClient, token: str, item_id: str, **form: str) -> int:
    answer = client.post(f"/reports/ncmec/{item_id}", data={"csrf_token": token, **form})
    assert answer.status_code == 303
    return int(answer.headers["Location"].rstrip("/").rsplit("/", 1)[1])


def complete(
    client: FlaskClient, token: str, report_id: int, then: str = "submit", **extra: str
) -> Any:
    page = client.get(f"/reports/{report_id}").get_data(as_text=True)
    assert "Incident type" in page and "Must be in the past" in page  # each field is explained
    form = {
        "csrf_token": token,
        "incident_type": "Child Pornography (possession, manufacture, and distribution)",
        "incident_datetime": POSTED,
        "reporter_email": "safety@example.org",
        "then": then,
        "user_id": "user-77",
        "user_ip": "192.0.2.10",
        "user_ip_at": POSTED,
        "urls": "https://forum.example/t/0",
    }
    form.update(extra)
    return client.post(f"/reports/{report_id}", data=form, follow_redirects=True)


def report_row(app: Flask, report_id: int) -> AuthorityReport:
    with app.app_context():
        row = db.session.get(AuthorityReport, report_id)
        db.session.expunge(row)
        return row


def test_lead_prepares_completes_and_submits_from_the_item_page(
    app: Flask, client: FlaskClient, ncmec: FakeNcmec
) -> None:
    item_id, other = removed_items(app, 2)
    client, token = lead_client(app, client)
    card = client.get(f"/reports/items/{item_id}").get_data(as_text=True)
    assert "Prepare a CyberTipline report" in card and "1 other removed item" in card
    report_id = prepare(client, token, item_id, include_uploader="1")
    page = complete(client, token, report_id).get_data(as_text=True)
    row = report_row(app, report_id)
    assert row.status == "submitted" and row.report_id == "4564654"
    assert f"Submitted to NCMEC: report {row.report_id}" in page and row.report_id in page
    assert set(row.file_ids) == {item_id, other} and all(
        len(f["file_id"]) == 32 for f in row.file_ids.values()
    )
    assert [r["step"] for r in row.responses] == [
        "submit",
        "upload",
        "fileinfo",
        "upload",
        "fileinfo",
        "finish",
    ]
    assert all(r["code"] == 0 for r in row.responses)
    sent = ncmec.reports[row.report_id]
    assert sent.state == "finished" and len(sent.files) == 2 and len(sent.details) == 2
    for document in [sent.xml, *sent.details.values()]:  # every document we sent validates
        assert schema().validate(etree.fromstring(document))
    assert b"<espIdentifier>user-77</espIdentifier>" in sent.xml
    assert b"<ipAddress>192.0.2.10</ipAddress>" in sent.xml


def test_evidence_is_held_for_one_year(app: Flask, client: FlaskClient, ncmec: FakeNcmec) -> None:
    (item_id,) = removed_items(app)
    client, token = lead_client(app, client)
    complete(client, token, prepare(client, token, item_id))
    with app.app_context():
        hold = db.session.get(ItemHold, item_id)
        assert hold.evidence_hold_until > utcnow() + timedelta(days=364)
        from app.models.item import Item

        assert reports.is_under_evidence_hold(db.session.get(Item, item_id))


@pytest.mark.parametrize(
    "behaviour,step,code",
    [
        ("3100", "submit", 3100),
        ("1111", "upload", 1111),
        ("1000", "fileinfo", 1000),
        ("1100", "finish", 1100),
    ],
)
def test_each_failing_step_is_shown_and_stored(
    app: Flask, client: FlaskClient, ncmec: FakeNcmec, behaviour: str, step: str, code: int
) -> None:
    (item_id,) = removed_items(app)
    client, token = lead_client(app, client)
    report_id = prepare(client, token, item_id)
    steps = ["submit", "upload", "fileinfo", "finish"]
    ncmec.upcoming = [None] * steps.index(step) + [behaviour]  # type: ignore[list-item]
    page = complete(client, token, report_id).get_data(as_text=True)
    row = report_row(app, report_id)
    assert row.status == "failed" and f"code {code}" in row.error
    assert row.responses[-1]["step"] == step and row.responses[-1]["code"] == code
    assert "Not submitted" in page and f"code {code}" in page
    if step != "submit":
        assert "Resume submission" in page and "Retract" in page


def test_a_crash_after_submit_resumes_without_submitting_twice(
    app: Flask, client: FlaskClient, ncmec: FakeNcmec
) -> None:
    (item_id,) = removed_items(app)
    client, token = lead_client(app, client)
    report_id = prepare(client, token, item_id)
    ncmec.upcoming = [None, "crash"]  # submit works, the upload's answer is lost
    complete(client, token, report_id)
    assert report_row(app, report_id).status == "failed"
    client.post(f"/reports/{report_id}/submit", data={"csrf_token": token})
    client.post(f"/reports/{report_id}/submit", data={"csrf_token": token})  # a double click
    row = report_row(app, report_id)
    assert row.status == "submitted" and ncmec.calls("/ispws/submit") == 1
    assert ncmec.calls("/ispws/finish") == 1


def test_retract_an_unfinished_report(app: Flask, client: FlaskClient, ncmec: FakeNcmec) -> None:
    (item_id,) = removed_items(app)
    client, token = lead_client(app, client)
    report_id = prepare(client, token, item_id)
    ncmec.upcoming = [None, "1111"]
    complete(client, token, report_id)
    page = client.post(
        f"/reports/{report_id}/retract", data={"csrf_token": token}, follow_redirects=True
    )
    row = report_row(app, report_id)
    assert row.status == "retracted" and ncmec.reports[row.report_id].state == "retracted"
    assert "Retracted" in page.get_data(as_text=True)
    assert row.responses[-1]["step"] == "retract" and row.responses[-1]["code"] == 0


def test_an_invalid_report_is_not_sent(app: Flask, client: FlaskClient, ncmec: FakeNcmec) -> None:
    (item_id,) = removed_items(app)
    client, token = lead_client(app, client)
    report_id = prepare(client, token, item_id)
    complete(client, token, report_id, then="save")
    with app.app_context():  # a value the schema refuses, however it got there
        row = db.session.get(AuthorityReport, report_id)
        row.form = {**row.form, "incident_datetime": "yesterday"}
        db.session.commit()
    page = client.post(
        f"/reports/{report_id}/submit", data={"csrf_token": token}, follow_redirects=True
    )
    text = page.get_data(as_text=True)
    assert (
        "does not match NCMEC&#39;s schema, nothing was sent" in text and "incidentDateTime" in text
    )
    assert ncmec.calls("/ispws/submit") == 0
    row = report_row(app, report_id)
    assert (
        row.status == "failed" and row.report_id is None and row.responses[-1]["step"] == "validate"
    )


def test_form_errors_say_how_to_fix_them(app: Flask, client: FlaskClient, ncmec: FakeNcmec) -> None:
    (item_id,) = removed_items(app)
    client, token = lead_client(app, client)
    report_id = prepare(client, token, item_id)
    answer = complete(
        client, token, report_id, incident_datetime="2999-01-01T00:00:00+00:00", reporter_email=""
    )
    assert answer.status_code == 422
    text = answer.get_data(as_text=True)
    assert "Give a past date and time" in text and "Your email is required" in text
    assert ncmec.calls("/ispws/submit") == 0


def test_wrong_password_is_shown(app: Flask, client: FlaskClient, ncmec: FakeNcmec) -> None:
    configure(app, ncmec.url + "/ispws", password="wrong")
    (item_id,) = removed_items(app)
    client, token = lead_client(app, client)
    text = complete(client, token, prepare(client, token, item_id)).get_data(as_text=True)
    assert "refused the username or password" in text


def test_the_action_prepares_a_draft_and_never_submits(app: Flask, ncmec: FakeNcmec) -> None:
    (item_id,) = removed_items(app)
    with app.app_context():
        from app.models.item import Item
        from app.plugins import ActionContext, current_plugins

        action = current_plugins().actions["ncmec_report"]
        item = db.session.get(Item, item_id)
        first = action.run(ActionContext(item=item, decision=None, settings={}))
        again = action.run(ActionContext(item=item, decision=None, settings={}))
        assert first.ok and first.reference == again.reference
        assert db.session.query(AuthorityReport).one().status == "draft"
    assert ncmec.requests == []
