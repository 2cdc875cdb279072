"""The manual upload page: moderators send images through the same ingest service as the API."""

from __future__ import annotations

import io

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import func, select

from app.extensions import db
from app.models.item import Item
from app.services import sources
from app.services.audit import Actor
from app.services.ingest import check_image
from app.services.media import MediaError
from tests.helpers_sources import audit_events, form_csrf, login_as, make_user, png


@pytest.fixture
def moderator_client(app: Flask, client: FlaskClient) -> FlaskClient:
    login_as(client, make_user(app, "moderator"))
    return client


def upload(client: FlaskClient, *files: tuple[bytes, str], note: str = "", **headers: str):
    data = {
        "csrf_token": form_csrf(client, "/ingest/upload"),
        "note": note,
        "images": [(io.BytesIO(content), name) for content, name in files],
    }
    return client.post(
        "/ingest/upload", data=data, content_type="multipart/form-data", headers=headers
    )


def item_count(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Item))


def test_the_page_works_without_javascript(moderator_client):
    html = moderator_client.get("/ingest/upload").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in html
    assert 'type="file"' in html and " multiple" in html and 'name="images"' in html
    assert "js/upload.js" in html  # the enhancement is a file, never an inline script


def test_two_images_become_two_items_with_the_note(app, moderator_client):
    response = upload(
        moderator_client, (png(1), "first.png"), (png(2), "second.png"), note="reported in #general"
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert html.count('data-upload-result="accepted"') == 2
    assert "first.png" in html and "second.png" in html
    with app.app_context():
        items = db.session.scalars(select(Item)).all()
        assert len(items) == 2
        assert {item.source.slug for item in items} == {sources.MANUAL_SLUG}
        assert {item.context_text for item in items} == {"reported in #general"}
        assert all(item.id in html for item in items)
    # Audited once per item, by the ingest service, as the moderator who uploaded.
    received = audit_events(app, "item.received")
    assert len(received) == 2


def test_a_text_file_is_refused_with_a_clear_message(app, moderator_client):
    response = upload(
        moderator_client, (b"just some words, not a picture\n", "notes.txt"), (png(3), "fine.png")
    )
    html = response.get_data(as_text=True)
    assert 'data-upload-result="refused"' in html and "notes.txt" in html
    with app.app_context(), pytest.raises(MediaError) as refusal:
        check_image(b"just some words, not a picture\n")
    assert str(escape(refusal.value.message)) in html  # the checker's own words, how to fix it
    assert 'data-upload-result="accepted"' in html  # one bad file does not sink the others
    assert item_count(app) == 1


def test_the_same_image_twice_is_one_item(app, moderator_client):
    upload(moderator_client, (png(4), "a.png"))
    again = upload(moderator_client, (png(4), "a-copy.png"))
    assert "already received" in again.get_data(as_text=True)
    assert item_count(app) == 1


def test_htmx_and_upload_js_get_only_the_result_rows(moderator_client):
    response = upload(moderator_client, (png(5), "one.png"), **{"HX-Request": "true"})
    html = response.get_data(as_text=True).strip()
    assert html.startswith("<li") and "<html" not in html
    assert "HX-Request" in response.headers.get("Vary", "")


def test_uploading_nothing_says_what_to_do(moderator_client):
    response = upload(moderator_client)
    assert response.status_code == 400
    assert "Choose at least one image" in response.get_data(as_text=True)


def test_uploads_are_refused_while_the_manual_source_is_disabled(app, moderator_client):
    with app.app_context():
        sources.set_enabled(sources.get_manual_source(), False, Actor.system())
    response = upload(moderator_client, (png(6), "a.png"))
    assert response.status_code == 400 and "switched off" in response.get_data(as_text=True)
    assert item_count(app) == 0


def test_an_upload_without_csrf_token_is_refused(app, moderator_client):
    response = moderator_client.post(
        "/ingest/upload",
        data={"images": [(io.BytesIO(png(7)), "a.png")]},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert item_count(app) == 0


def test_admins_may_upload_too(app, client):
    login_as(client, make_user(app, "admin"))
    assert client.get("/ingest/upload").status_code == 200
