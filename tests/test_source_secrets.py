"""Platform credentials of a source: encrypted, write-only on the source page, audited by name."""

from __future__ import annotations

import json
import re

from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from app.extensions import db
from app.models.source import Source
from app.services import source_secrets, sources
from app.services.audit import Actor
from app.services.webhooks import credentials
from app.services.webhooks.pictrs import path_token_matches
from tests.helpers_review import csrf_of, make_item
from tests.helpers_sources import audit_events, form_csrf, login_as, make_user

ACTOR = Actor.system("test")
KEY = "discourse-key-that-must-stay-secret"


def forum(app: Flask, **settings: object) -> str:
    """A Discourse source; its slug."""
    with app.app_context():
        source, _, _ = sources.create_source("Forum", "discourse", ACTOR, settings=dict(settings))
        return source.slug


def load(slug: str) -> Source:
    source = sources.find_source(slug)
    assert source is not None
    return source


def test_a_secret_is_stored_encrypted_and_audited_by_name_only(app: Flask):
    slug = forum(app)
    with app.app_context():
        source_secrets.set_secret(load(slug), "discourse_api_key", KEY, ACTOR)
        source = load(slug)
        assert source_secrets.get_secret(source, "discourse_api_key") == KEY
        assert source_secrets.secret_names(source) == ["discourse_api_key"]
        assert KEY not in json.dumps(source.settings)
        source_secrets.clear_secret(source, "discourse_api_key", ACTOR)
        assert source_secrets.get_secret(load(slug), "discourse_api_key") is None
    events = audit_events(app, "source.credentials")
    assert len(events) == 2 and all(KEY not in details for _, details in events)
    assert '"discourse_api_key"' in events[0][1]


def test_fetching_sends_the_encrypted_credential_else_the_old_plain_setting(app: Flask):
    base = "https://forum.example.org"
    slug = forum(app, base_url=base, discourse_api_key="plain-old-key")
    with app.app_context():
        source_id = load(slug).id
    item_id = make_item(
        app,
        source_id,
        image_url=f"{base}/secure-uploads/original/1X/a.png",
        item_metadata={"fetch_with_source_credentials": True},
    )
    with app.app_context():
        from app.models.item import Item

        item = db.session.get(Item, item_id)
        assert credentials.fetch_headers(item)["Api-Key"] == "plain-old-key"
        source_secrets.set_secret(item.source, "discourse_api_key", KEY, ACTOR)
        assert credentials.fetch_headers(item) == {"Api-Key": KEY, "Api-Username": "system"}


def test_the_source_page_never_shows_credentials_and_its_form_sets_keeps_and_clears(
    app: Flask, client: FlaskClient
):
    slug = forum(app, language="en")
    login_as(client, make_user(app, "admin"))
    page_url = f"/admin/sources/{slug}"
    token = form_csrf(client, page_url)
    form = {"csrf_token": token, "credential-discourse_api_key": KEY}
    assert client.post(f"{page_url}/credentials", data=form).status_code in (302, 303)
    page = client.get(page_url).get_data(as_text=True)
    assert KEY not in page and "secret:" not in page
    assert re.search(r"discourse_api_key\s*<span[^>]*>\(set\)", page)
    assert re.search(r"discourse_api_username\s*<span[^>]*>\(not set\)", page)
    # Saving the JSON settings keeps the credentials; typing one into the JSON is refused.
    edit = {"csrf_token": token, "name": "Forum", "callback_url": "", "settings": '{"a": 1}'}
    assert client.post(page_url, data=edit).status_code in (302, 303)
    refused = client.post(page_url, data={**edit, "settings": '{"secret:x": "y"}'})
    assert refused.status_code == 422 and "Platform credentials" in refused.get_data(as_text=True)
    with app.app_context():
        assert source_secrets.get_secret(load(slug), "discourse_api_key") == KEY
        assert source_secrets.public_settings(load(slug).settings) == {"a": 1}
    # An empty field keeps the value; the box clears it.
    client.post(f"{page_url}/credentials", data={"csrf_token": token})
    with app.app_context():
        assert source_secrets.get_secret(load(slug), "discourse_api_key") == KEY
    client.post(
        f"{page_url}/credentials", data={"csrf_token": token, "clear-discourse_api_key": "1"}
    )
    with app.app_context():
        assert source_secrets.secret_names(load(slug)) == []


def test_moderators_cannot_set_credentials(app: Flask, client: FlaskClient):
    slug = forum(app)
    login_as(client, make_user(app, "moderator"))
    form = {"csrf_token": csrf_of(client), "credential-discourse_api_key": KEY}
    answer = client.post(f"/admin/sources/{slug}/credentials", data=form)
    assert answer.status_code == 403
    with app.app_context():
        assert source_secrets.secret_names(load(slug)) == []


def test_cli_makes_the_pictrs_path_token_and_prints_its_path(app: Flask, runner: FlaskCliRunner):
    result = runner.invoke(args=["sources", "create", "Lemmy", "--kind", "pictrs", "--json"])
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    slug, token = re.fullmatch(r"/hooks/([^/]+)/([^/]+)", created["validation_path"]).groups()
    assert slug == created["slug"]
    with app.app_context():
        assert path_token_matches(load(slug), token)
    readable = runner.invoke(args=["sources", "create", "Lemmy two", "--kind", "pictrs"])
    assert "pict-rs external_validation path: /hooks/lemmy-two/" in readable.stdout
