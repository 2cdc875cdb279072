"""The page shell: pinned htmx, navigation by role, user menu, CSRF for htmx, no inline code."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from app.extensions import db
from app.services.audit import Actor, record
from tests.helpers_ui import create_user, inline_code, login_as, main_nav_labels

ROOT = Path(__file__).resolve().parent.parent
HTMX = ROOT / "static" / "vendor" / "htmx.min.js"


def test_vendored_htmx_is_the_pinned_2_0_11_and_matches_its_recorded_hash() -> None:
    source = HTMX.read_text(encoding="utf-8")
    # What htmx.version reports in the browser; htmx 4 changed defaults this app relies on.
    assert 'version:"2.0.11"' in source
    readme = (ROOT / "static" / "vendor" / "README.md").read_text()
    assert "2.0.11" in readme
    assert hashlib.sha256(HTMX.read_bytes()).hexdigest() in readme
    assert "Zero-Clause BSD" in (ROOT / "static" / "vendor" / "htmx.LICENSE").read_text()


def test_pages_load_htmx_and_app_js_from_this_site(app: Flask, client: FlaskClient) -> None:
    login_as(client, create_user(app))
    html = client.get("/").get_data(as_text=True)
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert scripts == ["/static/vendor/htmx.min.js", "/static/js/app.js"]
    for url in [*scripts, "/static/css/app.css", "/static/img/favicon.svg"]:
        response = client.get(url)
        assert response.status_code == 200, url
        response.close()


def test_htmx_is_configured_for_the_content_security_policy(
    app: Flask, client: FlaskClient
) -> None:
    login_as(client, create_user(app))
    html = client.get("/").get_data(as_text=True)
    meta = re.search(r"<meta name=\"htmx-config\" content='([^']+)'>", html)
    assert meta
    config = json.loads(meta.group(1))
    assert config["allowEval"] is False
    assert config["includeIndicatorStyles"] is False
    assert config["allowScriptTags"] is False
    assert config["historyCacheSize"] == 0  # no copies of moderation pages in sessionStorage


def test_htmx_requests_carry_the_csrf_token_from_body(app: Flask, client: FlaskClient) -> None:
    login_as(client, create_user(app))
    html = client.get("/").get_data(as_text=True)
    body = re.search(r"<body hx-headers='([^']+)'>", html)
    assert body
    token = json.loads(body.group(1))["X-CSRFToken"]
    assert len(token) > 20


def test_admin_sees_the_audit_log_in_the_navigation(app: Flask, client: FlaskClient) -> None:
    login_as(client, create_user(app, "admin"))
    html = client.get("/").get_data(as_text=True)
    labels = main_nav_labels(html)
    assert "Home" in labels
    assert "Audit log" in labels
    assert 'href="/admin/audit"' in html


def test_moderator_does_not_see_admin_pages(app: Flask, client: FlaskClient) -> None:
    login_as(client, create_user(app, "moderator"))
    html = client.get("/").get_data(as_text=True)
    labels = main_nav_labels(html)
    assert "Home" in labels
    assert "Audit log" not in labels
    assert "/admin/audit" not in html


def test_user_menu_names_the_user_and_their_role(app: Flask, client: FlaskClient) -> None:
    user = create_user(app, "lead", email="rosa@example.org", display_name="Rosa Parks")
    login_as(client, user)
    html = client.get("/").get_data(as_text=True)
    menu = re.search(r'<details class="user-menu">(.*?)</details>', html, re.S)
    assert menu
    assert "Rosa Parks" in menu.group(1)
    assert "rosa@example.org" in menu.group(1)
    assert re.search(r'class="badge badge--info">lead<', menu.group(1))
    if "auth.logout" in app.view_functions:
        # Logging out changes state, so it is a POST with a token, never a link.
        form = re.search(
            r'<form method="post" action="([^"]+)">\s*<input type="hidden" '
            r'name="csrf_token" value="[^"]+">',
            menu.group(1),
        )
        assert form and form.group(1).endswith("logout")
    else:
        assert "Log out" not in menu.group(1)


def test_flash_messages_show_with_their_kind(app: Flask, client: FlaskClient) -> None:
    login_as(client, create_user(app))
    with client.session_transaction() as session:
        session["_flashes"] = [("error", "That did not work."), ("success", "Saved.")]
    html = client.get("/").get_data(as_text=True)
    assert '<p class="flash flash--error" role="alert">That did not work.</p>' in html
    assert '<p class="flash flash--success" role="status">Saved.</p>' in html


def test_home_says_what_the_role_allows_and_shows_the_queue(
    app: Flask, client: FlaskClient
) -> None:
    login_as(client, create_user(app, "moderator", display_name="Sam"))
    html = client.get("/").get_data(as_text=True)
    assert "Hello, Sam" in html
    assert "approve, remove or escalate" in html
    assert 'href="/review/' in html  # the dashboard links into the queue


def test_home_offers_an_admin_their_pages(app: Flask, client: FlaskClient) -> None:
    login_as(client, create_user(app, "admin"))
    html = client.get("/").get_data(as_text=True)
    cards = re.search(r'<ul class="card-grid">(.*?)</ul>', html, re.S)
    assert cards
    assert '<a href="/admin/audit">Audit log</a>' in cards.group(1)
    assert "audit log" in html.lower()


def test_keyboard_shortcut_dialog_is_on_every_page(app: Flask, client: FlaskClient) -> None:
    login_as(client, create_user(app))
    html = client.get("/").get_data(as_text=True)
    assert '<dialog id="shortcuts"' in html
    assert 'id="shortcuts-list"' in html
    assert '<div id="toasts" class="toasts" aria-live="polite">' in html


def test_no_page_carries_inline_script_or_style(app: Flask, client: FlaskClient) -> None:
    admin = create_user(app, "admin")
    with app.app_context():
        record(
            "item.decided",
            Actor("user", "7", "mod@example.org", "192.0.2.1"),
            target_type="item",
            target_id="abc",
            details={"decision": "remove"},
        )
        db.session.commit()
    pages = {}
    pages["404 anonymous"] = client.get("/no-such-page")
    login_as(client, admin)
    pages["home (admin)"] = client.get("/")
    pages["audit"] = client.get("/admin/audit")
    pages["audit fragment"] = client.get("/admin/audit", headers={"HX-Request": "true"})
    pages["404"] = client.get("/no-such-page")
    pages["405"] = client.post("/")
    login_as(client, create_user(app, "moderator"))
    pages["home (moderator)"] = client.get("/")
    pages["403"] = client.get("/admin/audit")
    for name, response in pages.items():
        html = response.get_data(as_text=True)
        assert "<" in html, name
        assert inline_code(html) == [], name


def test_the_inline_code_check_catches_what_it_should() -> None:
    # The check above passes trivially if these patterns are wrong, so prove them.
    assert inline_code("<script>alert(1)</script>")
    assert inline_code('<p style="color:red">')
    assert inline_code('<button onclick="x()">')
    assert inline_code('<button hx-on:click="x()">')
    assert inline_code("<style>p{}</style>")
    assert not inline_code('<script src="/static/js/app.js" defer></script><p class="x">style=</p>')
