"""DSA statements of reasons against the fake Transparency Database: single and batch filing for
an EU source, 422 field errors shown, a duplicate PUID recorded as already filed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.extensions import db
from app.models.item import Item
from app.models.report import AuthorityReport
from app.models.review import Decision
from app.plugins import ActionContext, current_plugins
from app.services import plugin_settings
from app.services.audit import Actor
from tests.fakes import running
from tests.fakes.dsa import TOKEN, FakeDsa
from tests.helpers_review import add_scan, csrf_of, login_as, make_item, make_source, make_user


@pytest.fixture
def dsa(app: Flask) -> Iterator[FakeDsa]:
    with running(FakeDsa()) as fake:
        with app.app_context():
            plugin_settings.save_settings(
                "dsa_statement", {"base_url": fake.url, "token": TOKEN}, set(), Actor.system("test")
            )
        yield fake


def removed(app: Flask, source: int, category: str = "adult_nudity", by_rule: bool = False) -> str:
    """A removed item with its removal decision (by a person, or by a rule)."""
    item_id = make_item(app, source, status="removed", with_media=True)
    user = None if by_rule else make_user(app, "moderator").id
    with app.app_context():
        from app.services.policy import dsa_category

        db.session.add(
            Decision(
                item_id=item_id,
                user_id=user,
                outcome="remove",
                category=category,
                dsa_category=dsa_category(category),
                previous_status="queued",
            )
        )
        db.session.commit()
    return item_id


def run_action(app: Flask, item_id: str, **settings: object) -> object:
    with app.app_context():
        item = db.session.get(Item, item_id)
        decision = db.session.query(Decision).filter_by(item_id=item_id).one()
        action = current_plugins().actions["dsa_statement"]
        return action.run(
            ActionContext(item=item, decision=decision, settings={"automatic": True, **settings})
        )


def statement(app: Flask, item_id: str) -> AuthorityReport:
    with app.app_context():
        row = db.session.query(AuthorityReport).filter_by(puid=f"modtools-{item_id}").one()
        db.session.expunge(row)
        return row


def test_a_removal_on_an_eu_source_is_filed(app: Flask, dsa: FakeDsa) -> None:
    source = make_source(app, "EU Forum", dsa_enabled=True, territorial_scope="DE, FR")
    item_id = removed(app, source, "csam", by_rule=True)
    add_scan(app, item_id, "hashbank", "match")
    outcome = run_action(app, item_id)
    row = statement(app, item_id)
    assert outcome.ok and row.status == "submitted" and row.report_id
    sent = dsa.stored[f"modtools-{item_id}"]
    assert sent["decision_ground"] == "DECISION_GROUND_ILLEGAL_CONTENT"
    assert sent["category"] == "STATEMENT_CATEGORY_PROTECTION_OF_MINORS"
    assert (
        sent["automated_detection"] == "Yes"
        and sent["automated_decision"] == "AUTOMATED_DECISION_FULLY"
    )
    assert sent["territorial_scope"] == ["DE", "FR"] and sent["content_type"] == [
        "CONTENT_TYPE_IMAGE"
    ]


def test_a_source_outside_the_eu_files_nothing(app: Flask, dsa: FakeDsa) -> None:
    item_id = removed(app, make_source(app, "US Forum"))
    assert run_action(app, item_id).ok and dsa.requests == []


def test_a_duplicate_puid_is_recorded_as_already_filed(app: Flask, dsa: FakeDsa) -> None:
    item_id = removed(app, make_source(app, "EU Forum", dsa_enabled=True))
    dsa.stored[f"modtools-{item_id}"] = {
        "uuid": "11111111-2222-3333-4444-555555555555",
        "puid": f"modtools-{item_id}",
    }
    outcome = run_action(app, item_id)
    row = statement(app, item_id)
    assert (
        outcome.ok
        and row.status == "submitted"
        and row.report_id == "11111111-2222-3333-4444-555555555555"
    )
    assert "already filed" in row.responses[-1]["note"]


def test_validation_errors_are_shown_to_the_lead(
    app: Flask, client: FlaskClient, dsa: FakeDsa
) -> None:
    item_id = removed(app, make_source(app, "EU Forum", dsa_enabled=True))
    with app.app_context():  # a category the 2025-07-01 schema removed
        decision = db.session.query(Decision).filter_by(item_id=item_id).one()
        decision.dsa_category = "STATEMENT_CATEGORY_PORNOGRAPHY_OR_SEXUALIZED_CONTENT"
        db.session.commit()
    assert not run_action(app, item_id).ok
    row = statement(app, item_id)
    assert row.status == "failed" and "category: The selected category is invalid." in row.error
    login_as(client, make_user(app, "lead"))
    page = client.get(f"/reports/{row.id}").get_data(as_text=True)
    assert "The selected category is invalid." in page
    listing = client.get("/reports/?kind=dsa").get_data(as_text=True)
    assert "failed" in listing and "The selected category is invalid." in listing


def test_pending_statements_are_filed_as_a_batch(
    app: Flask, client: FlaskClient, dsa: FakeDsa
) -> None:
    source = make_source(app, "EU Forum", dsa_enabled=True)
    items = [removed(app, source) for _ in range(3)]
    for item_id in items:
        run_action(app, item_id, automatic=False)
    assert dsa.requests == []
    login_as(client, make_user(app, "lead"))
    token = csrf_of(client)
    page = client.post("/reports/dsa/pending", data={"csrf_token": token}, follow_redirects=True)
    assert "3 filed, 0 refused" in page.get_data(as_text=True)
    assert [r.path for r in dsa.requests] == ["/api/v1/statements"]
    assert all(statement(app, i).status == "submitted" for i in items)


def test_a_refused_batch_stores_none_and_says_which(
    app: Flask, client: FlaskClient, dsa: FakeDsa
) -> None:
    source = make_source(app, "EU Forum", dsa_enabled=True)
    items = [removed(app, source) for _ in range(2)]
    for item_id in items:
        run_action(app, item_id, automatic=False)
    with app.app_context():
        row = db.session.query(AuthorityReport).filter_by(puid=f"modtools-{items[1]}").one()
        row.form = {**row.form, "automated_decision": "MAYBE"}
        db.session.commit()
    login_as(client, make_user(app, "lead"))
    client.post("/reports/dsa/pending", data={"csrf_token": csrf_of(client)})
    first, second = statement(app, items[0]), statement(app, items[1])
    assert dsa.stored == {}
    assert "automated_decision: The selected automated decision is invalid." in second.error
    assert first.status == "failed" and "another statement in the same batch" in first.error
