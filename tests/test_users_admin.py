"""The admin's users page: invitations, roles, deactivation, reset links, and who may use it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models.types import utcnow
from app.models.user import Invitation
from app.services.audit import verify_chain
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
    totp_code,
    turn_on_two_step,
    wait_out_step_boundary,
)

ADMIN = "admin@example.org"
LINK = re.compile(r'<code class="secret">https?://[^/]+(/(?:invite|reset)/[\w-]+)</code>')


@pytest.fixture
def admin_id(app: Flask) -> int:
    return make_user(app, ADMIN, "admin")


@pytest.fixture
def admin(client: FlaskClient, admin_id: int) -> FlaskClient:
    """A browser where the admin is logged in."""
    log_in(client, ADMIN)
    return client


def admin_post(
    admin: FlaskClient, path: str, data: dict[str, str] | None = None, **kwargs: object
) -> object:
    return post_form(admin, path, data or {}, token_from="/admin/users", **kwargs)


def shown_link(page: str) -> str:
    match = LINK.search(page)
    assert match, "no link shown"
    return match.group(1)


def invite(admin: FlaskClient, role: str = "moderator", email: str = "") -> str:
    response = admin_post(admin, "/admin/users/invite", {"role": role, "email": email})
    assert response.status_code == 200
    return shown_link(response.get_data(as_text=True))


def accept(client: FlaskClient, path: str, email: str, password: str = PASSWORD) -> object:
    return post_form(
        client,
        path,
        {
            "email": email,
            "display_name": "New Person",
            "password": password,
            "password_again": password,
        },
        token_from=path,
    )


@pytest.mark.parametrize("role", ["moderator", "lead"])
def test_only_admins_reach_the_users_page(app: Flask, client: FlaskClient, role: str) -> None:
    make_user(app, f"{role}@example.org", role)
    log_in(client, f"{role}@example.org")
    assert client.get("/admin/users").status_code == 403
    assert (
        post_form(
            client, "/admin/users/invite", {"role": "admin"}, token_from="/profile"
        ).status_code
        == 403
    )


def test_admin_post_without_csrf_token_is_refused(app: Flask, admin: FlaskClient) -> None:
    response = admin.post("/admin/users/invite", data={"role": "admin"})
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalars(select(Invitation)).all() == []


def test_invited_moderator_joins_and_logs_in_with_two_step(app: Flask, admin: FlaskClient) -> None:
    path = invite(admin, "moderator", "New@Example.org")
    # The link is shown once: the page afterwards lists the invitation but not its link.
    page = admin.get("/admin/users").get_data(as_text=True)
    assert "new@example.org" in page and path not in page

    newcomer = app.test_client()
    form = newcomer.get(path).get_data(as_text=True)
    assert 'value="new@example.org"' in form and "moderator" in form
    response = accept(newcomer, path, "new@example.org")
    assert response.status_code == 303 and response.location == "/profile"
    assert logged_in_email(newcomer) == "new@example.org"
    assert newcomer.get("/admin/users").status_code == 403  # joined as a moderator

    secret, _ = turn_on_two_step(newcomer)
    log_out(newcomer)
    assert log_in(newcomer, "new@example.org").location == "/login/code"
    wait_out_step_boundary()
    assert enter_code(newcomer, totp_code(secret)).location == "/"
    assert logged_in_email(newcomer) == "new@example.org"

    assert "new@example.org" not in page_invitations(admin)
    accepted = audit_events(app, "invitation.accepted")
    assert [(e.details["email"], e.details["role"]) for e in accepted] == [
        ("new@example.org", "moderator")
    ]
    assert len(audit_events(app, "invitation.created")) == 1


def page_invitations(admin: FlaskClient) -> str:
    page = admin.get("/admin/users").get_data(as_text=True)
    return page.split('id="invitations-title"', 1)[1]


def test_a_used_invitation_is_refused(app: Flask, admin: FlaskClient) -> None:
    path = invite(admin)
    accept(app.test_client(), path, "first@example.org")
    late = app.test_client()
    response = late.get(path)
    assert response.status_code == 410
    assert "already used" in response.get_data(as_text=True)
    assert "Ask an admin" in response.get_data(as_text=True)
    assert (
        post_form(
            late,
            path,
            {"email": "second@example.org", "password": PASSWORD, "password_again": PASSWORD},
        ).status_code
        == 410
    )


def test_an_expired_invitation_is_refused(app: Flask, admin: FlaskClient) -> None:
    path = invite(admin)
    with app.app_context():
        invitation = db.session.scalars(select(Invitation)).one()
        invitation.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    response = app.test_client().get(path)
    assert response.status_code == 410
    assert "expired" in response.get_data(as_text=True)


def test_a_revoked_or_unknown_invitation_is_refused(app: Flask, admin: FlaskClient) -> None:
    path = invite(admin)
    with app.app_context():
        invitation_id = db.session.scalars(select(Invitation.id)).one()
    admin_post(admin, f"/admin/invitations/{invitation_id}/revoke")
    assert "No open invitations" in admin.get("/admin/users").get_data(as_text=True)
    assert "withdrawn" in app.test_client().get(path).get_data(as_text=True)
    assert app.test_client().get("/invite/made-up-token").status_code == 404
    assert len(audit_events(app, "invitation.revoked")) == 1


def test_inviting_an_existing_address_is_explained(app: Flask, admin: FlaskClient) -> None:
    response = admin_post(
        admin, "/admin/users/invite", {"role": "lead", "email": ADMIN}, follow_redirects=True
    )
    assert "already has an account" in response.get_data(as_text=True)


def test_deactivated_user_is_logged_out_at_their_next_click(app: Flask, admin: FlaskClient) -> None:
    target = make_user(app, "mod@example.org")
    moderator = app.test_client()
    log_in(moderator, "mod@example.org")
    assert logged_in_email(moderator) == "mod@example.org"

    admin_post(admin, f"/admin/users/{target}/deactivate")

    response = moderator.get("/")
    assert response.status_code == 302 and response.location.startswith("/login")
    assert log_in(moderator, "mod@example.org").status_code == 401
    assert [e.target_id for e in audit_events(app, "user.deactivated")] == [str(target)]

    admin_post(admin, f"/admin/users/{target}/reactivate")
    assert log_in(moderator, "mod@example.org").status_code == 303
    assert len(audit_events(app, "user.reactivated")) == 1


def test_role_changes_are_applied_and_audited(app: Flask, admin: FlaskClient) -> None:
    target = make_user(app, "mod@example.org")
    response = admin_post(
        admin, f"/admin/users/{target}/role", {"role": "lead"}, follow_redirects=True
    )
    assert "mod@example.org is now lead" in response.get_data(as_text=True)
    assert get_user(app, target).role == "lead"
    event = audit_events(app, "user.role_changed")[0]
    assert (event.target_type, event.target_id) == ("user", str(target))
    assert (event.details["from"], event.details["to"]) == ("moderator", "lead")


def test_the_last_admin_cannot_demote_or_deactivate_themselves(
    app: Flask, admin: FlaskClient, admin_id: int
) -> None:
    demote = admin_post(
        admin, f"/admin/users/{admin_id}/role", {"role": "moderator"}, follow_redirects=True
    )
    assert "You are the last active admin" in demote.get_data(as_text=True)
    deactivate = admin_post(admin, f"/admin/users/{admin_id}/deactivate", follow_redirects=True)
    assert "Make another user an admin first" in deactivate.get_data(as_text=True)
    user = get_user(app, admin_id)
    assert user.role == "admin" and user.active
    # With a second admin, stepping down works (and the page is no longer theirs).
    make_user(app, "second-admin@example.org", "admin")
    response = admin_post(admin, f"/admin/users/{admin_id}/role", {"role": "lead"})
    assert response.status_code == 303 and response.location == "/"
    assert admin.get("/admin/users").status_code == 403


def test_reset_link_sets_a_new_password_once(app: Flask, admin: FlaskClient) -> None:
    target = make_user(app, "mod@example.org")
    old_session = app.test_client()
    log_in(old_session, "mod@example.org")
    path = shown_link(admin_post(admin, f"/admin/users/{target}/reset-link").get_data(as_text=True))

    person = app.test_client()
    assert "mod@example.org" in person.get(path).get_data(as_text=True)
    new = "my freshly chosen passphrase"
    response = post_form(person, path, {"password": new, "password_again": new}, token_from=path)
    assert response.status_code == 303 and response.location == "/login"

    assert logged_in_email(old_session) is None  # every old session ended
    assert log_in(person, "mod@example.org").status_code == 401
    assert log_in(person, "mod@example.org", new).status_code == 303
    assert app.test_client().get(path).status_code == 410
    assert len(audit_events(app, "user.reset_link_created")) == 1
    assert [e.target_id for e in audit_events(app, "user.password_reset")] == [str(target)]


def test_a_newer_reset_link_replaces_the_older(app: Flask, admin: FlaskClient) -> None:
    target = make_user(app, "mod@example.org")
    first = shown_link(
        admin_post(admin, f"/admin/users/{target}/reset-link").get_data(as_text=True)
    )
    second = shown_link(
        admin_post(admin, f"/admin/users/{target}/reset-link").get_data(as_text=True)
    )
    assert app.test_client().get(first).status_code == 410
    assert app.test_client().get(second).status_code == 200


def test_admin_turns_off_two_step_for_someone_who_lost_their_phone(
    app: Flask, admin: FlaskClient
) -> None:
    target = make_user(app, "mod@example.org")
    moderator = app.test_client()
    log_in(moderator, "mod@example.org")
    turn_on_two_step(moderator)
    admin_post(admin, f"/admin/users/{target}/two-step/off")
    log_out(moderator)
    assert log_in(moderator, "mod@example.org").location == "/"
    assert audit_events(app, "user.totp_disabled")[0].details["by_admin"] is True


def test_htmx_actions_answer_with_the_panel_and_a_toast(app: Flask, admin: FlaskClient) -> None:
    target = make_user(app, "mod@example.org")
    response = admin_post(
        admin, f"/admin/users/{target}/role", {"role": "lead"}, headers={"HX-Request": "true"}
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in body and 'id="users-panel"' in body
    assert "mod@example.org is now lead" in body and 'hx-swap-oob="beforeend:#toasts"' in body


def test_the_users_page_lists_people_and_their_state(app: Flask, admin: FlaskClient) -> None:
    make_user(app, "gone@example.org", "lead", display_name="Gone", active=False)
    page = admin.get("/admin/users").get_data(as_text=True)
    assert "gone@example.org" in page and "Deactivated" in page and "Reactivate" in page
    assert f'{ADMIN} <span class="muted">(you)</span>' in page


def test_the_audit_chain_holds_after_account_work(app: Flask, admin: FlaskClient) -> None:
    path = invite(admin, "lead")
    accept(app.test_client(), path, "lead@example.org")
    log_in(app.test_client(), "lead@example.org", "wrong password!!")
    target = make_user(app, "mod@example.org")
    admin_post(admin, f"/admin/users/{target}/deactivate")
    admin_post(admin, f"/admin/users/{target}/reactivate")
    admin_post(admin, f"/admin/users/{target}/reset-link")
    log_out(admin)
    with app.app_context():
        assert verify_chain() == []
    assert len(audit_events(app, "auth.logout")) == 1
