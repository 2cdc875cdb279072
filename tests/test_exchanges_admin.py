"""The admin's exchange tools: pages to set one up, edit it, fetch now and see how fetches went,
who may use them, the command line, and the audit trail."""

from __future__ import annotations

import json
import secrets
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from app.extensions import db
from app.models.audit import AuditEvent
from app.models.exchange import Exchange
from app.services import banks, exchanges
from app.services.audit import Actor
from tests.conftest import csrf_token
from tests.fakes import running, stopncii
from tests.helpers_ui import create_user, inline_code, login_as, main_nav_labels

SYSTEM = Actor.system("test")


def as_admin(app: Flask, client: FlaskClient) -> FlaskClient:
    login_as(client, create_user(app, "admin"))
    return client


def post(client: FlaskClient, path: str, data: dict[str, str], **kwargs: object) -> object:
    token = csrf_token(client, "/admin/exchanges")
    return client.post(path, data={"csrf_token": token, **data}, **kwargs)


def make_bank(app: Flask, name: str = "NCII") -> int:
    with app.app_context():
        bank = banks.create_bank(name, SYSTEM, labels=["ncii"])
        db.session.commit()
        return bank.id


def make_stopncii(app: Flask, base_url: str, subscription_key: str) -> int:
    with app.app_context():
        exchange = exchanges.create_exchange(
            "StopNCII",
            "stopncii",
            make_bank(app),
            SYSTEM,
            settings={"base_url": base_url},
            credentials={
                "fetch_function_key": stopncii.FETCH_KEY,
                "subscription_key": subscription_key,
            },
        )
        db.session.commit()
        return exchange.id


def stored(app: Flask) -> tuple[str, dict[str, str]]:
    """The raw credentials column and what it decrypts to."""
    with app.app_context():
        exchange = db.session.scalar(select(Exchange))
        raw = db.session.execute(text("SELECT credentials FROM exchanges")).scalar_one()
        return raw, exchanges.credentials_of(exchange)  # type: ignore[arg-type]


def test_an_admin_sets_up_an_exchange_and_its_secrets_stay_write_only(
    app: Flask, client: FlaskClient
) -> None:
    admin = as_admin(app, client)
    bank_id = make_bank(app)
    page = admin.get("/admin/exchanges").get_data(as_text=True)
    assert "No exchanges yet" in page and "Exchanges" in main_nav_labels(page)
    chooser = admin.get("/admin/exchanges/new").get_data(as_text=True)
    empty_form = admin.get("/admin/exchanges/new/ncmec").get_data(as_text=True)
    assert "StopNCII.org" in chooser and "test NGO" in empty_form
    assert inline_code(page + chooser + empty_form) == []
    fetch_key, subscription = secrets.token_hex(12), secrets.token_hex(12)
    form = {
        "name": "StopNCII",
        "bank": str(bank_id),
        "schedule_minutes": "30",
        "enabled": "on",
        "setting-base_url": "",
        "secret-fetch_function_key": fetch_key,
        "secret-subscription_key": subscription,
    }
    created = post(admin, "/admin/exchanges/new/stopncii", form)
    assert created.status_code == 303  # type: ignore[attr-defined]
    raw, values = stored(app)
    assert values == {"fetch_function_key": fetch_key, "subscription_key": subscription}
    assert fetch_key not in raw and subscription not in raw

    with app.app_context():
        exchange_id = db.session.scalar(select(Exchange.id))
    detail = admin.get(f"/admin/exchanges/{exchange_id}").get_data(as_text=True)
    edit = admin.get(f"/admin/exchanges/{exchange_id}/edit").get_data(as_text=True)
    for html in (detail, edit):
        assert fetch_key not in html and subscription not in html
        assert inline_code(html) == []
    assert detail.count(">set<") == 2 and "Set. Type a new value to replace it." in edit

    kept = post(
        admin,
        f"/admin/exchanges/{exchange_id}/edit",
        form
        | {"name": "StopNCII.org", "secret-fetch_function_key": "", "secret-subscription_key": ""},
    )
    assert kept.status_code == 303  # type: ignore[attr-defined]
    assert stored(app)[1] == values  # empty fields keep the stored secrets
    replaced = post(
        admin,
        f"/admin/exchanges/{exchange_id}/edit",
        form | {"secret-fetch_function_key": "", "secret-subscription_key": "new-key"},
    )
    assert replaced.status_code == 303  # type: ignore[attr-defined]
    assert stored(app)[1]["subscription_key"] == "new-key"


