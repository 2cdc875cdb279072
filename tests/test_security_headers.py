"""Headers every response carries, and how the session cookie is set."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.helpers_ui import create_user, login_as


def csp_directives(response: TestResponse) -> dict[str, list[str]]:
    """The Content-Security-Policy as {directive: [sources]}."""
    policy = response.headers["Content-Security-Policy"]
    directives = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


def session_cookie(response: TestResponse) -> str:
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert cookies, "the page did not set a session cookie"
    return cookies[0]


@pytest.fixture
def pages(app: Flask, client: FlaskClient) -> dict[str, TestResponse]:
    """A page, an error page, a redirect and a JSON error, as the browser receives them."""
    responses = {"anonymous redirect": client.get("/"), "api error": client.get("/api/v1/nothing")}
    login_as(client, create_user(app))
    responses["home"] = client.get("/")
    responses["404"] = client.get("/nothing-here")
    return responses


def test_csp_allows_only_this_sites_scripts_and_styles(pages: dict[str, TestResponse]) -> None:
    for name, response in pages.items():
        directives = csp_directives(response)
        assert directives["script-src"] == ["'self'"], name
        assert directives["style-src"] == ["'self'"], name
        assert directives["object-src"] == ["'none'"], name
        assert directives["frame-ancestors"] == ["'none'"], name
        policy = response.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, name


def test_pages_cannot_be_framed_sniffed_cached_or_leak_their_address(
    pages: dict[str, TestResponse],
) -> None:
    for name, response in pages.items():
        assert response.headers["X-Content-Type-Options"] == "nosniff", name
        assert response.headers["X-Frame-Options"] == "DENY", name
        assert response.headers["Referrer-Policy"] in {"same-origin", "no-referrer"}, name
        assert "no-store" in response.headers["Cache-Control"], name


def test_static_files_are_not_sniffed(client: FlaskClient) -> None:
    response = client.get("/static/js/app.js")
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.mimetype == "text/javascript"
    response.close()


def test_session_cookie_is_httponly_and_lax_on_plain_http(client: FlaskClient) -> None:
    # Any page with a form puts a CSRF token in the session, so it sets the cookie.
    cookie = session_cookie(client.get("/nothing-here"))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie


@pytest.mark.parametrize("app_config", [{"PREFERRED_URL_SCHEME": "https"}])
def test_session_cookie_is_secure_and_hsts_is_sent_behind_https(client: FlaskClient) -> None:
    response = client.get("/nothing-here", base_url="https://localhost")
    cookie = session_cookie(response)
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
