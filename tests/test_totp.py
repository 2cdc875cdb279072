"""Two-step login: turning it on, logging in with app and recovery codes, turning it off."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models.user import User
from app.services import totp
from tests.conftest import csrf_token
from tests.factories import (
    PASSWORD,
    audit_events,
    enter_code,
    get_user,
    log_in,
    log_out,
    logged_in_email,
    make_user,
    post_form,
    stored_totp_secret,
    totp_code,
    turn_on_two_step,
    wait_out_step_boundary,
)

EMAIL = "mod@example.org"


@pytest.fixture
def moderator(app: Flask) -> int:
    return make_user(app, EMAIL)


@pytest.fixture
def two_step_user(app: Flask, client: FlaskClient, moderator: int) -> tuple[str, list[str]]:
    """The moderator with two-step login on, logged out again."""
    log_in(client, EMAIL)
    secret, codes = turn_on_two_step(client)
    log_out(client)
    return secret, codes


def test_two_step_login_from_start_to_finish(
    app: Flask, client: FlaskClient, moderator: int
) -> None:
    log_in(client, EMAIL)
    secret, recovery_codes = turn_on_two_step(client)
    assert "On" in client.get("/profile").get_data(as_text=True)
    log_out(client)

    # The password alone is not enough any more.
    response = log_in(client, EMAIL)
    assert response.status_code == 303 and response.location == "/login/code"
    assert logged_in_email(client) is None

    wait_out_step_boundary()
    wrong = enter_code(client, "000000" if totp_code(secret) != "000000" else "111111")
    assert wrong.status_code == 401 and "code is not right" in wrong.get_data(as_text=True)
    assert logged_in_email(client) is None

    code = totp_code(secret)
    assert enter_code(client, code).status_code == 303
    assert logged_in_email(client) == EMAIL
    log_out(client)

    # The same code a second time is refused, even with the right password.
    log_in(client, EMAIL)
    reused = enter_code(client, code)
    assert reused.status_code == 401
    assert logged_in_email(client) is None

    # A recovery code stands in for the app, once.
    assert enter_code(client, recovery_codes[0].upper()).status_code == 303
    assert logged_in_email(client) == EMAIL
    assert "9 recovery codes left" in client.get("/profile").get_data(as_text=True)
    log_out(client)
    log_in(client, EMAIL)
    assert enter_code(client, recovery_codes[0]).status_code == 401
    assert enter_code(client, recovery_codes[1]).status_code == 303

    assert [e.target_id for e in audit_events(app, "user.totp_enabled")] == [str(moderator)]
    used = audit_events(app, "user.recovery_code_used")
    assert [e.details["remaining"] for e in used] == [9, 8]
    logins = audit_events(app, "auth.login")
    assert [e.details["second_step"] for e in logins] == [None, "app", "recovery", "recovery"]


def test_the_second_step_expires_after_five_minutes(
    client: FlaskClient, two_step_user: tuple[str, list[str]]
) -> None:
    secret, _ = two_step_user
    log_in(client, EMAIL)
    token = csrf_token(client, "/login/code")
    with client.session_transaction() as session:
        pending = dict(session["pending_login"])
        pending["started"] -= 301
        session["pending_login"] = pending
    wait_out_step_boundary()
    response = client.post("/login/code", data={"csrf_token": token, "code": totp_code(secret)})
    assert response.status_code == 303 and response.location == "/login"
    assert "timed out" in client.get("/login").get_data(as_text=True)
    assert logged_in_email(client) is None


def test_wrong_codes_are_rate_limited_like_passwords(
    app: Flask, client: FlaskClient, two_step_user: tuple[str, list[str]]
) -> None:
    secret, _ = two_step_user
    log_in(client, EMAIL)
    for _ in range(5):
        assert enter_code(client, "12345x").status_code == 401
    wait_out_step_boundary()
    locked = enter_code(client, totp_code(secret))
    assert locked.status_code == 429
    assert "Wait 15 minutes" in locked.get_data(as_text=True)
    assert int(locked.headers["Retry-After"]) > 800
    assert logged_in_email(client) is None
    failed = audit_events(app, "auth.login_failed")
    assert {e.details["step"] for e in failed} == {"second step"}


def test_turning_off_needs_the_password(
    app: Flask, client: FlaskClient, two_step_user: tuple[str, list[str]]
) -> None:
    _, codes = two_step_user
    log_in(client, EMAIL)
    enter_code(client, codes[0])
    refused = post_form(
        client, "/profile/two-step/off", {"password": "not my password"}, token_from="/profile"
    )
    assert refused.status_code == 400
    assert "password is not right" in refused.get_data(as_text=True)
    assert get_user(app, make_id(app)).totp_enabled

    post_form(client, "/profile/two-step/off", {"password": PASSWORD}, token_from="/profile")
    log_out(client)
    assert log_in(client, EMAIL).location == "/"  # no code asked
    assert len(audit_events(app, "user.totp_disabled")) == 1


def test_turning_off_and_new_codes_share_the_password_limit(
    app: Flask, client: FlaskClient, two_step_user: tuple[str, list[str]]
) -> None:
    _, codes = two_step_user
    log_in(client, EMAIL)
    enter_code(client, codes[0])
    for path in ["/profile/two-step/off"] * 3 + ["/profile/two-step/recovery-codes"] * 2:
        wrong = post_form(client, path, {"password": "not my password"}, token_from="/profile")
        assert wrong.status_code == 400
    for path in ("/profile/two-step/off", "/profile/two-step/recovery-codes"):
        locked = post_form(client, path, {"password": PASSWORD}, token_from="/profile")
        assert locked.status_code == 429
        assert "Too many wrong passwords. Wait" in locked.get_data(as_text=True)
        assert int(locked.headers["Retry-After"]) > 800
    assert get_user(app, make_id(app)).totp_enabled
    assert audit_events(app, "user.totp_disabled") == []
    steps = [e.details["step"] for e in audit_events(app, "auth.password_check_failed")]
    assert steps == ["turn off two-step login"] * 3 + ["new recovery codes"] * 2


def make_id(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(User.id).where(User.email == EMAIL))


def test_new_recovery_codes_replace_the_old_ones(
    client: FlaskClient, two_step_user: tuple[str, list[str]]
) -> None:
    _, old_codes = two_step_user
    log_in(client, EMAIL)
    enter_code(client, old_codes[0])
    page = post_form(
        client, "/profile/two-step/recovery-codes", {"password": PASSWORD}, token_from="/profile"
    ).get_data(as_text=True)
    assert "Save these codes now" in page
    log_out(client)
    log_in(client, EMAIL)
    assert enter_code(client, old_codes[1]).status_code == 401


def test_the_secret_is_encrypted_at_rest_and_shown_as_a_qr_code(
    app: Flask, client: FlaskClient, moderator: int
) -> None:
    log_in(client, EMAIL)
    secret, _ = turn_on_two_step(client)
    stored = get_user(app, moderator).totp_secret
    assert stored and secret not in stored
    assert stored_totp_secret(app, moderator) == secret
    key_file = Path(app.instance_path) / "encryption_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_enrolment_page_draws_the_qr_code_without_script(
    client: FlaskClient, moderator: int
) -> None:
    log_in(client, EMAIL)
    post_form(client, "/profile/two-step/start", {}, token_from="/profile")
    page = client.get("/profile/two-step").get_data(as_text=True)
    assert 'src="data:image/svg+xml' in page
    assert "<script>" not in page


def test_a_wrong_first_code_keeps_two_step_login_off(
    app: Flask, client: FlaskClient, moderator: int
) -> None:
    log_in(client, EMAIL)
    post_form(client, "/profile/two-step/start", {}, token_from="/profile")
    response = post_form(
        client, "/profile/two-step/confirm", {"code": "123"}, token_from="/profile/two-step"
    )
    assert response.status_code == 400
    assert "code is not right" in response.get_data(as_text=True)
    assert not get_user(app, moderator).totp_enabled


def test_codes_allow_one_step_of_drift_either_way(app: Flask, moderator: int) -> None:
    now = time.time()
    with app.app_context():
        user = db.session.get(User, moderator)
        totp.start_enrolment(user)
        app_code = pyotp.TOTP(totp.enrolment_secret(user))
        assert not totp.accept_code(user, app_code.at(now - 60), now=now)
        assert not totp.accept_code(user, app_code.at(now + 60), now=now)
        assert totp.accept_code(user, app_code.at(now - 30), now=now)
        assert totp.accept_code(user, app_code.at(now + 30), now=now)
        # Once a later step is used, earlier codes are dead even inside the window.
        assert not totp.accept_code(user, app_code.at(now), now=now)