def test_the_form_says_what_to_fix(app: Flask, client: FlaskClient) -> None:
    admin = as_admin(app, client)
    make_bank(app)
    answer = post(
        admin,
        "/admin/exchanges/new/threatexchange",
        {
            "name": "",
            "bank": "",
            "schedule_minutes": "0",
            "setting-privacy_group": "abc",
            "secret-api_token": "not-a-token",
        },
    )
    html = answer.get_data(as_text=True)  # type: ignore[attr-defined]
    assert answer.status_code == 422  # type: ignore[attr-defined]
    for message in (
        "Give the exchange a name",
        "Choose the bank",
        "Fetch every 1 to 10080",
        "is a whole number",
        "looks like “&lt;app id&gt;|&lt;app secret&gt;”",
    ):
        assert message in html
    assert "not-a-token" not in html  # a typed secret is not echoed back either


def test_fetch_now_fetches_and_the_page_shows_the_counts(app: Flask, client: FlaskClient) -> None:
    admin = as_admin(app, client)
    with running(stopncii.FakeStopNCII()) as fake:
        for _ in range(3):
            fake.publish(secrets.token_hex(32))
        exchange_id = make_stopncii(app, f"{fake.url}/v1", stopncii.SUBSCRIPTION_KEY)
        answer = post(admin, f"/admin/exchanges/{exchange_id}/fetch", {})
        assert answer.status_code == 303  # type: ignore[attr-defined]
        page = admin.get(f"/admin/exchanges/{exchange_id}").get_data(as_text=True)
        assert "succeeded" in page and "fetch now" in page
        assert '<dt>Added</dt><dd class="num">3</dd>' in page
        assert '<dt>Hashes in the bank</dt><dd class="num">3</dd>' in page

        fake.publish(secrets.token_hex(32))
        token = csrf_token(admin, f"/admin/exchanges/{exchange_id}")
        fragment = admin.post(
            f"/admin/exchanges/{exchange_id}/fetch",
            headers={"HX-Request": "true", "X-CSRFToken": token},
        )
    html = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "<html" not in html
    assert 'id="exchange-status"' in html and "Fetch started" in html
    assert '<dt>Hashes in the bank</dt><dd class="num">4</dd>' in html


def test_bad_credentials_show_the_error_on_the_page_but_never_the_secret(
    app: Flask, client: FlaskClient
) -> None:
    admin = as_admin(app, client)
    wrong = "wrong-subscription-" + secrets.token_hex(6)
    with running(stopncii.FakeStopNCII()) as fake:
        exchange_id = make_stopncii(app, f"{fake.url}/v1", wrong)
        post(admin, f"/admin/exchanges/{exchange_id}/fetch", {})
    page = admin.get(f"/admin/exchanges/{exchange_id}").get_data(as_text=True)
    assert "The last fetch failed." in page and "refused the credentials: HTTP 401" in page
    assert "invalid subscription key" in page and wrong not in page
    with app.app_context():
        exchange = db.session.get(Exchange, exchange_id)
        assert exchange is not None and "HTTP 401" in (exchange.last_error or "")
    listing = admin.get("/admin/exchanges").get_data(as_text=True)
    assert "failed" in listing


def test_moderators_may_not_use_the_exchange_pages(app: Flask, client: FlaskClient) -> None:
    login_as(client, create_user(app, "moderator"))
    exchange_id = make_stopncii(app, "http://127.0.0.1:9/v1", "key")
    for path in (
        "/admin/exchanges",
        "/admin/exchanges/new",
        "/admin/exchanges/new/stopncii",
        f"/admin/exchanges/{exchange_id}",
        f"/admin/exchanges/{exchange_id}/edit",
    ):
        assert client.get(path).status_code == 403, path
    token = csrf_token(client, "/")
    answer = client.post(f"/admin/exchanges/{exchange_id}/fetch", data={"csrf_token": token})
    assert answer.status_code == 403
    assert "Exchanges" not in main_nav_labels(client.get("/").get_data(as_text=True))


