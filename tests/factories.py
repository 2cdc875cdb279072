"""Plain factory functions for account tests: users, logins, TOTP codes, login attempts."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

import pyotp
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from app.extensions import db
from app.models.audit import AuditEvent
from app.models.types import utcnow
from app.models.user import LoginAttempt, User
from app.services import accounts, crypto
from tests.conftest import csrf_token

PASSWORD = "correct horse battery staple"
SECRET_PATTERN = re.compile(r'<code class="secret">([^<]+)</code>')
RECOVERY_PATTERN = re.compile(r"<li>([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4})</li>")


def make_user(
    app: Flask,
    email: str = "mod@example.org",
    role: str = "moderator",
    password: str = PASSWORD,
    display_name: str = "",
    active: bool = True,
) -> int:
    """Add a user directly and return their id."""
    with app.app_context():
        user = accounts.add_user(email, password, role, display_name)
        user.active = active
        db.session.commit()
        return user.id


def get_user(app: Flask, user_id: int) -> User:
    """A detached snapshot of the user row, for assertions."""
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user is not None
        db.session.expunge(user)
        return user


def post_form(
    client: FlaskClient, path: str, data: dict[str, Any], token_from: str = "/login", **kwargs: Any
) -> TestResponse:
    """POST ``data`` with the CSRF token a browser would have from ``token_from``."""
    return client.post(path, data={"csrf_token": csrf_token(client, token_from), **data}, **kwargs)


def log_in(
    client: FlaskClient,
    email: str,
    password: str = PASSWORD,
    next_url: str | None = None,
    **kwargs: Any,
) -> TestResponse:
    """Submit the login form."""
    data = {"email": email, "password": password}
    if next_url is not None:
        data["next"] = next_url
    return post_form(client, "/login", data, **kwargs)


def enter_code(client: FlaskClient, code: str, **kwargs: Any) -> TestResponse:
    """Submit the second step of a login."""
    return client.post(
        "/login/code", data={"csrf_token": _session_csrf(client), "code": code}, **kwargs
    )


def _session_csrf(client: FlaskClient) -> str:
    # The code page shows a token; reading it keeps the half-logged-in session intact.
    return csrf_token(client, "/login/code")


def log_out(client: FlaskClient) -> TestResponse:
    """Press the log-out button."""
    return post_form(client, "/logout", {}, token_from="/logout")


def wait_out_step_boundary() -> None:
    """Sleep (under 1.5 s) if a TOTP step is about to change, so a code computed now stays valid."""
    left = 30 - time.time() % 30
    if left < 1.5:
        time.sleep(left + 0.05)


def totp_code(secret: str, steps: int = 0) -> str:
    """The app's code ``steps`` steps from now."""
    return pyotp.TOTP(secret).at(time.time() + steps * 30)


def turn_on_two_step(client: FlaskClient) -> tuple[str, list[str]]:
    """Turn two-step login on through the profile pages; return the secret and recovery codes.

    The confirmation uses the previous step's code, so the current one is still unused after.
    """
    post_form(client, "/profile/two-step/start", {}, token_from="/profile")
    page = client.get("/profile/two-step").get_data(as_text=True)
    match = SECRET_PATTERN.search(page)
    assert match, "no secret on the two-step page"
    secret = match.group(1)
    wait_out_step_boundary()
    response = post_form(
        client,
        "/profile/two-step/confirm",
        {"code": totp_code(secret, -1)},
        token_from="/profile/two-step",
    )
    codes = RECOVERY_PATTERN.findall(response.get_data(as_text=True))
    assert len(codes) == 10, response.get_data(as_text=True)
    return secret, codes


def stored_totp_secret(app: Flask, user_id: int) -> str:
    """The user's TOTP secret, decrypted."""
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user is not None and user.totp_secret
        return crypto.decrypt(user.totp_secret)


def add_failed_attempts(
    app: Flask,
    count: int,
    email: str = "someone@example.org",
    ip: str = "127.0.0.1",
    age_seconds: float = 0,
) -> None:
    """Insert ``count`` failed logins, as if made ``age_seconds`` ago."""
    with app.app_context():
        when = utcnow() - timedelta(seconds=age_seconds)
        db.session.add_all(
            LoginAttempt(email=email, ip=ip, succeeded=False, created_at=when) for _ in range(count)
        )
        db.session.commit()


def age_login_attempts(app: Flask, seconds: float) -> None:
    """Make every recorded login attempt ``seconds`` older (the rate-limit window passes)."""
    with app.app_context():
        for attempt in db.session.scalars(select(LoginAttempt)):
            attempt.created_at -= timedelta(seconds=seconds)
        db.session.commit()


def audit_events(app: Flask, action: str) -> list[AuditEvent]:
    """Every audit event with ``action``, oldest first, detached."""
    with app.app_context():
        events = list(
            db.session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
            )
        )
        db.session.expunge_all()
        return events


def logged_in_email(client: FlaskClient) -> str | None:
    """Whose profile this browser sees, or None when it is sent to the login page."""
    response = client.get("/profile")
    if response.status_code != 200:
        return None
    match = re.search(r'name="username" value="([^"]+)"', response.get_data(as_text=True))
    assert match, "the profile page does not name the user"
    return match.group(1)
