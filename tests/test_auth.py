"""Logging in and out: passwords, rate limits, redirects, sessions, and what the audit log keeps."""

from __future__ import annotations

import json

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.extensions import db
from app.models.user import User
from app.services import passwords
from tests.factories import (
    PASSWORD,
    add_failed_attempts,
    age_login_attempts,
    audit_events,
    get_user,
    log_in,
    log_out,
    logged_in_email,
    make_user,
    post_form,
)

WRONG = "The email or password is wrong."


@pytest.fixture
def moderator(app: Flask) -> int:
    return make_user(app, "mod@example.org", "moderator", display_name="Mo")


def test_login_with_any_letter_case_lands_on_home(client: FlaskClient, moderator: int) -> None:
    response = log_in(client, "  MOD@Example.ORG ")
    assert response.status_code == 303 and response.location == "/"
    assert logged_in_email(client) == "mod@example.org"


def test_wrong_password_and_unknown_email_get_the_same_message(
    app: Flask, client: FlaskClient, moderator: int
) -> None:
    wrong_password = log_in(client, "mod@example.org", "not the password at all")
    unknown = log_in(client, "nobody@example.org", "not the password at all")
    assert wrong_password.status_code == unknown.status_code == 401
    assert WRONG in wrong_password.get_data(as_text=True)
    assert WRONG in unknown.get_data(as_text=True)
    assert logged_in_email(client) is None  # still not logged in
    failed = audit_events(app, "auth.login_failed")
    assert [event.details["email"] for event in failed] == ["mod@example.org", "nobody@example.org"]
    assert "not the password" not in json.dumps([event.details for event in failed])


def test_login_and_logout_are_audited(app: Flask, client: FlaskClient, moderator: int) -> None:
    log_in(client, "mod@example.org")
    assert "Log out" in client.get("/logout").get_data(as_text=True)  # GET only asks
    assert logged_in_email(client) == "mod@example.org"
    response = log_out(client)
    assert response.status_code == 303 and response.location == "/login"
    assert logged_in_email(client) is None
    assert [e.target_id for e in audit_events(app, "auth.login")] == [str(moderator)]
    assert [e.target_id for e in audit_events(app, "auth.logout")] == [str(moderator)]


def test_login_post_without_csrf_token_is_refused(client: FlaskClient, moderator: int) -> None:
    response = client.post("/login", data={"email": "mod@example.org", "password": PASSWORD})
    assert response.status_code == 400
    assert "Reload the page" in response.get_data(as_text=True)
    assert logged_in_email(client) is None


def test_pages_send_strangers_to_login_and_back(client: FlaskClient, moderator: int) -> None:
    response = client.get("/profile?tab=1")
    assert response.status_code == 302
    assert response.location.startswith("/login?next=")
    login_page = client.get(response.location).get_data(as_text=True)
    assert 'name="next" value="/profile?tab=1"' in login_page
    assert log_in(client, "mod@example.org", next_url="/profile?tab=1").location == "/profile?tab=1"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
        "http:/evil.example",
        "/\t/evil.example",
    ],
)
def test_next_never_leaves_the_site(client: FlaskClient, moderator: int, target: str) -> None:
    response = log_in(client, "mod@example.org", next_url=target)
    assert response.status_code == 303
    assert response.location == "/"


def test_login_starts_a_fresh_session(client: FlaskClient, moderator: int) -> None:
    client.get("/login")
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
        old_csrf = session["csrf_token"]
    log_in(client, "mod@example.org")
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session.get("csrf_token") != old_csrf


def test_deactivated_user_cannot_log_in(app: Flask, client: FlaskClient) -> None:
    make_user(app, "gone@example.org", active=False)
    response = log_in(client, "gone@example.org")
    assert response.status_code == 401
    assert "deactivated. Ask an admin" in response.get_data(as_text=True)
    assert logged_in_email(client) is None


def test_old_hash_parameters_are_upgraded_at_login(
    app: Flask, client: FlaskClient, moderator: int
) -> None:
    old_hash = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1).hash(PASSWORD)
    with app.app_context():
        db.session.get(User, moderator).password_hash = old_hash
        db.session.commit()
    assert log_in(client, "mod@example.org").status_code == 303
    new_hash = get_user(app, moderator).password_hash
    assert new_hash != old_hash and new_hash.startswith("$argon2id$")
    with app.app_context():
        assert not passwords.needs_rehash(new_hash)
        assert passwords.verify_password(new_hash, PASSWORD)