def test_changes_need_the_csrf_token(app: Flask, client: FlaskClient) -> None:
    admin = as_admin(app, client)
    exchange_id = make_stopncii(app, "http://127.0.0.1:9/v1", "key")
    assert admin.post(f"/admin/exchanges/{exchange_id}/fetch").status_code == 400
    answer = admin.post("/admin/exchanges/new/stopncii", data={"name": "x"})
    assert answer.status_code == 400
    with app.app_context():
        exchange = db.session.get(Exchange, exchange_id)
        assert exchange is not None and exchange.last_run_at is None


def test_cli_creates_lists_and_fetches_printing_counts(
    app: Flask, runner: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("TEST_SUBSCRIPTION", stopncii.SUBSCRIPTION_KEY)
    with app.app_context():
        banks.create_bank("NCII", SYSTEM, labels=["ncii"])
        db.session.commit()
    with running(stopncii.FakeStopNCII()) as fake:
        fake.publish(secrets.token_hex(32))
        fake.publish(secrets.token_hex(32))
        created = runner.invoke(
            args=[
                "exchanges",
                "create",
                "StopNCII",
                "--kind",
                "stopncii",
                "--bank",
                "NCII",
                "--schedule",
                "30",
                "--setting",
                f"base_url={fake.url}/v1",
                "--credential",
                f"fetch_function_key={stopncii.FETCH_KEY}",
                "--credential",
                "subscription_key=env:TEST_SUBSCRIPTION",
            ]
        )
        assert created.exit_code == 0, created.output
        fetched = runner.invoke(args=["exchanges", "fetch", "stopncii"])
    assert fetched.exit_code == 0, fetched.output
    assert "succeeded" in fetched.output and "added 2, removed 0, skipped 0" in fetched.output
    listed = runner.invoke(args=["exchanges", "list"])
    assert "StopNCII" in listed.output and "every 30 min" in listed.output
    assert "2 hashes" in listed.output
    assert stopncii.SUBSCRIPTION_KEY not in created.output + fetched.output + listed.output
    with app.app_context():
        [run] = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "exchange.fetched")
        ).all()
    assert (run.actor_label, run.details["trigger"], run.details["added"]) == ("cli", "cli", 2)


def test_config_changes_are_audited_without_credentials(app: Flask) -> None:
    with app.app_context():
        bank = banks.create_bank("TAT", SYSTEM)
        other = banks.create_bank("TAT 2", SYSTEM)
        exchange = exchanges.create_exchange(
            "tat",
            "tat",
            bank.id,
            SYSTEM,
            settings={},
            credentials={"username": "u", "password": "hunter2-pw"},
        )
        db.session.commit()
        exchanges.update_exchange(
            exchange,
            SYSTEM,
            credentials={"password": "new-pw-99"},
            bank=other.id,
            schedule_minutes=15,
        )
        db.session.commit()
        raw = db.session.execute(text("SELECT credentials FROM exchanges")).scalar_one()
        assert (
            "new-pw-99" not in raw and exchanges.credentials_of(exchange)["password"] == "new-pw-99"
        )
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action.like("exchange.%"))
        ).all()
    assert [event.action for event in events] == ["exchange.created", "exchange.updated"]
    updated = events[1].details
    assert updated["credentials_changed"] == ["password"]
    assert updated["changed"]["bank"] == "TAT 2" and updated["changed"]["schedule_minutes"] == 15
    logged = json.dumps([event.details for event in events])
    assert "hunter2" not in logged and "new-pw-99" not in logged


def test_cli_refuses_settings_the_kind_does_not_have(app: Flask, runner: Any) -> None:
    make_bank(app)
    answer = runner.invoke(
        args=[
            "exchanges",
            "create",
            "x",
            "--kind",
            "tat",
            "--bank",
            "NCII",
            "--setting",
            "environment=NGO",
        ]
    )
    assert answer.exit_code == 1
    assert "tat has no settings called environment; its settings: base_url." in answer.output
    missing = runner.invoke(args=["exchanges", "create", "x", "--kind", "tat", "--bank", "NCII"])
    assert missing.exit_code == 1 and "username: Fill in “TCAP user name”" in missing.output
    assert runner.invoke(args=["exchanges", "fetch", "nope"]).exit_code == 1
