"""Error pages: they look like the site, say what to do next, and never leak internals."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.extensions import db
from app.security import public
from tests.conftest import make_test_config
from tests.helpers_ui import create_user, login_as


def test_404_page_for_a_browser(app: Flask, client: FlaskClient) -> None:
    login_as(client, create_user(app))
    response = client.get("/no-such-page", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "<title>Not found · Modtools Image</title>" in html
    assert "the link is wrong" in html
    assert 'href="/">Go to the start page</a>' in html
    assert 'class="site-nav"' in html  # the page keeps the site around it


def test_404_page_for_someone_not_logged_in(client: FlaskClient) -> None:
    response = client.get("/no-such-page")
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert "Not found" in html
    assert 'class="site-nav"' not in html
    assert 'href="/login">Log in</a>' in html


def test_404_for_the_api_is_json(client: FlaskClient) -> None:
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.get_json() == {
        "error": {
            "code": "not_found",
            "message": "There is nothing here. It may have been removed, or the link is wrong.",
            "field": None,
        }
    }


def test_405_says_the_address_does_not_accept_that(client: FlaskClient) -> None:
    response = client.post("/")
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]
    html = response.get_data(as_text=True)
    assert "Method not allowed" in html
    assert "does not accept that kind of request" in html


@pytest.mark.parametrize("app_config", [{"MAX_CONTENT_LENGTH": 1024}])
def test_413_when_the_upload_is_too_large(client: FlaskClient) -> None:
    response = client.post("/login", data={"note": "x" * 4096})
    assert response.status_code == 413
    html = response.get_data(as_text=True)
    assert "Too large" in html
    assert "larger than this server accepts" in html


def test_403_tells_the_user_who_can_help(app: Flask, client: FlaskClient) -> None:
    login_as(client, create_user(app, "moderator"))
    response = client.get("/admin/audit")
    assert response.status_code == 403
    html = response.get_data(as_text=True)
    assert "Not allowed" in html
    assert "Ask an admin" in html


def test_500_shows_a_calm_page_logs_the_error_and_hides_its_details(
    instance_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Flask refuses new routes once an app has served a request, so this test builds its own.
    app = create_app(make_test_config(instance_path))

    @app.get("/explode")
    @public
    def explode() -> str:
        raise RuntimeError("database password is hunter2")

    with app.app_context():
        db.create_all()
    client = app.test_client()
    with caplog.at_level(logging.ERROR):
        page = client.get("/explode")
        api = client.get("/explode", headers={"Accept": "application/json"})
    with app.app_context():
        db.engine.dispose()

    assert page.status_code == 500
    html = page.get_data(as_text=True)
    assert "Something went wrong" in html
    assert "The error has been logged" in html
    assert "hunter2" not in html
    assert api.status_code == 500
    assert api.get_json()["error"]["code"] == "something_went_wrong"
    assert "hunter2" not in api.get_data(as_text=True)
    assert any("GET /explode" in message for message in caplog.messages)
