"""Every route is guarded: a login for pages, a token or signature for the API and webhooks,
and a CSRF token for every state change a browser can make."""

from __future__ import annotations

import re

from flask import Flask

from app.security import SELF_AUTHENTICATING_BLUEPRINTS
from tests.helpers_ui import create_user, login_as

PUBLIC = {"static"}


def concrete(rule: str) -> str:
    """A URL for ``rule`` with every variable filled by a harmless value."""
    rule = re.sub(r"<any\(([^,)]+)[^>]*>", lambda m: m.group(1).strip(), rule)
    return re.sub(r"<(?:[^:>]+:)?[^>]+>", "1", rule)


def page_rules(app: Flask) -> list:
    return [
        rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.split(".")[0] not in SELF_AUTHENTICATING_BLUEPRINTS
        and not getattr(app.view_functions[rule.endpoint], "_public", False)
        and rule.endpoint not in PUBLIC
    ]


def test_every_page_needs_a_login(app: Flask) -> None:
    client = app.test_client()
    rules = page_rules(app)
    assert len(rules) > 50  # the whole dashboard, not an empty list
    for rule in rules:
        method = "GET" if "GET" in rule.methods else sorted(rule.methods - {"HEAD", "OPTIONS"})[0]
        response = client.open(concrete(rule.rule), method=method)
        # A POST without a session fails CSRF (400) before it reaches the login gate; both refuse.
        assert response.status_code in (302, 400, 401), (rule.rule, method, response.status_code)
        if response.status_code == 302:
            assert "/login" in response.headers["Location"], rule.rule


def test_every_state_change_needs_a_csrf_token(app: Flask) -> None:
    client = app.test_client()
    login_as(client, create_user(app, "admin"))
    posts = [rule for rule in page_rules(app) if rule.methods & {"POST", "PUT", "PATCH", "DELETE"}]
    assert len(posts) > 30
    for rule in posts:
        method = sorted(rule.methods & {"POST", "PUT", "PATCH", "DELETE"})[0]
        response = client.open(concrete(rule.rule), method=method, data={})
        assert response.status_code == 400, (rule.rule, response.status_code)
        assert "did not come from this site" in response.get_data(as_text=True), rule.rule
