"""Sources: the admin pages, and the service behind them and the API (tokens, secrets, audit)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models.source import ApiToken, Source
from app.services import sources
from app.services.audit import Actor
from app.services.sources import SourceError
from tests.helpers_sources import audit_events, form_csrf, login_as, make_user

ADMIN = Actor("user", None, "admin@example.org")
SECRET_BOX = re.compile(r'<code class="secret" data-once="(\w+)">([^<]+)</code>')


def shown_once(html: str) -> dict[str, str]:
    """The values a page shows in its "shown once" boxes, by kind (token, secret)."""
    return dict(SECRET_BOX.findall(html))


@pytest.fixture
def admin_client(app: Flask, client: FlaskClient) -> FlaskClient:
    login_as(client, make_user(app, "admin"))
    return client


def create_through_page(client: FlaskClient, name: str = "Community forum", **fields: str):
    data = {
        "csrf_token": form_csrf(client, "/admin/sources/new"),
        "name": name,
        "kind": "generic",
        "callback_url": "",
        **fields,
    }
    return client.post("/admin/sources/new", data=data)


# --- the pages -------------------------------------------------------------------------------


def test_admin_creates_a_source_and_sees_its_credentials_only_once(app, admin_client):
    response = create_through_page(admin_client, callback_url="https://forum.example.org/cb")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    once = shown_once(html)
    assert once["token"].startswith("mti_") and once["secret"].startswith("whsec_")
    assert "You will not see them again" in html
    assert f"Authorization: Bearer {once['token']}" in html and "/api/v1/items" in html

    for path in ("/admin/sources", "/admin/sources/community-forum"):
        later = admin_client.get(path).get_data(as_text=True)
        assert once["token"] not in later and once["secret"] not in later
    assert once["token"][:12] + "…" in admin_client.get("/admin/sources/community-forum").text
    with app.app_context():
        assert sources.authenticate_token(once["token"]).source.slug == "community-forum"
        assert sources.webhook_secret(sources.find_source("community-forum")) == once["secret"]


def test_list_shows_sources_with_their_counts(admin_client):
    create_through_page(admin_client, "Fediverse instance")
    html = admin_client.get("/admin/sources").get_data(as_text=True)
    assert "Fediverse instance" in html and "fediverse-instance" in html and "enabled" in html


def test_form_errors_say_how_to_fix_them(admin_client):
    response = create_through_page(admin_client, "Forum", callback_url="ftp://example.org/x")
    assert response.status_code == 422
    assert "must start with https://" in response.get_data(as_text=True)
    assert create_through_page(admin_client, "  ").status_code == 422


def test_issuing_and_revoking_a_token_from_the_source_page(app, admin_client):
    create_through_page(admin_client, "Forum")
    token = form_csrf(admin_client, "/admin/sources/forum")
    issued = admin_client.post(
        "/admin/sources/forum/tokens", data={"csrf_token": token, "name": "staging"}
    )
    raw = shown_once(issued.get_data(as_text=True))["token"]
    assert "staging" in admin_client.get("/admin/sources/forum").text
    with app.app_context():
        token_id = sources.authenticate_token(raw).id

    # htmx swaps just the row, which now says revoked and offers no revoke button.
    row = admin_client.post(
        f"/admin/sources/forum/tokens/{token_id}/revoke",
        data={"csrf_token": token},
        headers={"HX-Request": "true"},
    )
    assert row.status_code == 200
    assert row.text.lstrip().startswith(f'<tr id="token-{token_id}">')
    assert "revoked" in row.text and "Revoke token" not in row.text
    with app.app_context():
        assert sources.authenticate_token(raw) is None

    # Without JavaScript the form posts and the browser is sent back to the source page.
    with app.app_context():
        first_id = sources.find_source("forum").tokens[0].id
    plain = admin_client.post(
        f"/admin/sources/forum/tokens/{first_id}/revoke", data={"csrf_token": token}
    )
    assert plain.status_code == 303 and plain.headers["Location"].endswith("/admin/sources/forum")
    assert "revoked. Requests using it are refused" in admin_client.get("/admin/sources/forum").text
    other = admin_client.post("/admin/sources/forum/tokens/999/revoke", data={"csrf_token": token})
    assert other.status_code == 404


def test_rotating_the_webhook_secret_shows_the_new_one_once(app, admin_client):
    first = shown_once(create_through_page(admin_client, "Forum").get_data(as_text=True))
    csrf = form_csrf(admin_client, "/admin/sources/forum")
    rotated = admin_client.post("/admin/sources/forum/secret", data={"csrf_token": csrf})
    secret = shown_once(rotated.get_data(as_text=True))["secret"]
    assert secret != first["secret"]
    assert secret not in admin_client.get("/admin/sources/forum").text
    with app.app_context():
        assert sources.webhook_secret(sources.find_source("forum")) == secret


def test_editing_settings_refuses_invalid_json_with_a_clear_error(app, admin_client):
    create_through_page(admin_client, "Forum")
    csrf = form_csrf(admin_client, "/admin/sources/forum")
    bad = admin_client.post(
        "/admin/sources/forum",
        data={
            "csrf_token": csrf,
            "name": "Renamed",
            "callback_url": "",
            "settings": "{language: en}",
        },
    )
    assert bad.status_code == 422 and "Settings are not valid JSON" in bad.text
    several = admin_client.post(
        "/admin/sources/forum",
        data={"csrf_token": csrf, "name": " ", "callback_url": "forum.example.org", "settings": ""},
    )
    assert "Give the source a name" in several.text and "must start with https://" in several.text
    good = admin_client.post(
        "/admin/sources/forum",
        data={
            "csrf_token": csrf,
            "name": "Renamed",
            "callback_url": "https://forum.example.org/cb",
            "settings": '{"language": "en"}',
        },
        follow_redirects=True,
    )
    assert good.status_code == 200 and "Source saved." in good.text
    with app.app_context():
        source = sources.find_source("forum")
        assert (source.name, source.settings) == ("Renamed", {"language": "en"})


def test_disabling_from_the_page_refuses_the_sources_tokens(app, admin_client):
    raw = shown_once(create_through_page(admin_client, "Forum").text)["token"]
    csrf = form_csrf(admin_client, "/admin/sources/forum")
    page = admin_client.post(
        "/admin/sources/forum/enabled",
        data={"csrf_token": csrf, "enabled": "0"},
        follow_redirects=True,
    )
    assert "This source is disabled" in page.text
    with app.app_context():
        assert sources.authenticate_token(raw) is None


def test_moderators_may_not_see_sources(app, client):
    login_as(client, make_user(app, "moderator"))
    for path in ("/admin/sources", "/admin/sources/new", "/admin/sources/anything"):
        assert client.get(path).status_code == 403
    assert client.post("/admin/sources/new", data={"name": "x"}).status_code in (400, 403)


def test_a_post_without_csrf_token_is_refused(admin_client):
    response = admin_client.post("/admin/sources/new", data={"name": "Forum", "kind": "generic"})
    assert response.status_code == 400
    assert "Sources" in admin_client.get("/admin/sources").text
    assert "Forum" not in admin_client.get("/admin/sources").text


# --- the service -----------------------------------------------------------------------------


def test_slugs_are_unique_and_reserved_ones_are_skipped(app):
    with app.app_context():
        slugs = [sources.create_source("Café Forum!", "generic", ADMIN)[0].slug for _ in range(3)]
        assert slugs == ["cafe-forum", "cafe-forum-2", "cafe-forum-3"]
        assert sources.create_source("New", "generic", ADMIN)[0].slug == "new-2"
        assert sources.create_source("Manual uploads", "generic", ADMIN)[0].slug != "manual-uploads"


def test_bad_input_is_refused_with_the_field_named(app):
    with app.app_context():
        with pytest.raises(SourceError, match="Choose one of: generic") as refused:
            sources.create_source("Forum", "discourse-ish", ADMIN)
        assert refused.value.field == "kind"
        with pytest.raises(SourceError, match="callback URL"):
            sources.create_source("Forum", "generic", ADMIN, callback_url="javascript:alert(1)")
        with pytest.raises(SourceError, match="must be text, a number"):
            sources.create_source("Forum", "generic", ADMIN, settings={"nested": {"a": 1}})
        assert db.session.scalars(select(Source)).all() == []


def test_revoked_tokens_and_disabled_sources_do_not_authenticate(app):
    with app.app_context():
        source, first, _ = sources.create_source("Forum", "generic", ADMIN)
        second_row, second = sources.issue_token(source, ADMIN, "second")
        assert sources.authenticate_token(first) is not None
        assert sources.authenticate_token(first + "x") is None
        assert sources.authenticate_token("not-a-token") is None
        sources.revoke_token(second_row.id, ADMIN)
        assert sources.authenticate_token(second) is None
        sources.set_enabled(source, False, ADMIN)
        assert sources.authenticate_token(first) is None
        sources.set_enabled(source, True, ADMIN)
        assert sources.authenticate_token(first) is not None


def test_last_used_is_recorded_at_most_once_a_minute(app):
    with app.app_context():
        _, raw, _ = sources.create_source("Forum", "generic", ADMIN)
        token = sources.authenticate_token(raw)
        first_use = token.last_used_at
        assert first_use is not None
        sources.authenticate_token(raw)
        db.session.expire_all()
        assert db.session.get(ApiToken, token.id).last_used_at == first_use  # throttled

        stale = first_use - timedelta(minutes=5)
        db.session.get(ApiToken, token.id).last_used_at = stale
        db.session.commit()
        sources.authenticate_token(raw)
        db.session.expire_all()
        assert db.session.get(ApiToken, token.id).last_used_at > first_use


def test_every_change_is_audited_without_tokens_or_secrets(app):
    with app.app_context():
        source, raw, secret = sources.create_source(
            "Forum", "generic", ADMIN, callback_url="https://f.example.org/cb?key=k1"
        )
        token, raw2 = sources.issue_token(source, ADMIN, "second")
        sources.revoke_token(token.id, ADMIN)
        new_secret = sources.rotate_webhook_secret(source, ADMIN)
        sources.update_source(source, ADMIN, name="Forum 2", settings={"language": "en"})
        sources.set_enabled(source, False, ADMIN)
    events = audit_events(app)
    actions = [action for action, _ in events]
    for expected in (
        "source.created",
        "token.issued",
        "token.revoked",
        "source.secret_rotated",
        "source.updated",
        "source.disabled",
    ):
        assert expected in actions
    everything = json.dumps(events)
    for value in (raw, raw2, secret, new_secret, "k1"):
        assert value not in everything


def test_the_manual_source_is_created_once(app):
    with app.app_context():
        first = sources.get_manual_source()
        again = sources.get_manual_source()
        assert first.id == again.id and first.kind == "manual" and first.name == "Manual uploads"
        with pytest.raises(SourceError):
            sources.create_source("Uploads", "manual", ADMIN)
        assert len(db.session.scalars(select(Source).where(Source.kind == "manual")).all()) == 1