class TestRateLimits:
    def test_account_locks_after_five_failures_and_recovers(
        self, app: Flask, client: FlaskClient, moderator: int
    ) -> None:
        for _ in range(5):
            assert log_in(client, "mod@example.org", "wrong password!!").status_code == 401
        locked = log_in(client, "mod@example.org")  # even the right password waits
        assert locked.status_code == 429
        assert "Wait 15 minutes" in locked.get_data(as_text=True)
        assert 840 < int(locked.headers["Retry-After"]) <= 900
        assert logged_in_email(client) is None
        # Another account from another address is not affected.
        make_user(app, "other@example.org")
        other = app.test_client()
        assert (
            log_in(other, "other@example.org", environ_base={"REMOTE_ADDR": "10.0.0.2"}).status_code
            == 303
        )
        assert [e.details["email"] for e in audit_events(app, "auth.rate_limited")] == [
            "mod@example.org"
        ]

        age_login_attempts(app, 901)
        assert log_in(client, "mod@example.org").status_code == 303

    def test_address_locks_after_twenty_failures_and_recovers(
        self, app: Flask, client: FlaskClient, moderator: int
    ) -> None:
        add_failed_attempts(app, 19, email="guess@example.org", ip="127.0.0.1", age_seconds=60)
        assert log_in(client, "another-guess@example.org", "whatever it is").status_code == 401
        locked = log_in(client, "mod@example.org")
        assert locked.status_code == 429
        assert "Wait 14 minutes" in locked.get_data(as_text=True)  # the oldest is a minute old
        other_address = app.test_client()
        response = log_in(
            other_address, "mod@example.org", environ_base={"REMOTE_ADDR": "192.0.2.7"}
        )
        assert response.status_code == 303

        age_login_attempts(app, 900)
        assert log_in(client, "mod@example.org").status_code == 303

    def test_a_successful_login_clears_the_account_count(
        self, app: Flask, client: FlaskClient, moderator: int
    ) -> None:
        for _ in range(4):
            log_in(client, "mod@example.org", "wrong password!!")
        assert log_in(client, "mod@example.org").status_code == 303
        log_out(client)
        for _ in range(4):
            assert log_in(client, "mod@example.org", "wrong password!!").status_code == 401
        assert log_in(client, "mod@example.org").status_code == 303


def test_password_change_ends_other_sessions_only(app: Flask, moderator: int) -> None:
    here, elsewhere = app.test_client(), app.test_client()
    log_in(here, "mod@example.org")
    log_in(elsewhere, "mod@example.org")
    new = "a brand new long passphrase"
    response = post_form(
        here,
        "/profile/password",
        {"current_password": PASSWORD, "new_password": new, "new_password_again": new},
        token_from="/profile",
    )
    assert response.status_code == 303
    assert "Your password is changed" in here.get("/profile").get_data(as_text=True)
    assert elsewhere.get("/profile").status_code == 302
    log_out(here)
    assert log_in(here, "mod@example.org").status_code == 401
    assert log_in(here, "mod@example.org", new).status_code == 303
    assert [e.target_id for e in audit_events(app, "user.password_changed")] == [str(moderator)]


@pytest.mark.parametrize(
    ("form", "message"),
    [
        (
            {"current_password": "nope", "new_password": "x" * 12, "new_password_again": "x" * 12},
            "current password is not right",
        ),
        (
            {"current_password": PASSWORD, "new_password": "short", "new_password_again": "short"},
            "at least 12 characters",
        ),
        (
            {
                "current_password": PASSWORD,
                "new_password": "long enough one",
                "new_password_again": "long enough two",
            },
            "not the same",
        ),
    ],
)
def test_password_change_mistakes_are_explained(
    app: Flask, client: FlaskClient, moderator: int, form: dict[str, str], message: str
) -> None:
    log_in(client, "mod@example.org")
    response = post_form(client, "/profile/password", form, token_from="/profile")
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert client.get("/profile").status_code == 200  # still logged in, password unchanged
    assert passwords_unchanged(app, moderator)


def passwords_unchanged(app: Flask, user_id: int) -> bool:
    with app.app_context():
        return passwords.verify_password(get_user(app, user_id).password_hash, PASSWORD)


def change_password(client: FlaskClient, current: str) -> TestResponse:
    new = "a brand new long passphrase"
    form = {"current_password": current, "new_password": new, "new_password_again": new}
    return post_form(client, "/profile/password", form, token_from="/profile")


def test_wrong_passwords_on_the_profile_count_toward_the_login_limit(
    app: Flask, client: FlaskClient, moderator: int
) -> None:
    log_in(client, "mod@example.org")
    for _ in range(5):
        assert change_password(client, "a wrong guess!!").status_code == 400
    locked = change_password(client, PASSWORD)  # even the right password waits
    assert locked.status_code == 429
    assert "Too many wrong passwords. Wait 15 minutes, then try again." in locked.get_data(
        as_text=True
    )
    assert 840 < int(locked.headers["Retry-After"]) <= 900
    assert passwords_unchanged(app, moderator)
    # One budget of guesses per account: the login form is locked as well.
    assert log_in(app.test_client(), "mod@example.org").status_code == 429

    failed = audit_events(app, "auth.password_check_failed")
    assert len(failed) == 5
    assert {(e.actor_label, e.target_id, e.details["step"]) for e in failed} == {
        ("mod@example.org", str(moderator), "change password")
    }
    [lockout] = audit_events(app, "auth.rate_limited")
    assert (lockout.actor_label, lockout.details["step"]) == ("mod@example.org", "change password")

    age_login_attempts(app, 901)
    assert change_password(client, PASSWORD).status_code == 303


def test_display_name_can_be_changed(app: Flask, client: FlaskClient, moderator: int) -> None:
    log_in(client, "mod@example.org")
    post_form(client, "/profile/name", {"display_name": "  Mona   Lisa "}, token_from="/profile")
    assert 'value="Mona Lisa"' in client.get("/profile").get_data(as_text=True)
    assert audit_events(app, "user.renamed")[0].details == {"from": "Mo", "to": "Mona Lisa"}
